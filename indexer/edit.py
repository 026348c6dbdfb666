"""Change a finished index: add the videos of a corpus it does not hold yet (and removed ones
back), remove videos.

Both hold the writer lock, check everything before changing anything, and end with one publish
(``publish.py``): a new FAISS file, then one catalog transaction. An add records its new shards
first (their videos "pending"), so an interrupted add is finished by the next one; removed videos
added back are re-embedded under new ids (``reembed.py``), recorded by the publish itself.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..data.corpus import Corpus, Video
from ..data.corpus_dir import open_corpus
from ..data.features import FeatureStore
from ..embed.encoders import MomentEncoder
from ..errors import InputError
from . import faiss_index
from .backends import backend_of, open_store
from .build import (
    BuildConfig,
    BuildReport,
    ShardEmbedder,
    embed_shards,
    finish_embeddings,
    load_model,
    shards_of,
)
from .catalog import INDEXED, PENDING, REMOVED, Catalog
from .integrity import require_index
from .leftovers import clean_leftovers
from .lock import LockState, describe_holder, writer_lock
from .plan import feature_checksum, plan_videos
from .progress import Progress, Silent
from .publish import kept_spec, publish, publish_milvus
from .query_encoder import ensure_query_encoder
from .reembed import fill_and_publish, replacement_shard
from .store import MODEL_DIR


def _stale_note(state: LockState) -> list[str]:
    if not state.stale:
        return []
    return [f"the last writer, {describe_holder(state.stale)}, was interrupted; cleaned up "
            f"after it"]


def add_videos(corpus_dir: str | Path, index_dir: str | Path, config: BuildConfig | None = None,
               progress: Progress | None = None) -> BuildReport:
    """Embed the corpus videos that the index does not hold yet and add them to it; finish the
    pending videos of an interrupted add first.

    Videos already indexed are skipped (counted in the notes, and named when their features have
    changed since: 'index update' re-embeds them); a removed video of the corpus comes back,
    re-embedded under new ids. With nothing to add, the index is not rewritten.
    """
    config, progress = config or BuildConfig(), progress or Silent()
    start = time.perf_counter()
    index_dir = Path(index_dir)
    require_index(index_dir, config.catalog_url)
    with writer_lock(index_dir, "index add", config.wait) as state:
        catalog, params = require_index(index_dir, config.catalog_url)
        clean_leftovers(index_dir, catalog)
        notes = _stale_note(state)
        if config.query_encoder and ensure_query_encoder(index_dir, index_dir / MODEL_DIR,
                                                         corpus_dir):
            notes.append("exported the index's query encoder (queries now run without PyTorch)")
        model, _ = load_model(index_dir / MODEL_DIR, config.device)
        corpus, store = open_corpus(corpus_dir, split=config.split,
                                    feature_rate=config.feature_rate or catalog.info().feature_rate)
        fresh, known_notes, back = new_videos(corpus, catalog, store)
        plan = plan_videos(fresh, store, model.config.feature_dim, {}, progress)
        returning = plan_videos(back, store, model.config.feature_dim, {}, progress).videos
        pending = sorted(s for s in catalog.embedded_shards() if s not in params["shards"])
        notes += known_notes
        if not plan.videos and not pending and not returning:
            notes.append("nothing to add: the index is unchanged")
            return BuildReport(index_dir, 0, 0, "unchanged", time.perf_counter() - start,
                               "cpu", notes=notes)
        if pending:
            notes.append(f"finished {catalog.counts()['videos_pending']} pending video(s) of "
                         f"an interrupted add")
        embedder = ShardEmbedder(MomentEncoder(model), store, config.batch_videos)
        first_shard = catalog.next_shard()
        groups = shards_of(plan.videos, config.shard_videos)
        embed_shards(embedder, catalog, index_dir, groups, first_shard, catalog.next_id(),
                     progress)
        added = pending + list(range(first_shard, first_shard + len(groups)))
        replacement = replacement_shard(embedder, index_dir, catalog, returning) \
            if returning else None
        if returning:
            notes.append(f"added back {len(returning)} removed video(s), re-embedded under new "
                         f"ids: {', '.join(p.video.video_id for p in returning[:5])}")
        records = catalog.embedded_shards()
        progress.phase("filling the index", sum(records[s].n_proposals for s in added),
                       "vectors")
        spec = kept_spec(catalog, params, f"kept the existing {catalog.info().index_type} index")
        fill_and_publish(index_dir, catalog, params, spec, added, progress, replacement,
                         config.seed)
        finish_embeddings(index_dir, config.keep_embeddings)
    n_new = len(plan.videos) + len(returning)
    return BuildReport(index_dir, n_new, n_new * len(embedder.cells), spec.reason,
                       time.perf_counter() - start, "cpu", notes=notes)


def _changed(videos: list[Video], catalog: Catalog, store: FeatureStore) -> list[str]:
    """Ids of indexed videos whose features differ from those embedded."""
    return [v.video_id for v in videos
            if feature_checksum(store.load(v.video_id)) != catalog.video(v.video_id).checksum]


def new_videos(corpus: Corpus, catalog: Catalog, store: FeatureStore
               ) -> tuple[list[Video], list[str], list[Video]]:
    """Corpus videos not in the catalog, sorted; notes on the ones skipped; the corpus videos
    that were removed from the index (to add back, under new ids)."""
    fresh, known, removed = [], [], []
    for video in sorted(corpus, key=lambda v: v.video_id):
        record = catalog.video(video.video_id)
        if record is None:
            fresh.append(video)
        elif catalog.video_status(video.video_id) == REMOVED:
            removed.append(video)
        else:
            known.append(video)
    notes = [f"{len(known)} video(s) already indexed, skipped"] if known else []
    changed = _changed(known, catalog, store)
    if changed:
        notes.append(f"{len(changed)} of them have different features now than when they were "
                     f"indexed ({', '.join(changed[:5])}); the index keeps the old embeddings: "
                     f"'index update {' '.join(changed[:5])}' re-embeds them")
    return fresh, notes, removed


def _check_removable(catalog: Catalog, video_ids: list[str]) -> None:
    """All-or-nothing: every id must be indexed (names the others, by reason)."""
    by_status: dict[str, list[str]] = {}
    for video_id in video_ids:
        status = catalog.video_status(video_id) or "unknown"
        if status != INDEXED:
            by_status.setdefault(status, []).append(video_id)
    reasons = {"unknown": "not in the index", REMOVED: "already removed",
               PENDING: "pending (an interrupted 'index add' embedded them but never published "
                        "them: run 'index add' again to finish them or 'index repair' to drop "
                        "them)"}
    if by_status:
        raise InputError("nothing removed: " + "; ".join(
            f"{ids[:5]} {reasons[status]}" for status, ids in by_status.items()))


def remove_videos(index_dir: str | Path, video_ids: list[str], catalog_url: str | None = None,
                  wait: float = 0.0) -> int:
    """Remove videos from the index; returns the number of proposals removed.

    The FAISS vectors are deleted (HNSW and refined IVF-PQ cannot delete: their videos are
    tombstoned in the catalog and filtered at search time). All ids are checked before anything
    changes; an id given twice counts once.
    """
    index_dir = Path(index_dir)
    require_index(index_dir, catalog_url)
    video_ids = list(dict.fromkeys(video_ids))
    with writer_lock(index_dir, "index remove", wait):
        catalog, params = require_index(index_dir, catalog_url)
        clean_leftovers(index_dir, catalog)
        _check_removable(catalog, video_ids)
        records = [catalog.video(v) for v in video_ids]
        ids = np.concatenate([np.arange(r.first_id, r.end_id) for r in records])
        spec = kept_spec(catalog, params, "")
        if backend_of(params) == "milvus":
            # the catalog first (removed videos are filtered from then on), then the vectors:
            # a kill in between leaves vectors that repair deletes
            publish_milvus(open_store(index_dir, params), index_dir, catalog, spec,
                           params["shards"], params, remove=video_ids)
            open_store(index_dir, params).delete_ranges([(r.first_id, r.n_proposals)
                                                         for r in records])
            return int(len(ids))
        index = faiss_index.read_index(index_dir / params["file"])
        if faiss_index.supports_remove(index):
            faiss_index.remove(index, ids)  # otherwise tombstoned: filtered at search time
        publish(index, index_dir, catalog, spec, params["shards"], params, remove=video_ids)
    return int(len(ids))
