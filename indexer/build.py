"""Build, extend and shrink an index: features -> clips -> proposals -> FVMR embeddings -> FAISS.

A build streams the corpus shard by shard (a fixed group of videos in sorted id order). Each shard's
embeddings and Parquet metadata are written atomically, then recorded in the catalog in one
transaction; a killed build resumes at the first unrecorded shard and ends with the same index as
an uninterrupted one. The FAISS index is trained on a seeded sample, filled shard by shard and
written last, atomically.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data.corpus import Corpus, Video
from ..data.corpus_dir import open_corpus
from ..data.features import FeatureStore
from ..geometry.proposals import proposal_index
from ..models.base import CONFIG_NAME, WEIGHTS_NAME
from ..models.fvmr import FVMR
from ..pretrained import default_model_dir
from ..search.encoders import MomentEncoder
from . import faiss_index
from .catalog import Catalog, VideoRecord
from .store import (
    CATALOG_FILE,
    EMBEDDINGS_DIR,
    MODEL_DIR,
    ShardRows,
    read_embeddings,
    write_embeddings,
    write_metadata,
)

Progress = Callable[[int, int], None]  # (videos done, proposals done)


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


def model_fingerprint(model_dir: Path) -> tuple[str, str]:
    """``(model_id, config_hash)``: sha256 of the weights and of config.json (12 hex chars each)."""
    weights = hashlib.sha256((model_dir / WEIGHTS_NAME).read_bytes()).hexdigest()[:12]
    config = hashlib.sha256((model_dir / CONFIG_NAME).read_bytes()).hexdigest()[:12]
    return f"fvmr-{weights}", config


def install_model(model_dir: Path, index_dir: Path) -> Path:
    """Copy the checkpoint into ``INDEX_DIR/model`` (once), so the index is self-contained."""
    target = index_dir / MODEL_DIR
    if target.exists():
        if model_fingerprint(target) != model_fingerprint(model_dir):
            raise ValueError(f"{index_dir} was built with another model ({target}); refusing to "
                             f"mix in embeddings of {model_dir}")
        return target
    staging = index_dir / f".{MODEL_DIR}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(model_dir, staging)
    staging.rename(target)
    return target


def open_catalog(index_dir: Path, url: str | None) -> Catalog:
    """The catalog at ``url``, or the SQLite file inside the index directory."""
    return Catalog.open(url or (index_dir / CATALOG_FILE))


def feature_checksum(features: np.ndarray) -> str:
    """sha1 of a video's feature array bytes (detects a changed feature file)."""
    return hashlib.sha1(np.ascontiguousarray(features).tobytes()).hexdigest()


class ShardEmbedder:
    """Embeds the proposals of a group of videos and writes one shard."""

    def __init__(self, encoder: MomentEncoder, store: FeatureStore, batch_videos: int):
        self.encoder = encoder
        self.store = store
        self.batch_videos = batch_videos
        self.cells = proposal_index(encoder.n_clips)  # (P, 2)

    def embed(self, videos: list[Video]) -> tuple[np.ndarray, list[str]]:
        """(V * P, D) embeddings of the videos, in order, and their checksums."""
        parts, checksums = [], []
        for start in range(0, len(videos), self.batch_videos):
            chunk = videos[start:start + self.batch_videos]
            clips = []
            for video in chunk:
                features = self.store.load(video.video_id)
                checksums.append(feature_checksum(features))
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

    def write_shard(self, index_dir: Path, shard: int, videos: list[Video], first_id: int
                    ) -> list[VideoRecord]:
        """Embed, write embeddings + metadata atomically; returns the catalog records."""
        embeddings, checksums = self.embed(videos)
        write_embeddings(index_dir, shard, embeddings)
        write_metadata(index_dir, shard, self.rows(videos, first_id))
        n_props = len(self.cells)
        return [VideoRecord(video_id=v.video_id, duration=v.duration,
                            feature_source=v.feature_source or "", feature_rate=v.feature_rate,
                            checksum=c, n_proposals=n_props, first_id=first_id + i * n_props,
                            shard=shard)
                for i, (v, c) in enumerate(zip(videos, checksums, strict=True))]


def load_model(model_dir: Path, device: str) -> tuple[FVMR, dict]:
    """The FVMR checkpoint on the resolved device, and its stored settings."""
    from ..device import resolve_device

    _, extra = FVMR.read_config(model_dir)
    return FVMR.from_pretrained(model_dir, resolve_device(device)), extra


def shards_of(videos: list[Video], shard_videos: int) -> list[list[Video]]:
    """Consecutive groups of ``shard_videos`` videos."""
    return [videos[i:i + shard_videos] for i in range(0, len(videos), shard_videos)]


def embed_shards(embedder: ShardEmbedder, catalog: Catalog, index_dir: Path,
                 groups: list[list[Video]], first_shard: int, first_id: int,
                 progress: Progress | None) -> int:
    """Embed and record every group not yet recorded; returns how many were already done."""
    done = catalog.embedded_shards()
    n_props = len(embedder.cells)
    skipped = 0
    for offset, group in enumerate(groups):
        shard = first_shard + offset
        if shard in done:
            skipped += 1
        else:
            records = embedder.write_shard(index_dir, shard, group, first_id)
            catalog.record_shard(shard, first_id, records)
        first_id += n_props * len(group)
        if progress:
            progress(len(group), n_props * len(group))
    return skipped


def training_sample(index_dir: Path, shards: list[int], size: int, seed: int) -> np.ndarray:
    """A seeded uniform sample of ``size`` embeddings drawn across the shards."""
    arrays = [read_embeddings(index_dir, s) for s in shards]
    total = sum(len(a) for a in arrays)
    picks = np.sort(np.random.default_rng(seed).choice(total, min(size, total), replace=False))
    bounds = np.cumsum([0] + [len(a) for a in arrays])
    parts = [arrays[i][picks[(picks >= lo) & (picks < hi)] - lo]
             for i, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:], strict=True))]
    return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)


def fill_index(index, catalog: Catalog, index_dir: Path, shards: list[int],
               seed: int = 0) -> None:
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
    if parts:
        vectors, all_ids = np.concatenate(parts), np.concatenate(ids)
        order = np.random.default_rng(seed).permutation(len(all_ids))
        faiss_index.add(index, vectors[order], all_ids[order])


def publish_index(index, index_dir: Path, catalog: Catalog, spec, shards: list[int],
                  previous: dict | None) -> None:
    """Write the FAISS file under a new name, point the catalog at it, delete the old file."""
    params = dict(spec.params)
    params["version"] = int((previous or {}).get("version", 0)) + 1
    params["file"] = f"index-{params['version']:05d}.faiss"  # the catalog switches to it
    params["shards"] = sorted(shards)
    faiss_index.write_index(index, index_dir / params["file"])
    counts = catalog.counts()
    catalog.set_index(spec.kind, params, counts["videos_indexed"], counts["proposals_indexed"],
                      counts["proposals_removed"])
    if previous and previous.get("file") and previous["file"] != params["file"]:
        (index_dir / previous["file"]).unlink(missing_ok=True)


def kept_spec(catalog: Catalog, params: dict, reason: str) -> faiss_index.IndexSpec:
    """The spec of the index a catalog points at (its params without the bookkeeping keys)."""
    kept = {k: v for k, v in params.items() if k not in ("file", "shards", "version")}
    return faiss_index.IndexSpec(catalog.info().index_type, kept, reason=reason)


def make_index(index_dir: Path, catalog: Catalog, shards: list[int], config: BuildConfig):
    """Choose, train and fill a FAISS index over the shards; returns (index, spec, placement)."""
    counts = catalog.counts()
    n, dim = counts["proposals_indexed"], catalog.info().embedding_dim
    spec = faiss_index.choose_index(n, dim, faiss_index.parse_bytes(config.memory_budget),
                                    config.index_kind)
    spec = faiss_index.fit_spec_to_data(spec, n)
    placement = faiss_index.resolve_placement(config.device)
    index = faiss_index.to_device(faiss_index.new_index(spec, dim), placement)
    sample_size = faiss_index.train_sample_size(spec, n)
    if sample_size:
        faiss_index.train(index, training_sample(index_dir, shards, sample_size, config.seed))
    fill_index(index, catalog, index_dir, shards, config.seed)
    return faiss_index.to_cpu(index), spec, placement


def check_new_target(index_dir: Path, resume: bool) -> None:
    """Refuse to overwrite a finished index; refuse to resume what does not exist."""
    finished = index_dir.is_dir() and any(index_dir.glob("index-*.faiss"))
    if finished and not resume:
        raise ValueError(f"{index_dir} already holds an index; use 'index add' to extend it or "
                         f"choose another --out")
    if resume and not (index_dir / MODEL_DIR).is_dir():
        raise ValueError(f"{index_dir}: nothing to resume (no interrupted build there)")


def build_index(corpus_dir: str | Path, index_dir: str | Path, model_dir: str | Path | None = None,
                config: BuildConfig | None = None, resume: bool = False,
                progress: Progress | None = None) -> BuildReport:
    """Index every proposal of every video of a corpus directory.

    Args:
        corpus_dir: the corpus (features + manifest or annotations).
        index_dir: where the index goes (created).
        model_dir: FVMR checkpoint; None: the shipped model.
        config: see :class:`BuildConfig`.
        resume: continue an interrupted build in ``index_dir``.
        progress: called with (videos, proposals) after each shard.

    Raises:
        ValueError: bad corpus, an existing index, or a model that differs from the one an
            interrupted build used.
    """
    config = config or BuildConfig()
    start = time.perf_counter()
    index_dir = Path(index_dir)
    check_new_target(index_dir, resume)
    index_dir.mkdir(parents=True, exist_ok=True)
    model_path = install_model(Path(model_dir) if model_dir else default_model_dir("fvmr"),
                               index_dir)
    model, extra = load_model(model_path, config.device)
    rate = config.feature_rate if config.feature_rate is not None else extra.get("feature_rate")
    corpus, store = open_corpus(corpus_dir, split=config.split, feature_rate=rate)
    catalog = open_catalog(index_dir, config.catalog_url)
    catalog.init_index(*model_fingerprint(model_path), model.config.n_clips, rate,
                       model.embedding_dim)
    groups = shards_of(sorted(corpus, key=lambda v: v.video_id), config.shard_videos)
    embedder = ShardEmbedder(MomentEncoder(model), store, config.batch_videos)
    skipped = embed_shards(embedder, catalog, index_dir, groups, 0, 0, progress)
    shards = list(range(len(groups)))
    index, spec, placement = make_index(index_dir, catalog, shards, config)
    publish_index(index, index_dir, catalog, spec, shards, None)
    finish_embeddings(index_dir, config.keep_embeddings)
    return BuildReport(index_dir, len(corpus), catalog.counts()["proposals_indexed"],
                       spec.reason, time.perf_counter() - start, str(placement), skipped)


def finish_embeddings(index_dir: Path, keep: bool) -> None:
    """Delete the embedding shards once the FAISS index holds them, unless asked to keep them."""
    if not keep:
        shutil.rmtree(index_dir / EMBEDDINGS_DIR, ignore_errors=True)


def require_index(index_dir: Path, catalog_url: str | None = None) -> tuple[Catalog, dict]:
    """The catalog of a finished index and its index params; clear errors otherwise."""
    if not index_dir.is_dir():
        raise FileNotFoundError(f"index directory {index_dir} does not exist")
    if catalog_url is None and not (index_dir / CATALOG_FILE).is_file():
        raise FileNotFoundError(f"{index_dir}: no {CATALOG_FILE}; not an index directory")
    catalog = open_catalog(index_dir, catalog_url)
    info = catalog.info()
    if info is None or not info.index_params or "file" not in info.index_params:
        raise ValueError(f"{index_dir}: the index was never finished (run 'index build --resume')")
    return catalog, dict(info.index_params)


def add_videos(corpus_dir: str | Path, index_dir: str | Path, config: BuildConfig | None = None,
               progress: Progress | None = None) -> BuildReport:
    """Embed the corpus videos that the index does not hold yet and add them to it.

    Videos already indexed are skipped (counted in the notes); a removed video cannot come back
    under the same id.
    """
    config = config or BuildConfig()
    start = time.perf_counter()
    index_dir = Path(index_dir)
    catalog, params = require_index(index_dir, config.catalog_url)
    model, _ = load_model(index_dir / MODEL_DIR, config.device)
    info = catalog.info()
    corpus, store = open_corpus(corpus_dir, split=config.split,
                                feature_rate=config.feature_rate or info.feature_rate)
    new, notes = new_videos(corpus, catalog)
    pending = [s for s in catalog.embedded_shards() if s not in params["shards"]]
    groups = shards_of(new, config.shard_videos)
    embedder = ShardEmbedder(MomentEncoder(model), store, config.batch_videos)
    first_shard = catalog.next_shard()
    embed_shards(embedder, catalog, index_dir, groups, first_shard, catalog.next_id(), progress)
    added = pending + list(range(first_shard, first_shard + len(groups)))
    index = faiss_index.read_index(index_dir / params["file"])
    fill_index(index, catalog, index_dir, added)
    spec = kept_spec(catalog, params, f"kept the existing {info.index_type} index")
    publish_index(index, index_dir, catalog, spec, params["shards"] + added, params)
    finish_embeddings(index_dir, config.keep_embeddings)
    return BuildReport(index_dir, len(new), len(new) * len(embedder.cells), spec.reason,
                       time.perf_counter() - start, "cpu", notes=notes)


def new_videos(corpus: Corpus, catalog: Catalog) -> tuple[list[Video], list[str]]:
    """Corpus videos not in the catalog, sorted; notes on the ones skipped."""
    gone = {r.video_id for r in catalog.videos(status="removed")}
    fresh, known, removed = [], 0, []
    for video in sorted(corpus, key=lambda v: v.video_id):
        if video.video_id in gone:
            removed.append(video.video_id)
        elif catalog.video(video.video_id) is None:
            fresh.append(video)
        else:
            known += 1
    if removed:
        raise ValueError(f"videos {removed[:5]} were removed from this index; re-adding a removed "
                         f"video id is not supported (rebuild the index)")
    return fresh, [f"{known} video(s) already indexed, skipped"] if known else []


def remove_videos(index_dir: str | Path, video_ids: list[str], catalog_url: str | None = None
                  ) -> int:
    """Remove videos from the index; returns the number of proposals removed.

    The FAISS vectors are deleted (HNSW and refined IVF-PQ cannot delete: their videos are
    tombstoned in the catalog and filtered at search time). All ids are checked before anything
    changes.
    """
    index_dir = Path(index_dir)
    catalog, params = require_index(index_dir, catalog_url)
    live = {r.video_id: r for r in catalog.videos(status="indexed")}
    unknown = [v for v in video_ids if v not in live]
    if unknown:
        raise ValueError(f"not in the index (or already removed): {unknown}")
    index = faiss_index.read_index(index_dir / params["file"])
    records = [live[v] for v in video_ids]
    ids = np.concatenate([np.arange(r.first_id, r.first_id + r.n_proposals) for r in records])
    if faiss_index.supports_remove(index):
        faiss_index.remove(index, ids)  # otherwise tombstoned: the catalog filters at search time
    catalog.mark_removed(video_ids)
    publish_index(index, index_dir, catalog, kept_spec(catalog, params, ""), params["shards"],
                  params)
    return int(len(ids))


def verify_model_matches(index_dir: Path, catalog: Catalog) -> None:
    """Refuse an index whose stored model is not the one its embeddings were made with."""
    info = catalog.info()
    found = model_fingerprint(index_dir / MODEL_DIR)
    if (info.model_id, info.config_hash) != found:
        raise ValueError(f"{index_dir}: model/ is {found[0]} (config {found[1]}) but the index "
                         f"was built with {info.model_id} (config {info.config_hash})")


def index_summary(index_dir: str | Path, catalog_url: str | None = None) -> dict:
    """What ``index info`` prints: model, index type and parameters, counts, sizes, dates."""
    index_dir = Path(index_dir)
    catalog, params = require_index(index_dir, catalog_url)
    info = catalog.info()
    file = index_dir / params["file"]
    return {"index_dir": str(index_dir), "model_id": info.model_id,
            "config_hash": info.config_hash, "map_size": info.map_size,
            "feature_rate": info.feature_rate, "embedding_dim": info.embedding_dim,
            "index_type": info.index_type,
            "index_params": {k: v for k, v in params.items() if k != "shards"},
            **catalog.counts(), "index_bytes": file.stat().st_size if file.exists() else None,
            "created_at": str(info.created_at), "updated_at": str(info.updated_at)}


def verify_index(index_dir: str | Path, catalog_url: str | None = None) -> list[str]:
    """Check that FAISS, the Parquet metadata and the catalog agree; returns the problems found.

    Checks: the model fingerprint; FAISS ntotal against the catalog's live proposals (an index
    that cannot delete, HNSW or refined IVF-PQ, keeps removed vectors, tombstoned); Parquet row
    count, ids = row numbers, and each video's id range.
    """
    from .store import read_metadata

    index_dir = Path(index_dir)
    catalog, params = require_index(index_dir, catalog_url)
    problems = []
    try:
        verify_model_matches(index_dir, catalog)
    except ValueError as e:
        problems.append(str(e))
    counts = catalog.counts()
    index = faiss_index.read_index(index_dir / params["file"])
    expected = counts["proposals_indexed"] + (
        0 if faiss_index.supports_remove(index) else counts["proposals_removed"])
    if index.ntotal != expected:
        problems.append(f"FAISS holds {index.ntotal} vectors, the catalog expects {expected}")
    table = read_metadata(index_dir)
    if len(table) != catalog.next_id():
        problems.append(f"Parquet has {len(table)} rows, the catalog assigned "
                        f"{catalog.next_id()} ids")
    if not np.array_equal(table.ids, np.arange(len(table))):
        problems.append("Parquet ids are not their row numbers")
    problems += video_range_problems(table, catalog)
    return problems


def video_range_problems(table, catalog: Catalog) -> list[str]:
    """Each catalog video's id range must hold exactly its rows in the Parquet metadata."""
    problems = []
    records = catalog.videos(status="indexed") + catalog.videos(status="removed")
    for record in records:
        rows = slice(record.first_id, record.first_id + record.n_proposals)
        codes = np.unique(table.video_index[rows])
        names = [table.video_names[c] for c in codes]
        if names != [record.video_id]:
            problems.append(f"video {record.video_id!r}: ids {rows.start}..{rows.stop - 1} hold "
                            f"rows of {names[:3]}")
    return problems
