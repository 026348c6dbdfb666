"""``index verify``: the full check that FAISS, the Parquet metadata and the catalog agree.

Beyond the checksums (``integrity.py``): the model fingerprint; FAISS ntotal against the
catalog's live proposals (an index that cannot delete, HNSW or refined IVF-PQ, keeps removed
vectors, tombstoned); Parquet rows = ids = row numbers; each video's id range holds its rows, and
every row lies inside its video; a seeded sample of videos is re-embedded from its features and
compared with the vectors stored in FAISS (exact kinds: equal to 1e-4; IVF-PQ, which stores an
approximation: each stored vector must be nearer its own fresh embedding than any other proposal
of the video for at least ``PQ_MIN_SELF_MATCH`` of the rows).
"""

from __future__ import annotations

import os
from contextlib import nullcontext
from pathlib import Path

import numpy as np

from ..data.corpus import Video
from ..data.features import FeatureError, load_feature_source
from .backends import open_store
from .catalog import Catalog, VideoRecord
from .integrity import (
    pending_note,
    published_file_problems,
    published_shards,
    require_index,
    verify_model_matches,
)
from .store import MODEL_DIR, ProposalTable, read_metadata

EXACT_TOLERANCE = 1e-4
# Measured on the shipped model's plain IVF-PQ index of the 150 Charades-STA val videos (66 x 8-bit
# codes, `index build ... --split val --index ivfpq --memory-budget 3M`), 60 videos: a video's
# own stored vectors self-match 0.65-1.0 (mean 0.94); another video's vectors 0.14 (max 0.32).
PQ_MIN_SELF_MATCH = 0.5
ROW_SLACK_S = 1e-6


def verify_index(index_dir: str | Path, catalog_url: str | None = None, sample_videos: int = 8,
                 seed: int = 0) -> list[str]:
    """Every problem found (empty: the index is sound). See the module doc."""
    from .leftovers import leftovers
    from .lock import writer_lock

    index_dir = Path(index_dir)
    catalog, params = require_index(index_dir, catalog_url)
    # never see a writer mid-change (a read-only index has none: check it as it is)
    writable = os.access(index_dir, os.W_OK)
    with writer_lock(index_dir, "index verify", wait=60.0) if writable else nullcontext():
        problems = []
        try:
            verify_model_matches(index_dir, catalog)
        except ValueError as e:
            problems.append(str(e))
        problems += published_file_problems(index_dir, catalog, full=True)
        stray = leftovers(index_dir, catalog)
        if stray:
            problems.append(f"{len(stray)} file(s) left by an interrupted writer (e.g. "
                            f"{stray[0].name}); 'index repair' deletes them")
        if problems:
            return problems  # the content checks below would read damaged files
        index = open_store(index_dir, params)
        table = read_metadata(index_dir, published_shards(catalog, params))
        problems += count_problems(index, table, catalog)
        problems += video_range_problems(table, catalog)
        problems += row_time_problems(table, catalog)
        if not problems:
            problems += vector_problems(index_dir, index, catalog, sample_videos, seed)
    note = pending_note(catalog)
    return problems + ([note] if note else [])


def count_problems(index, table: ProposalTable, catalog: Catalog) -> list[str]:
    counts = catalog.counts()
    problems = []
    expected = counts["proposals_indexed"] + (
        0 if index.supports_remove() else counts["proposals_removed"])
    held = index.count([(0, len(table))]) if index.kind == "milvus" else index.count()
    if held != expected:
        problems.append(f"the {index.kind} store holds {held} vectors of published videos, "
                        f"the catalog expects {expected}"
                        + ("; 'index repair' deletes removed videos' vectors"
                           if held > expected else ""))
    retired = sum(n for _, n in catalog.retired_ranges(catalog.info().index_params["shards"]))
    published = counts["proposals_indexed"] + counts["proposals_removed"] + retired
    if len(table) != published:
        problems.append(f"Parquet has {len(table)} rows, the catalog's published videos own "
                        f"{published - retired} ids and {retired} are retired (re-embedded "
                        f"videos' old ids)")
    if not np.array_equal(table.ids, np.arange(len(table))):
        problems.append("Parquet ids are not their row numbers")
    return problems


def _published_records(catalog: Catalog) -> list[VideoRecord]:
    return catalog.videos(status="indexed") + catalog.videos(status="removed")


def video_range_problems(table: ProposalTable, catalog: Catalog) -> list[str]:
    """Each catalog video's id range must hold exactly its rows in the Parquet metadata."""
    problems = []
    for record in _published_records(catalog):
        rows = slice(record.first_id, record.first_id + record.n_proposals)
        codes = np.unique(table.video_index[rows])
        names = [table.video_names[c] for c in codes]
        if names != [record.video_id]:
            problems.append(f"video {record.video_id!r}: ids {rows.start}..{rows.stop - 1} hold "
                            f"rows of {names[:3]}")
    return problems


def row_time_problems(table: ProposalTable, catalog: Catalog) -> list[str]:
    """Every row's moment must be a non-empty span inside its video."""
    problems = []
    for record in _published_records(catalog):
        rows = slice(record.first_id, record.end_id)
        start, end = table.start_s[rows], table.end_s[rows]
        bad = ~((start >= -ROW_SLACK_S) & (end <= record.duration + ROW_SLACK_S) & (start < end))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            problems.append(f"video {record.video_id!r} ({record.duration:g} s): {int(bad.sum())} "
                            f"row(s) outside the video, e.g. id {rows.start + i}: "
                            f"{start[i]:g}-{end[i]:g} s")
    return problems


def vector_problems(index_dir: Path, index, catalog: Catalog, sample_videos: int, seed: int
                    ) -> list[str]:
    """Re-embed a seeded sample of videos and compare with the stored vectors."""
    from ..embed.encoders import MomentEncoder
    from .build import load_model

    records = catalog.videos(status="indexed")
    if not records or sample_videos <= 0:
        return []
    picks = np.random.default_rng(seed).choice(len(records), min(sample_videos, len(records)),
                                               replace=False)
    encoder = MomentEncoder(load_model(index_dir / MODEL_DIR, "cpu")[0])
    problems = []
    for record in (records[i] for i in sorted(picks)):
        try:
            features = load_feature_source(record.feature_source)
        except FeatureError as e:
            problems.append(f"cannot spot-check video {record.video_id!r}: {e}")
            continue
        video = Video(record.video_id, record.duration, record.feature_source,
                      record.feature_rate)
        fresh = encoder.embed_video(features, video)
        stored, exact = index.vectors(np.arange(record.first_id, record.end_id))
        problem = _compare(record.video_id, fresh, stored, exact)
        if problem:
            problems.append(problem)
    return problems


def _compare(video_id: str, fresh: np.ndarray, stored: np.ndarray, exact: bool) -> str | None:
    if exact:
        error = float(np.abs(fresh - stored).max())
        if error > EXACT_TOLERANCE * max(1.0, float(np.abs(fresh).max())):
            return (f"video {video_id!r}: stored vectors differ from fresh embeddings of its "
                    f"features (max |difference| {error:.3g})")
        return None
    distances = ((stored[:, None, :] - fresh[None, :, :]) ** 2).sum(-1)  # (P, P)
    matched = float((distances.argmin(axis=1) == np.arange(len(fresh))).mean())
    if matched < PQ_MIN_SELF_MATCH:
        return (f"video {video_id!r}: only {matched:.0%} of its stored (IVF-PQ) vectors are "
                f"nearest their own fresh embedding (expected >= {PQ_MIN_SELF_MATCH:.0%})")
    return None
