"""Re-embed videos an index already holds, in place: a removed video added back (``index add``)
and indexed videos whose features changed (``index update``).

The one id space stays: ids are never reused. The new embeddings go into a new shard with new
ids (Parquet and embeddings written atomically, not yet recorded); the vector store gets them and
loses the videos' old vectors (FAISS kinds that can delete delete them; HNSW and the refined
IVF-PQ, which cannot, are rebuilt from their own stored vectors without them, keeping every id);
then one publish (``publish.py``) records the shard and gives the videos their new ids in the
same catalog transaction. Their old ids are "retired" (``Catalog.retired_ranges``): owned by no
video, never searched, never reused. A kill before the publish leaves the old published state and
files nothing points at (deleted by the next writer or ``index repair``). Milvus gets the new
vectors before the publish (invisible until then: ids past the published ones) and loses the old
ones after it; a kill in between leaves old vectors that ``index repair`` deletes.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..data.corpus import Video
from ..data.corpus_dir import open_corpus
from ..data.features import load_feature_source
from ..embed.encoders import MomentEncoder
from ..errors import InputError
from . import faiss_index
from .backends import backend_of, open_store
from .build import BuildConfig, BuildReport, ShardEmbedder, finish_embeddings, load_model
from .catalog import INDEXED, PENDING, REMOVED, Catalog, ShardReplacement, VideoRecord
from .integrity import require_index
from .leftovers import clean_leftovers, clean_milvus
from .lock import writer_lock
from .plan import PlannedVideo, plan_videos
from .progress import Progress, Silent
from .publish import fill_index, fill_milvus, kept_spec, publish, publish_milvus
from .store import (
    MODEL_DIR,
    file_sha256,
    read_embeddings,
    read_metadata,
    write_embeddings,
    write_metadata,
)


def replacement_shard(embedder: ShardEmbedder, index_dir: Path, catalog: Catalog,
                      planned: list[PlannedVideo]) -> ShardReplacement:
    """Embed the videos into the next shard, with the next free ids, and write its files (not
    recorded: the publish records it)."""
    shard, first_id = catalog.next_shard(), catalog.next_id()
    videos = [p.video for p in planned]
    embeddings, checksums = embedder.embed(videos, [p.checksum for p in planned])
    write_embeddings(index_dir, shard, embeddings)
    meta = write_metadata(index_dir, shard, embedder.rows(videos, first_id))
    n_props = len(embedder.cells)
    records = [VideoRecord(video_id=v.video_id, duration=v.duration,
                           feature_source=v.feature_source or "", feature_rate=v.feature_rate,
                           checksum=c, n_proposals=n_props, first_id=first_id + i * n_props,
                           shard=shard, video_path=v.video_path)
               for i, (v, c) in enumerate(zip(videos, checksums, strict=True))]
    return ShardReplacement(shard, first_id, records, file_sha256(meta))


def _id_array(ranges: list[tuple[int, int]]) -> np.ndarray:
    parts = [np.arange(first, first + count, dtype=np.int64) for first, count in ranges]
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def replace_vectors(index, old: list[tuple[int, int]], vectors: np.ndarray, ids: np.ndarray,
                    seed: int = 0):
    """The FAISS index without the vectors of the ``(first_id, count)`` ranges ``old`` and with
    ``vectors`` (N, D) under ``ids`` (N,). Kinds that cannot delete are rebuilt from their own
    stored vectors (exact copies: HNSW and the refined IVF-PQ keep them), trained parts kept,
    added in one seeded random order as a build adds them."""
    faiss = faiss_index.import_faiss()
    drop = _id_array(old)
    if faiss_index.supports_remove(index):
        faiss_index.remove(index, drop)  # a removed video's old vectors are gone already
        faiss_index.add(index, vectors, ids)
        return index
    held = faiss.vector_to_array(faiss.downcast_index(index).id_map)  # IndexIDMap2 kinds
    keep = held[~np.isin(held, drop)]
    kept, exact = faiss_index.reconstruct(index, keep)
    assert exact, "a non-deleting kind keeps exact vectors"
    fresh = faiss.clone_index(index)
    fresh.reset()  # empty, still trained
    all_ids, all_vectors = np.concatenate([keep, ids]), np.concatenate([kept, vectors])
    order = np.random.default_rng(seed).permutation(len(all_ids))
    faiss_index.add(fresh, all_vectors[order], all_ids[order])
    return fresh


def fill_and_publish(index_dir: Path, catalog: Catalog, params: dict, spec, added: list[int],
                     progress: Progress, replacement: ShardReplacement | None = None,
                     seed: int = 0) -> None:
    """Put the added (recorded, pending) shards' vectors and the replacement's in the store,
    take the replaced videos' old vectors out, and publish (see the module doc)."""
    shards = params["shards"] + added + ([replacement.shard] if replacement else [])
    old = [(catalog.video(v.video_id).first_id, catalog.video(v.video_id).n_proposals)
           for v in (replacement.videos if replacement else [])]
    if backend_of(params) == "milvus":
        store = open_store(index_dir, params)
        fill_milvus(store, catalog, index_dir, added, progress)
        if replacement:
            _upsert_replacement(store, index_dir, replacement)
        publish_milvus(store, index_dir, catalog, spec, shards, params, replacement=replacement)
        store.delete_ranges(old)
        return
    index = faiss_index.read_index(index_dir / params["file"])
    fill_index(index, catalog, index_dir, added, progress=progress)
    if replacement:
        vectors = np.ascontiguousarray(read_embeddings(index_dir, replacement.shard), np.float32)
        ids = np.arange(replacement.first_id, replacement.first_id + len(vectors), dtype=np.int64)
        index = replace_vectors(index, old, vectors, ids, seed)
    publish(index, index_dir, catalog, spec, shards, params, progress=progress,
            replacement=replacement)


def _upsert_replacement(store, index_dir: Path, replacement: ShardReplacement) -> None:
    vectors = np.asarray(read_embeddings(index_dir, replacement.shard), dtype=np.float32)
    table = read_metadata(index_dir, {replacement.shard: replacement.checksum})
    store.upsert(table.ids, vectors, [table.video_names[i] for i in table.video_index],
                 table.start_s, table.end_s)
    store.finish()


class RecordedSources:
    """A feature store over the sources the catalog recorded for its videos."""

    def __init__(self, records: dict[str, VideoRecord]):
        self.records = records

    def load(self, video_id: str) -> np.ndarray:
        return load_feature_source(self.records[video_id].feature_source)

    def source(self, video_id: str) -> str:
        return self.records[video_id].feature_source


def _check_updatable(catalog: Catalog, video_ids: list[str]) -> list[VideoRecord]:
    """All-or-nothing: every id must be indexed (names the others, by reason)."""
    reasons = {None: "not in the index", REMOVED: "removed (bring it back with 'index add "
               "CORPUS')", PENDING: "pending (finish it with 'index add' or drop it with "
               "'index repair')"}
    wrong = [f"{v!r} is {reasons[catalog.video_status(v)]}" for v in video_ids
             if catalog.video_status(v) != INDEXED]
    if wrong:
        raise InputError("nothing updated: " + "; ".join(wrong[:5]))
    return [catalog.video(v) for v in video_ids]


def _videos_to_update(records: list[VideoRecord], corpus_dir, config: BuildConfig, rate):
    """The videos (and their feature store): from the corpus when given, else as recorded."""
    if corpus_dir is None:
        videos = [Video(r.video_id, r.duration, r.feature_source, r.feature_rate, r.video_path)
                  for r in records]
        return videos, RecordedSources({r.video_id: r for r in records})
    corpus, store = open_corpus(corpus_dir, split=config.split, feature_rate=rate)
    missing = [r.video_id for r in records if r.video_id not in corpus.videos]
    if missing:
        raise InputError(f"corpus {corpus_dir} has no video(s) {missing[:5]}; expected every "
                         f"video to update")
    return [corpus.video(r.video_id) for r in records], store


def update_videos(index_dir: str | Path, video_ids: list[str], corpus_dir: str | Path | None = None,
                  config: BuildConfig | None = None, progress: Progress | None = None
                  ) -> BuildReport:
    """Re-embed indexed videos whose features changed (read from ``corpus_dir`` when given, else
    from the feature files the catalog recorded), in place (see the module doc). Videos whose
    features are the ones indexed are left as they are.

    Raises:
        ValueError: an id that is not indexed (all or nothing), bad features (named).
    """
    config, progress = config or BuildConfig(), progress or Silent()
    start, index_dir = time.perf_counter(), Path(index_dir)
    require_index(index_dir, config.catalog_url)
    video_ids = list(dict.fromkeys(video_ids))
    with writer_lock(index_dir, "index update", config.wait):
        catalog, params = require_index(index_dir, config.catalog_url)
        clean_leftovers(index_dir, catalog)
        notes = clean_milvus(index_dir, catalog)
        records = _check_updatable(catalog, video_ids)
        model, _ = load_model(index_dir / MODEL_DIR, config.device)
        rate = config.feature_rate or catalog.info().feature_rate
        videos, store = _videos_to_update(records, corpus_dir, config, rate)
        plan = plan_videos(videos, store, model.config.feature_dim, {}, progress)
        held = {r.video_id: r for r in records}
        changed = [p for p in plan.videos if p.checksum != held[p.video.video_id].checksum
                   or round(p.video.duration, 6) != round(held[p.video.video_id].duration, 6)]
        same = sorted(set(video_ids) - {p.video.video_id for p in changed})
        if same:
            notes.append(f"{len(same)} video(s) have the features they were indexed with, "
                         f"kept: {', '.join(same[:5])}")
        if not changed:
            return BuildReport(index_dir, 0, 0, "unchanged", time.perf_counter() - start, "cpu",
                               notes=notes + ["nothing to update: the index is unchanged"])
        embedder = ShardEmbedder(MomentEncoder(model), store, config.batch_videos)
        replacement = replacement_shard(embedder, index_dir, catalog, changed)
        spec = kept_spec(catalog, params, f"kept the existing {catalog.info().index_type} index")
        fill_and_publish(index_dir, catalog, params, spec, [], progress, replacement, config.seed)
        finish_embeddings(index_dir, config.keep_embeddings)
    return BuildReport(index_dir, len(changed), replacement.n_proposals, spec.reason,
                       time.perf_counter() - start, "cpu",
                       notes=notes + [f"re-embedded {len(changed)} video(s)"])
