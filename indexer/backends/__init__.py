"""Vector stores: where the proposal embeddings of an index live and are searched.

One interface, two implementations:

    faiss   (default) one FAISS file per published version in the index directory (faiss_store)
    milvus  one Milvus collection per index: milvus-lite for a ``path.db`` URI (embedded, tested
            here), a Milvus server or cluster for ``http://host:19530`` (milvus_store)

A store answers ``d`` (width), ``count()``, ``search(queries, k, params, ranges)`` -> (scores,
ids) best first (-1 ids where fewer hits; at most ``max_k`` columns hold hits: a GPU FAISS index
pads the rest with -1, Milvus returns only those columns), ``max_k`` (the most hits one search
returns, None for no limit), ``vectors(ids)`` -> (stored vectors, exact?), and
``supports_remove()``. Writing differs (a FAISS version is a new file; a Milvus collection is
changed in place) and lives in publish.py / edit.py; the catalog records which backend an index
uses in its published params (``backend``, and for Milvus ``uri`` and ``collection``).
"""

from __future__ import annotations

from pathlib import Path

BACKENDS = ("faiss", "milvus")


def backend_of(params: dict) -> str:
    """The backend a published index uses (indexes from before backends: faiss)."""
    return params.get("backend", "faiss")


def open_store(index_dir: Path, params: dict, device: str = "cpu", mmap: bool = False):
    """The published vector store of an index, ready to search (``mmap``: map a FAISS file
    instead of reading it, see ``FaissStore.open``)."""
    if backend_of(params) == "milvus":
        from .milvus_store import MilvusStore

        return MilvusStore.open(params["uri"], params["collection"], params)
    from .faiss_store import FaissStore

    return FaissStore.open(Path(index_dir) / params["file"], device, mmap)
