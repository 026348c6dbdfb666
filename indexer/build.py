"""Build an index: features -> clips -> proposals -> FVMR embeddings -> FAISS.

A build first checks every video's features and records the corpus plan (``plan.py``), then
streams the corpus shard by shard (a fixed group of videos in sorted id order). Each shard's
embeddings and Parquet metadata are written atomically, then recorded in the catalog in one
transaction, its videos "pending"; a killed build resumes at the first unrecorded shard (refused
if the corpus or settings changed) and ends with the same bytes as an uninterrupted one. The FAISS
index is trained on a seeded sample, filled, written, and published (``publish.py``). Every
writer holds the index's writer lock (``lock.py``). Adding and removing videos: ``edit.py``.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data.corpus import Video
from ..data.corpus_dir import open_corpus
from ..data.features import FeatureError, FeatureStore
from ..embed.encoders import MomentEncoder
from ..embed.onnx_encoder import ENCODER_DIR
from ..errors import InputError
from ..geometry.proposals import proposal_index
from ..models.base import model_fingerprint
from ..models.fvmr import FVMR
from ..pretrained import default_model_dir
from .backends import BACKENDS
from .catalog import Catalog, VideoRecord
from .leftovers import clean_leftovers
from .lock import HOLDER_FILE, LOCK_FILE, writer_lock
from .plan import (
    PLAN_FILE,
    CorpusPlan,
    load_checked,
    plan_differences,
    plan_videos,
    read_plan,
    write_plan,
)
from .progress import Progress, Silent
from .publish import make_index, make_milvus, publish, publish_milvus
from .query_encoder import ensure_query_encoder
from .snapshot import lost_catalog_message
from .store import (
    CATALOG_FILE,
    EMBEDDINGS_DIR,
    MODEL_DIR,
    ShardRows,
    file_sha256,
    open_catalog,
    write_embeddings,
    write_metadata,
)


@dataclass
class BuildConfig:
    """How to build an index."""

    index_kind: str = "auto"  # auto | flat | ivf | ivfpq | hnsw
    memory_budget: str = "4G"  # for the FAISS index
    device: str = "auto"  # auto | cpu | cuda:N, for embedding and FAISS
    shard_videos: int = 256  # videos per shard (the unit of resumption)
    batch_videos: int = 64  # videos per forward pass
    keep_embeddings: bool = False  # keep embeddings/ after the FAISS index is written
    catalog_url: str | None = None  # default: sqlite file in the index directory
    feature_rate: float | None = None  # default: the model's training feature rate
    split: str | None = None  # index only the videos of this annotation split
    seed: int = 0
    wait: float = 0.0  # seconds to wait for another writer's lock
    backend: str = "faiss"  # faiss | milvus (see indexer/backends)
    milvus_uri: str | None = None  # milvus-lite path or server URI; default INDEX_DIR/milvus.db
    # export the model's query side to ONNX into INDEX_DIR/encoder (queries then need no torch)
    query_encoder: bool = True

    def identity(self) -> dict:
        """The settings that shape the index (part of a build's plan)."""
        return {"index_kind": self.index_kind, "memory_budget": self.memory_budget,
                "shard_videos": self.shard_videos, "split": self.split,
                "feature_rate": self.feature_rate, "seed": self.seed,
                "backend": self.backend, "milvus_uri": self.milvus_uri}


@dataclass
class BuildReport:
    """What a build (or add) did."""

    index_dir: Path
    n_videos: int
    n_proposals: int
    index_spec: str
    seconds: float
    placement: str
    shards_skipped: int = 0
    notes: list[str] = field(default_factory=list)


def install_model(model_dir: Path, index_dir: Path) -> Path:
    """Copy the checkpoint into ``INDEX_DIR/model`` (once), so the index is self-contained."""
    target = index_dir / MODEL_DIR
    if target.exists():
        if model_fingerprint(target) != model_fingerprint(model_dir):
            raise InputError(f"{index_dir} was built with another model ({target}); refusing to "
                             f"mix in embeddings of {model_dir}")
        return target
    staging = index_dir / f".{MODEL_DIR}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(model_dir, staging)
    staging.rename(target)
    return target


class ShardEmbedder:
    """Embeds the proposals of a group of videos and writes one shard."""

    def __init__(self, encoder: MomentEncoder, store: FeatureStore, batch_videos: int,
                 width: int | None = None):
        self.encoder = encoder
        self.store = store
        self.batch_videos = batch_videos
        self.width = width or encoder.model.config.feature_dim
        self.cells = proposal_index(encoder.n_clips)  # (P, 2)

    def embed(self, videos: list[Video], expected: list[str] | None = None
              ) -> tuple[np.ndarray, list[str]]:
        """(V * P, D) embeddings of the videos, in order, and their feature checksums.

        Raises:
            FeatureError: a video's features changed since they were checked (``expected``).
        """
        from .plan import feature_checksum

        parts, checksums = [], []
        for start in range(0, len(videos), self.batch_videos):
            clips = []
            for video in videos[start:start + self.batch_videos]:
                features = load_checked(self.store, video, self.width)
                checksums.append(feature_checksum(features))
                if expected and checksums[-1] != expected[len(checksums) - 1]:
                    raise FeatureError(f"video {video.video_id!r}: its features "
                                       f"({self.store.source(video.video_id)}) changed while "
                                       f"the index was being written; run the command again")
                clips.append(self.encoder.clips(features, video))
            embedded = self.encoder.embed_clips(np.stack(clips))  # (b, P, D)
            parts.append(embedded.reshape(-1, embedded.shape[-1]))
        return np.concatenate(parts), checksums

    def rows(self, videos: list[Video], first_id: int) -> ShardRows:
        """The metadata rows of the videos' proposals, ids from ``first_id``."""
        n_props = len(self.cells)
        spans = [self.encoder.spans(v.duration) for v in videos]
        return ShardRows(
            ids=np.arange(first_id, first_id + n_props * len(videos), dtype=np.int64),
            video_ids=[v.video_id for v in videos for _ in range(n_props)],
            start_s=np.concatenate([s[:, 0] for s in spans]),
            end_s=np.concatenate([s[:, 1] for s in spans]),
            clip_i=np.tile(self.cells[:, 0], len(videos)).astype(np.int32),
            clip_j=np.tile(self.cells[:, 1], len(videos)).astype(np.int32),
            map_size=self.encoder.n_clips,
        )

    def write_shard(self, index_dir: Path, catalog: Catalog, shard: int, videos: list[Video],
                    first_id: int, expected: list[str] | None = None) -> None:
        """Embed, write embeddings + metadata atomically, then record the shard (pending)."""
        embeddings, checksums = self.embed(videos, expected)
        self.record_shard(index_dir, catalog, shard, videos, first_id, embeddings, checksums)

    def record_shard(self, index_dir: Path, catalog: Catalog, shard: int, videos: list[Video],
                     first_id: int, embeddings: np.ndarray, checksums: list[str]) -> None:
        """Write a shard's (V * P, D) embeddings and metadata atomically, then record it
        (pending) with its videos' feature ``checksums``."""
        write_embeddings(index_dir, shard, embeddings)
        meta = write_metadata(index_dir, shard, self.rows(videos, first_id))
        n_props = len(self.cells)
        records = [VideoRecord(video_id=v.video_id, duration=v.duration,
                               feature_source=v.feature_source or "", feature_rate=v.feature_rate,
                               checksum=c, n_proposals=n_props, first_id=first_id + i * n_props,
                               shard=shard, video_path=v.video_path)
                   for i, (v, c) in enumerate(zip(videos, checksums, strict=True))]
        catalog.record_shard(shard, first_id, records, file_sha256(meta))


def make_embedder(model: FVMR, store: FeatureStore, batch_videos: int) -> ShardEmbedder:
    """The shard embedder of a loaded checkpoint over a feature store."""
    return ShardEmbedder(MomentEncoder(model), store, batch_videos)


def load_model(model_dir: Path, device: str) -> tuple[FVMR, dict]:
    """The FVMR checkpoint on the resolved device, and its stored settings."""
    from ..device import resolve_device

    _, extra = FVMR.read_config(model_dir)
    return FVMR.from_pretrained(model_dir, resolve_device(device)), extra


def shards_of(videos: list, shard_videos: int) -> list[list]:
    """Consecutive groups of ``shard_videos`` items."""
    return [videos[i:i + shard_videos] for i in range(0, len(videos), shard_videos)]


def embed_shards(embedder: ShardEmbedder, catalog: Catalog, index_dir: Path,
                 groups: list[list], first_shard: int, first_id: int,
                 progress: Progress) -> int:
    """Embed and record every group (of PlannedVideo) not yet recorded; returns how many were
    already done."""
    done = catalog.embedded_shards()
    n_props = len(embedder.cells)
    skipped = 0
    progress.phase("embedding", sum(len(g) for g in groups), "videos")
    for offset, group in enumerate(groups):
        shard = first_shard + offset
        if shard in done:
            skipped += 1
        else:
            embedder.write_shard(index_dir, catalog, shard, [p.video for p in group], first_id,
                                 [p.checksum for p in group])
        first_id += n_props * len(group)
        progress.advance(len(group))
    return skipped


def _target_state(index_dir: Path, catalog_url: str | None) -> tuple[bool, bool, set[str]]:
    """(finished, started, other entries) of a would-be index folder."""
    if index_dir.exists() and not index_dir.is_dir():
        raise InputError(f"--out {index_dir} is a file, not a directory; choose a new folder")
    entries = {p.name for p in index_dir.iterdir()} if index_dir.is_dir() else set()
    started = MODEL_DIR in entries or (catalog_url is None and CATALOG_FILE in entries)
    finished = False
    if started and (catalog_url or CATALOG_FILE in entries):
        info = open_catalog(index_dir, catalog_url).info()
        finished = info is not None and "shards" in (info.index_params or {})
    ours = {n for n in entries if n in (LOCK_FILE, HOLDER_FILE) or n.startswith(f".{HOLDER_FILE}")}
    return finished, started, entries - ours


def check_foreign_target(index_dir: Path, catalog_url: str | None) -> None:
    """Refuse a file, or a non-empty folder that is not an index (before anything is written)."""
    _, started, stray = _target_state(index_dir, catalog_url)
    if not started and stray:
        raise InputError(f"--out {index_dir} is a non-empty folder that is not an index "
                         f"({len(stray)} entries, e.g. {sorted(stray)[0]!r}); choose an empty "
                         f"or new folder")


def check_new_target(index_dir: Path, resume: bool, catalog_url: str | None) -> None:
    """Refuse to overwrite an index or to start over an interrupted build without ``resume``
    (a resume with nothing to resume builds from scratch: the result is the same)."""
    check_foreign_target(index_dir, catalog_url)
    finished, started, _ = _target_state(index_dir, catalog_url)
    lost = started and not finished and lost_catalog_message(index_dir, catalog_url)
    if lost and _catalog_empty(index_dir, catalog_url):
        raise InputError(lost)  # a resume would lose what was published: never offer it
    if finished:
        raise InputError(f"{index_dir} already holds a finished index" + (
            ", so there is nothing to resume" if resume else "") +
            "; use 'index add' to extend it, or choose another --out")
    if started and not resume:
        raise InputError(f"{index_dir} holds an interrupted build; continue it with --resume "
                         f"(same corpus and settings), or delete the folder to start again")


def _catalog_empty(index_dir: Path, catalog_url: str | None) -> bool:
    """Whether the catalog is missing or records nothing (lost, not an interrupted build)."""
    if catalog_url is None and not (index_dir / CATALOG_FILE).exists():
        return True
    return open_catalog(index_dir, catalog_url).info() is None


def check_plan(index_dir: Path, catalog: Catalog, plan: CorpusPlan) -> None:
    """A resumed build must be the same corpus and settings as the interrupted one."""
    info = catalog.info()
    if info is None or info.corpus_digest == plan.digest():
        return  # (no info: the interrupted build stopped before recording anything)
    differences = plan_differences(read_plan(index_dir), plan)
    raise InputError(f"{index_dir}: the interrupted build was started on another corpus or "
                     f"settings, so it cannot be resumed: " + "; ".join(differences)
                     + ". Resume with the original corpus and options, or delete the folder "
                     "and build again")


def build_index(corpus_dir: str | Path, index_dir: str | Path, model_dir: str | Path | None = None,
                config: BuildConfig | None = None, resume: bool = False,
                progress: Progress | None = None, embed=None) -> BuildReport:
    """Index every proposal of every video of a corpus directory.

    Args:
        corpus_dir: the corpus (features + manifest or annotations).
        index_dir: where the index goes (created; must be new, empty, or an interrupted build
            with ``resume``).
        model_dir: FVMR checkpoint; None: the shipped model.
        config: see :class:`BuildConfig`.
        resume: continue an interrupted build in ``index_dir``.
        progress: told each phase (checking, embedding, training, filling, writing).
        embed: what embeds the shards, with :func:`embed_shards`'s arguments (default: it, in
            this process; ``ray_build.RayShardEmbedding`` spreads them over a Ray cluster).

    Raises:
        ValueError: bad corpus or features (named), an existing index, another writer, or a
            resume whose model, corpus or settings differ from the interrupted build's.
    """
    config, progress = config or BuildConfig(), progress or Silent()
    if config.backend not in BACKENDS:
        raise InputError(f"backend must be one of {BACKENDS}, got {config.backend!r}")
    index_dir = Path(index_dir)
    check_foreign_target(index_dir, config.catalog_url)
    created = not index_dir.exists()
    index_dir.mkdir(parents=True, exist_ok=True)
    with writer_lock(index_dir, "index build", config.wait):
        check_new_target(index_dir, resume, config.catalog_url)
        try:
            return _build(corpus_dir, index_dir, model_dir, config, resume, progress,
                          embed or embed_shards)
        except BaseException:
            _undo_unstarted(index_dir, created, config.catalog_url)
            raise


def _undo_unstarted(index_dir: Path, created: bool, catalog_url: str | None) -> None:
    """After a failed build that recorded no shard, leave the folder as it was found."""
    try:
        catalog = open_catalog(index_dir, catalog_url) if (index_dir / MODEL_DIR).exists() \
            else None
        if catalog is not None and catalog.embedded_shards():
            return  # work to resume: keep it
    except (OSError, ValueError):
        return
    if created:
        shutil.rmtree(index_dir, ignore_errors=True)
        return
    for name in (MODEL_DIR, ENCODER_DIR, EMBEDDINGS_DIR, "meta", CATALOG_FILE, PLAN_FILE):
        path = index_dir / name
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)


def _build(corpus_dir, index_dir: Path, model_dir, config: BuildConfig, resume: bool,
           progress: Progress, embed) -> BuildReport:
    start = time.perf_counter()
    source = Path(model_dir) if model_dir else default_model_dir("fvmr")
    if resume and (index_dir / MODEL_DIR).exists():
        install_model(source, index_dir)  # refuses another model before reading the corpus
    model, extra = load_model(source, config.device)
    rate = config.feature_rate if config.feature_rate is not None else extra.get("feature_rate")
    corpus, store = open_corpus(corpus_dir, split=config.split, feature_rate=rate)
    plan = plan_videos(list(corpus), store, model.config.feature_dim,
                       {**config.identity(), "model": model_fingerprint(source)[0]}, progress)
    model_path = install_model(source, index_dir)
    catalog = open_catalog(index_dir, config.catalog_url)
    clean_leftovers(index_dir, catalog)
    if resume and catalog.info() is not None:
        check_plan(index_dir, catalog, plan)
    else:
        write_plan(index_dir, plan)
    catalog.init_index(*model_fingerprint(model_path), model.config.n_clips, rate,
                       model.embedding_dim, plan.digest())
    if config.query_encoder:
        progress.phase("exporting the query encoder", None, "")
        ensure_query_encoder(index_dir, model_path, corpus_dir)
    groups = shards_of(plan.videos, config.shard_videos)
    embedder = make_embedder(model, store, config.batch_videos)
    skipped = embed(embedder, catalog, index_dir, groups, 0, 0, progress)
    shards = list(range(len(groups)))
    if config.backend == "milvus":
        store, spec = make_milvus(index_dir, catalog, shards, config, not skipped, progress)
        publish_milvus(store, index_dir, catalog, spec, shards, None)
        placement = "milvus"
    else:
        index, spec, placement = make_index(index_dir, catalog, shards, config, progress,
                                            corpus_dir)
        publish(index, index_dir, catalog, spec, shards, None, progress=progress)
    finish_embeddings(index_dir, config.keep_embeddings)
    return BuildReport(index_dir, len(corpus), catalog.counts()["proposals_indexed"],
                       spec.reason, time.perf_counter() - start, str(placement), skipped)


def finish_embeddings(index_dir: Path, keep: bool) -> None:
    """Delete the embedding shards once the FAISS index holds them, unless asked to keep them."""
    if not keep:
        shutil.rmtree(index_dir / EMBEDDINGS_DIR, ignore_errors=True)
