"""Open a corpus directory: features plus a manifest and/or annotation files.

Layout::

    CORPUS/
      features/              <video_id>.npy | <video_id>.npz   (or CORPUS/features.h5)
      videos.jsonl           optional manifest, one video a line:
                             {"video_id": "02SKC", "duration": 32.2, "feature_rate": 1.0}
                             (+ optional "video_path": the raw file, relative to CORPUS/)
      train.jsonl, val.jsonl optional annotation files (any format ``read_annotations`` knows)

A user's own corpus has only ``features/`` and ``videos.jsonl``: that is what gets indexed. A
benchmark corpus has annotation files; video ids and durations are then taken from them.
"""

from __future__ import annotations

import json
from pathlib import Path

from .corpus import Corpus, CorpusError, Video
from .features import FeatureStore, open_feature_store
from .readers import read_annotations

MANIFEST_NAME = "videos.jsonl"


def feature_store_path(root: Path) -> Path:
    """Where the corpus's features are: ``features/`` or ``features.h5``/``features.hdf5``."""
    for name in ("features", "features.h5", "features.hdf5"):
        if (root / name).exists():
            return root / name
    raise CorpusError(f"{root}: no features/ directory or features.h5 file")


def find_feature_store(root: Path) -> FeatureStore:
    """The corpus's feature store (see :func:`feature_store_path`)."""
    return open_feature_store(feature_store_path(root))


def read_manifest(path: Path, default_rate: float | None = None) -> Corpus:
    """Read ``videos.jsonl``: one ``{"video_id", "duration"[, "feature_rate"]}`` object a line.

    Raises:
        CorpusError: naming the file and line of a malformed entry or a duplicate id.
    """
    corpus = Corpus(name=str(path))
    with open(path, encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            video = _manifest_video(line, path, line_no, default_rate)
            if video.video_id in corpus.videos:
                raise CorpusError(f"{path}:{line_no}: duplicate video id {video.video_id!r}")
            corpus.videos[video.video_id] = video
    if not corpus.videos:
        raise CorpusError(f"{path}: the manifest lists no videos")
    return corpus


def _manifest_video(line: str, path: Path, line_no: int, default_rate: float | None) -> Video:
    try:
        entry = json.loads(line)
        video_id = str(entry.get("video_id", entry.get("vid")))
        rate = entry.get("feature_rate", default_rate)
        video_path = entry.get("video_path")
        if video_path is not None:  # relative to the manifest's folder
            video_path = str((path.parent / str(video_path)).resolve())
        return Video(video_id, float(entry["duration"]), None,
                     None if rate is None else float(rate), video_path)
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as e:
        raise CorpusError(
            f"{path}:{line_no}: expected a JSON object with 'video_id' and 'duration' "
            f"(seconds) and optional 'feature_rate' and 'video_path', got "
            f"{line.strip()[:120]!r} ({e})"
        ) from e


def annotation_files(root: Path, split: str | None) -> list[Path]:
    """Annotation files of the corpus: ``<split>.*`` when a split is named, else all of them."""
    candidates = sorted(
        p for p in root.iterdir()
        if p.is_file() and p.suffix in (".jsonl", ".json", ".txt") and p.name != MANIFEST_NAME
    )
    if split is None:
        return candidates
    chosen = [p for p in candidates if p.stem == split]
    if not chosen:
        names = ", ".join(p.stem for p in candidates) or "none"
        raise CorpusError(f"{root}: no annotation file for split {split!r} (found: {names})")
    return chosen


def open_corpus(
    path: str | Path, split: str | None = None, feature_rate: float | None = None
) -> tuple[Corpus, FeatureStore]:
    """Open a corpus directory and attach every video to its features.

    Args:
        path: the corpus directory.
        split: an annotation split (``train``, ``val``...) to load with its queries; None loads
            the manifest when there is one, else every annotation file.
        feature_rate: features per second for videos whose manifest gives none (None: the
            features span the duration).

    Returns:
        ``(corpus, store)``: videos carry ``feature_source`` and ``feature_rate``.

    Raises:
        CorpusError: no videos, no features, a video without a feature file, or a bad manifest.
    """
    root = Path(path)
    if not root.is_dir():
        raise CorpusError(f"corpus directory {root} does not exist")
    store = find_feature_store(root)
    corpus = _read_videos(root, split, feature_rate)
    if not corpus.videos:
        raise CorpusError(f"{root}: the corpus has no videos")
    missing = [vid for vid in corpus.videos if vid not in store]
    if missing:
        raise CorpusError(f"{root}: {len(missing)} video(s) have no features, e.g. {missing[:5]}")
    sources = {
        vid: (store.source(vid), video.feature_rate if video.feature_rate else feature_rate)
        for vid, video in corpus.videos.items()
    }
    return corpus.with_features(sources), store


def read_split(path: str | Path, split: str) -> Corpus:
    """The videos and queries of one annotation split, without looking at features: for what
    needs only the annotations (the prior baseline fits on the train split's windows).

    Raises:
        CorpusError: no corpus directory, no annotation file for the split, or no videos.
    """
    root = Path(path)
    if not root.is_dir():
        raise CorpusError(f"corpus directory {root} does not exist")
    corpus = _read_videos(root, split, None)
    if not corpus.videos:
        raise CorpusError(f"{root}: split {split!r} has no videos")
    return corpus


def _read_videos(root: Path, split: str | None, feature_rate: float | None) -> Corpus:
    manifest = root / MANIFEST_NAME
    if split is None and manifest.is_file():
        return read_manifest(manifest, feature_rate)
    files = annotation_files(root, split)
    if not files:
        raise CorpusError(f"{root}: no {MANIFEST_NAME} manifest and no annotation files")
    corpus = Corpus(name=str(root if split is None else files[0]))
    for file in files:
        part = read_annotations(file)
        for video in part.videos.values():
            corpus.add_video(video)
        corpus.queries.extend(part.queries)
    return corpus
