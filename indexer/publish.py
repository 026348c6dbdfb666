"""Make and publish FAISS files: train and fill an index from embedding shards, write it as a new
version, then flip the catalog to it in one transaction.

The order is what makes every change crash-safe: the new FAISS file (and any new Parquet shard)
is complete on disk before the catalog points at it, and the old file is deleted only after. A
kill at any moment leaves the catalog pointing at a complete, checksummed state, plus at worst
files nothing points at, which the next writer (or ``index repair``) deletes.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from .. import failpoints
from . import faiss_index
from .catalog import Catalog, ShardReplacement
from .progress import Progress
from .snapshot import delete_older_snapshots, write_snapshot
from .store import file_sha256, quick_digest, read_embeddings

BOOKKEEPING = ("file", "shards", "version", "file_sha256", "file_quick", "file_bytes", "backend",
               "uri", "collection", "kind")


def training_sample(index_dir: Path, shards: list[int], size: int, seed: int) -> np.ndarray:
    """A seeded uniform sample of ``size`` embeddings drawn across the shards."""
    arrays = [read_embeddings(index_dir, s) for s in shards]
    total = sum(len(a) for a in arrays)
    picks = np.sort(np.random.default_rng(seed).choice(total, min(size, total), replace=False))
    bounds = np.cumsum([0] + [len(a) for a in arrays])
    parts = [arrays[i][picks[(picks >= lo) & (picks < hi)] - lo]
             for i, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:], strict=True))]
    return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)


def fill_index(index, catalog: Catalog, index_dir: Path, shards: list[int], seed: int = 0,
               progress: Progress | None = None) -> None:
    """Add every listed shard's embeddings with their ids.

    HNSW gets them in one seeded random order: inserting video after video (ids in order) builds
    a graph with poor recall (measured by the corpus_scale benchmark).
    """
    records = catalog.embedded_shards()
    parts, ids = [], []
    for shard in shards:
        vectors = np.ascontiguousarray(read_embeddings(index_dir, shard), dtype=np.float32)
        first = records[shard].first_id
        parts.append(vectors)
        ids.append(np.arange(first, first + len(vectors), dtype=np.int64))
        if faiss_index.index_kind(index) != "hnsw":
            faiss_index.add(index, parts.pop(), ids.pop())
        if progress:
            progress.advance(len(vectors))
    if parts:
        vectors, all_ids = np.concatenate(parts), np.concatenate(ids)
        order = np.random.default_rng(seed).permutation(len(all_ids))
        faiss_index.add(index, vectors[order], all_ids[order])


def make_index(index_dir: Path, catalog: Catalog, shards: list[int], config, progress: Progress,
               corpus_dir: str | Path | None = None):
    """Choose, train, fill and recall-check a FAISS index over the shards; returns (index, spec,
    placement).

    An approximate index is checked against exact search on the corpus's sentences (see
    ``recall_check``): ``auto`` raises its nprobe / efSearch until recall@100 and @200 reach
    0.98, and falls back to flat when they cannot but flat fits the memory budget; an explicit
    kind keeps its parameters. The figures go into the spec's params (published) and reason.

    Raises:
        RecallError: ``auto`` cannot reach the target and flat does not fit the budget.
    """
    from .index_choice import retuned
    from .recall_check import (
        RecallError,
        check_built_index,
        flat_fallback,
        index_check_queries,
        shard_blocks,
    )

    spec = choose_spec(catalog, shards, config)
    placement = faiss_index.resolve_placement(config.device)
    index = _trained_and_filled(index_dir, catalog, shards, spec, placement, config, progress)
    if spec.kind == "flat":
        return index, spec, placement
    progress.phase("checking recall against exact search", None, "")
    queries, source = index_check_queries(index_dir, catalog, shards, corpus_dir, config.seed)
    tune = config.index_kind == "auto"
    try:
        check = check_built_index(index, spec, queries, source,
                                  shard_blocks(index_dir, catalog, shards), tune)
    except RecallError as e:
        n = sum(catalog.embedded_shards()[s].n_proposals for s in shards)
        flat = flat_fallback(e, n, catalog.info().embedding_dim, config.memory_budget)
        index = _trained_and_filled(index_dir, catalog, shards, flat, placement, config, progress)
        return index, flat, placement
    spec = retuned(spec, check.params(), check.summary())
    return index, spec, placement


def _trained_and_filled(index_dir: Path, catalog: Catalog, shards: list[int], spec, placement,
                        config, progress: Progress):
    """A new index of ``spec``, trained on a seeded sample and filled, on the CPU."""
    n = sum(catalog.embedded_shards()[s].n_proposals for s in shards)
    index = faiss_index.to_device(faiss_index.new_index(spec, catalog.info().embedding_dim),
                                  placement)
    sample_size = faiss_index.train_sample_size(spec, n)
    if sample_size:
        progress.phase(f"training {spec.kind} on {sample_size} vectors", None, "")
        faiss_index.train(index, training_sample(index_dir, shards, sample_size, config.seed))
    progress.phase("filling the index", n, "vectors")
    fill_index(index, catalog, index_dir, shards, config.seed, progress)
    return faiss_index.to_cpu(index)


def choose_spec(catalog: Catalog, shards: list[int], config):
    """The index kind and parameters for the shards' vectors, as ``auto`` chooses."""
    records = catalog.embedded_shards()
    n = sum(records[s].n_proposals for s in shards)
    spec = faiss_index.choose_index(n, catalog.info().embedding_dim,
                                    faiss_index.parse_bytes(config.memory_budget),
                                    config.index_kind)
    return faiss_index.fit_spec_to_data(spec, n)


def milvus_spec(catalog: Catalog, shards: list[int], config):
    """``auto`` for a Milvus collection: exact FLAT whenever it fits the memory budget. The
    build's recall check tunes FAISS's nprobe, not Milvus's, and an untuned IVF_FLAT loses
    recall (~0.96 recall@100 at 136,000 vectors); past the budget, auto's IVF choice stands."""
    spec = choose_spec(catalog, shards, config)
    if config.index_kind != "auto" or spec.kind == "flat":
        return spec
    try:
        flat = choose_spec(catalog, shards, dataclasses.replace(config, index_kind="flat"))
    except ValueError:
        return spec
    return dataclasses.replace(flat, reason=f"exact FLAT for Milvus (fits the budget; the "
                                            f"recall check tunes FAISS only): {flat.reason}")


def fill_milvus(store, catalog: Catalog, index_dir: Path, shards: list[int],
                progress: Progress | None = None) -> None:
    """Upsert every listed shard's vectors with their ids, videos and times (idempotent)."""
    from .store import read_metadata

    records = catalog.embedded_shards()
    for shard in shards:
        vectors = np.asarray(read_embeddings(index_dir, shard), dtype=np.float32)
        table = read_metadata(index_dir, {shard: records[shard].checksum})
        videos = [table.video_names[i] for i in table.video_index]
        store.upsert(table.ids, vectors, videos, table.start_s, table.end_s)
        if progress:
            progress.advance(len(vectors))
    store.finish()


def make_milvus(index_dir: Path, catalog: Catalog, shards: list[int], config, fresh: bool,
                progress: Progress):
    """Create (or reuse, resuming) the index's Milvus collection and fill it; returns
    (store, spec)."""
    from .backends.milvus_store import MilvusStore, collection_name, resolve_uri

    spec = milvus_spec(catalog, shards, config)
    uri = resolve_uri(config.milvus_uri, index_dir)
    store = MilvusStore.create(uri, collection_name(index_dir), catalog.info().embedding_dim,
                               spec, fresh)
    records = catalog.embedded_shards()
    progress.phase("filling Milvus", sum(records[s].n_proposals for s in shards), "vectors")
    fill_milvus(store, catalog, index_dir, shards, progress)
    return store, spec


def publish_milvus(store, index_dir: Path, catalog: Catalog, spec, shards: list[int],
                   previous: dict | None, remove: list[str] = (),
                   replacement: ShardReplacement | None = None) -> dict:
    """Flip the catalog to the collection's new content (one transaction); returns the params."""
    params = {**spec.params, "kind": spec.kind, "backend": "milvus", "uri": store.uri,
              "collection": store.collection,
              "version": int((previous or {}).get("version", 0)) + 1,
              "shards": sorted(int(s) for s in shards)}
    write_snapshot(index_dir, catalog, spec.kind, params, remove, replacement)
    catalog.publish(spec.kind, params, remove, replacement)
    failpoints.hit("published")
    delete_older_snapshots(index_dir, params["version"])
    return params


def kept_spec(catalog: Catalog, params: dict, reason: str) -> faiss_index.IndexSpec:
    """The spec of the index a catalog points at (its params without the bookkeeping keys)."""
    kept = {k: v for k, v in params.items() if k not in BOOKKEEPING}
    return faiss_index.IndexSpec(catalog.info().index_type, kept, reason=reason)


def write_version(index, index_dir: Path, previous: dict | None) -> dict:
    """Write the index as the next version's file; returns its bookkeeping params."""
    version = int((previous or {}).get("version", 0)) + 1
    name = f"index-{version:05d}.faiss"
    path = index_dir / name
    faiss_index.write_index(index, path)
    return {"version": version, "file": name, "file_sha256": file_sha256(path),
            "file_quick": quick_digest(path), "file_bytes": path.stat().st_size}


def publish(index, index_dir: Path, catalog: Catalog, spec, shards: list[int],
            previous: dict | None, remove: list[str] = (), progress: Progress | None = None,
            replacement: ShardReplacement | None = None) -> dict:
    """Write the FAISS file as a new version, flip the catalog to it (making the shards' pending
    videos indexed, ``remove`` removed and recording ``replacement``, in one transaction), then
    delete the old file. Returns the published params."""
    if progress:
        progress.phase("writing the index", None, "")
    params = {**spec.params, **write_version(index, index_dir, previous),
              "shards": sorted(int(s) for s in shards)}
    write_snapshot(index_dir, catalog, spec.kind, params, remove, replacement)
    catalog.publish(spec.kind, params, remove, replacement)
    failpoints.hit("published")
    if previous and previous.get("file") and previous["file"] != params["file"]:
        (index_dir / previous["file"]).unlink(missing_ok=True)
    delete_older_snapshots(index_dir, params["version"])
    return params
