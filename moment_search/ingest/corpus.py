"""Write an ingested corpus folder: ``features/<video_id>.npy`` and the ``videos.jsonl`` manifest.

Each video's features are written atomically, then the whole manifest is rewritten atomically
with the video's row added, so a video is finished exactly when the manifest lists it: a process
killed at any moment leaves finished videos intact and at worst one feature file that the next
``--resume`` writes again. One writer at a time: an OS lock on ``CORPUS/.ingest.lock`` (released
by the kernel when the holder dies).

Manifest rows: ``{"video_id", "duration" (s, the container's), "feature_rate" (rows per second),
"video_path" (absolute), "encoder", "encoder_weights" (sha256 of the weights and preprocessing,
null when unknown), "feature_dim" (D), "n_features"}``; ``moment_search.data`` reads the first
four.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

import numpy as np

from ..atomic import atomic_write, atomic_write_text
from ..errors import DataError

MANIFEST_NAME = "videos.jsonl"
LOCK_NAME = ".ingest.lock"


class CorpusWriteError(DataError):
    """An output folder that cannot take this ingest (another corpus, a running writer...)."""


class CorpusWriter:
    """The writer of one corpus folder; holds its lock from creation to :meth:`close`.

    Args:
        root: the corpus folder (created when missing).
        resume: continue an existing corpus (its finished videos are kept); without it a folder
            that already holds a manifest or features is refused.

    Raises:
        CorpusWriteError: ``root`` is a file, holds a corpus and ``resume`` is off, or another
            ingest holds the lock.
    """

    def __init__(self, root: str | Path, resume: bool = False):
        self.root = Path(root)
        self.manifest_path = self.root / MANIFEST_NAME
        self.features_dir = self.root / "features"
        check_output(self.root, resume)
        self.features_dir.mkdir(parents=True, exist_ok=True)
        self._lock = _take_lock(self.root / LOCK_NAME)
        self._remove_stale_temp_files()
        self.rows: dict[str, dict] = read_manifest_rows(self.manifest_path)

    def _remove_stale_temp_files(self) -> None:
        """Temp files of an atomic write interrupted by a kill (see moment_search.atomic)."""
        for folder in (self.root, self.features_dir):
            for temp in folder.glob(".*.tmp"):
                temp.unlink(missing_ok=True)

    def finished(self, video_id: str) -> dict | None:
        """The manifest row of a finished video (its feature file present), else None."""
        row = self.rows.get(video_id)
        if row is None or not self.feature_path(video_id).is_file():
            return None
        return row

    def feature_path(self, video_id: str) -> Path:
        """Where the features of ``video_id`` go."""
        return self.features_dir / f"{video_id}.npy"

    def write(self, video_id: str, features: np.ndarray, row: dict) -> None:
        """Store ``features`` (T, D) float32, then publish ``row`` in the manifest."""
        features = np.ascontiguousarray(features, dtype=np.float32)

        def save(temp: str) -> None:
            with open(temp, "wb") as handle:  # np.save on a name would append ".npy"
                np.save(handle, features)

        atomic_write(self.feature_path(video_id), save)
        self.rows[video_id] = dict(row, video_id=video_id)
        text = "".join(json.dumps(r) + "\n" for r in self.rows.values())
        atomic_write_text(self.manifest_path, text)

    def close(self) -> None:
        """Release the lock."""
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def __enter__(self) -> CorpusWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def check_output(root: str | Path, resume: bool) -> None:
    """Refuse an output that is a file, or (without ``resume``) a folder holding a corpus.

    Raises:
        CorpusWriteError: naming the folder and what to do.
    """
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise CorpusWriteError(f"--out {root} is a file, expected a corpus folder")
    features = root / "features"
    has_features = features.is_dir() and any(features.iterdir())
    if not resume and ((root / MANIFEST_NAME).exists() or has_features):
        raise CorpusWriteError(f"--out {root} already holds a corpus; pass --resume to "
                               "continue it or add videos, or choose another folder")


def _take_lock(path: Path) -> int:
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as e:
        os.close(descriptor)
        raise CorpusWriteError(f"another `moment-search ingest` is writing {path.parent} "
                               "(it holds the lock); wait for it to finish") from e
    return descriptor


def read_manifest_rows(path: Path) -> dict[str, dict]:
    """The rows of an ingest manifest by video id ({} when there is none).

    Raises:
        CorpusWriteError: a line that is not a JSON object with a ``video_id`` (file and line).
    """
    rows: dict[str, dict] = {}
    if not path.is_file():
        return rows
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            rows[str(row["video_id"])] = row
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise CorpusWriteError(f"{path}:{line_no}: expected a JSON object with a "
                                   f"'video_id', got {line[:120]!r}") from e
    return rows
