"""The Milvus vector store: one collection per index, through pymilvus's ``MilvusClient``.

A URI that is a path (``./index.db``) runs milvus-lite in-process (the only Milvus tested here);
``http://host:19530`` talks to a Milvus server or cluster with the same calls. The collection:
``id`` (int64 primary key = the project's proposal id), ``vector`` (float, width D), ``video``
(varchar, the partition key), ``start_s`` / ``end_s`` (float). Inner product.

Index types, chosen the way ``auto`` chooses for FAISS (index_choice), mapped to Milvus's:

    flat  -> FLAT                 exact
    ivf   -> IVF_FLAT (nlist, nprobe as for FAISS)
    ivfpq -> IVF_SQ8 (milvus-lite has no IVF_PQ; 8-bit scalar codes are its compressed IVF)
    hnsw  -> HNSW (M, efConstruction, ef as for FAISS)

Writes are idempotent (upsert by id), so an interrupted build or add is finished by running it
again; the catalog decides what a query may see (published ids, removed videos), so vectors
written ahead of a publish are never returned.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ...errors import DataError

MILVUS_HINT = "pip install 'moment-search[milvus]' (pymilvus and milvus-lite)"
MILVUS_TYPES = {"flat": "FLAT", "ivf": "IVF_FLAT", "ivfpq": "IVF_SQ8", "hnsw": "HNSW"}
INSERT_ROWS = 2000  # rows per upsert call
MAX_TOPK = 16384  # Milvus's limit on k


def import_milvus():
    """``(MilvusClient, DataType)``; a missing install names the extra."""
    try:
        from pymilvus import DataType, MilvusClient
    except ImportError as e:
        raise ImportError(f"the milvus backend needs pymilvus and milvus-lite: {MILVUS_HINT}"
                          ) from e
    return MilvusClient, DataType


def connect(uri: str):
    """A ``MilvusClient``; for a milvus-lite path, after claiming the database for this process
    (``milvus_owner``: one clear line, not milvus-lite's traceback, when another process has it).

    Raises:
        MilvusLiteBusyError: another process has the milvus-lite database open.
    """
    from .milvus_owner import MilvusLiteBusyError, busy_message, claim

    client_type, _ = import_milvus()
    if "://" in uri:
        return client_type(uri)
    claim(uri)
    from pymilvus.exceptions import MilvusException

    try:
        return client_type(uri)
    except MilvusException as e:  # opened by a process that does not take our lock
        if "open local milvus failed" not in str(e).lower():
            raise
        raise MilvusLiteBusyError(busy_message(uri, None)) from e


def resolve_uri(uri: str | None, index_dir: Path) -> str:
    """A server URI as given; a path made absolute; None: ``INDEX_DIR/milvus.db``."""
    if uri is None:
        return str((Path(index_dir) / "milvus.db").resolve())
    return uri if "://" in uri else str(Path(uri).resolve())


def collection_name(index_dir: Path) -> str:
    """A collection name unique to the index directory (several indexes can share a server)."""
    digest = hashlib.sha1(str(Path(index_dir).resolve()).encode()).hexdigest()[:12]
    return f"moment_search_{digest}"


def index_params(kind: str, params: dict) -> tuple[str, dict]:
    """The Milvus index type and build params for an IndexSpec kind and params."""
    if kind == "hnsw":
        return "HNSW", {"M": int(params.get("M", 32)),
                        "efConstruction": int(params.get("ef_construction", 80))}
    if kind in ("ivf", "ivfpq"):
        return MILVUS_TYPES[kind], {"nlist": int(params["nlist"])}
    return "FLAT", {}


def wire_build_params(build: dict) -> dict:
    """``build`` as ``add_index(params=...)`` must get it: nested under one ``params`` entry,
    which pymilvus sends as a single JSON value (the shape its ORM ``Collection.create_index``,
    deprecated in pymilvus 3.0, sends, and Milvus servers read). Given flat, pymilvus sends each
    key alone, and milvus-lite 3.x drops them without a word: its index then takes its own
    defaults (nlist 128, M 16, efConstruction 200). Only milvus-lite is tested here."""
    return {"params": build} if build else {}


def search_params(kind: str, params: dict, k: int) -> dict:
    if kind == "hnsw":
        return {"params": {"ef": max(int(k), int(params.get("ef_search", 1024)))}}
    if kind in ("ivf", "ivfpq"):
        return {"params": {"nprobe": int(params["nprobe"])}}
    return {}


def range_filter(ranges: list[tuple[int, int]]) -> str:
    """A Milvus boolean expression accepting the ids of ``(first_id, count)`` ranges."""
    parts = [f"(id >= {int(a)} and id < {int(a) + int(n)})" for a, n in ranges if n > 0]
    return " or ".join(parts) if parts else "id < 0"


class MilvusStore:
    """One index's collection (see the module doc)."""

    kind = "milvus"
    max_k = MAX_TOPK  # the most results one search returns

    def __init__(self, client, uri: str, collection: str, spec_kind: str, params: dict):
        self.client, self.uri, self.collection = client, uri, collection
        self.spec_kind, self.params = spec_kind, dict(params)
        self.d = int(client.describe_collection(collection)["fields"][1]["params"]["dim"])

    @classmethod
    def open(cls, uri: str, collection: str, params: dict) -> MilvusStore:
        """The published collection, loaded for search.

        Raises:
            MilvusLiteBusyError: another process has the milvus-lite database open.
        """
        client = connect(uri)
        if not client.has_collection(collection):
            raise FileNotFoundError(f"Milvus at {uri} has no collection {collection!r}: the "
                                    f"index's vectors are gone (rebuild the index)")
        client.load_collection(collection)
        return cls(client, uri, collection, params.get("kind", "flat"), params)

    @classmethod
    def create(cls, uri: str, collection: str, dim: int, spec, fresh: bool) -> MilvusStore:
        """The collection for a build: made anew when ``fresh`` (dropping a leftover of an
        earlier attempt), else reused (a resumed build)."""
        _, data_type = import_milvus()
        client = connect(uri)
        if fresh and client.has_collection(collection):
            client.drop_collection(collection)
        if not client.has_collection(collection):
            schema = client.create_schema(auto_id=False)
            schema.add_field("id", data_type.INT64, is_primary=True)
            schema.add_field("vector", data_type.FLOAT_VECTOR, dim=int(dim))
            schema.add_field("video", data_type.VARCHAR, max_length=512, is_partition_key=True)
            schema.add_field("start_s", data_type.DOUBLE)
            schema.add_field("end_s", data_type.DOUBLE)
            milvus_type, build = index_params(spec.kind, spec.params)
            indexes = client.prepare_index_params()
            indexes.add_index(field_name="vector", index_type=milvus_type, metric_type="IP",
                              params=wire_build_params(build))
            client.create_collection(collection, schema=schema, index_params=indexes)
        return cls(client, uri, collection, spec.kind, spec.params)

    def upsert(self, ids: np.ndarray, vectors: np.ndarray, videos: list[str],
               start_s: np.ndarray, end_s: np.ndarray) -> None:
        """Write rows (replacing any of the same id), in chunks."""
        for lo in range(0, len(ids), INSERT_ROWS):
            hi = min(lo + INSERT_ROWS, len(ids))
            rows = [{"id": int(ids[i]), "vector": vectors[i].tolist(), "video": videos[i],
                     "start_s": float(start_s[i]), "end_s": float(end_s[i])}
                    for i in range(lo, hi)]
            self.client.upsert(self.collection, rows)

    def finish(self) -> None:
        """Make every write durable and searchable."""
        self.client.flush(self.collection)
        self.client.load_collection(self.collection)

    def delete_ranges(self, ranges: list[tuple[int, int]]) -> None:
        if ranges:
            self.client.delete(self.collection, filter=range_filter(ranges))
            self.client.flush(self.collection)

    def count(self, ranges: list[tuple[int, int]] | None = None) -> int:
        expression = range_filter(ranges) if ranges is not None else "id >= 0"
        rows = self.client.query(self.collection, filter=expression,
                                 output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    def search(self, queries: np.ndarray, k: int, params: dict | None = None,
               ranges: list[tuple[int, int]] | None = None) -> tuple[np.ndarray, np.ndarray]:
        k = min(int(k), MAX_TOPK)
        found = self.client.search(
            self.collection, data=np.asarray(queries, np.float32).tolist(), limit=k,
            filter=range_filter(ranges) if ranges else "",
            search_params=search_params(self.spec_kind, {**self.params, **(params or {})}, k))
        scores = np.full((len(queries), k), -np.inf, np.float32)
        ids = np.full((len(queries), k), -1, np.int64)
        for row, hits in enumerate(found):
            for col, hit in enumerate(hits[:k]):
                scores[row, col], ids[row, col] = hit["distance"], hit["id"]
        return scores, ids

    def stored_vectors(self, first_id: int, count: int) -> np.ndarray | None:
        vectors, exact = self.vectors(np.arange(first_id, first_id + count))
        return vectors if exact else None

    def vectors(self, ids: np.ndarray) -> tuple[np.ndarray, bool]:
        """The stored vectors of ``ids`` (exact: Milvus keeps the raw vectors)."""
        ids = [int(i) for i in ids]
        rows = self.client.query(self.collection, filter=f"id in {ids}",
                                 output_fields=["vector"])
        by_id = {int(r["id"]): r["vector"] for r in rows}
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise DataError(f"Milvus collection {self.collection!r} lacks ids {missing[:5]}")
        return np.asarray([by_id[i] for i in ids], np.float32), True

    def supports_remove(self) -> bool:
        return True

    def drop(self) -> None:
        self.client.drop_collection(self.collection)
