"""Feature stores: per-video clip features read lazily from disk.

Two layouts, both the field's conventions:

* a directory of per-video ``<video_id>.npy`` (memory-mapped) or ``<video_id>.npz`` files;
* one HDF5 file keyed by video id (the 2D-TAN convention for TACoS/ActivityNet C3D features).

A store hands out one video's ``(T, D)`` float32 array at a time, so a corpus far larger than RAM
streams through it. Every array is checked: finite, two-dimensional, of the store's width.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..errors import DataError


class FeatureError(DataError):
    """A feature file is missing or holds the wrong thing; the message names the video and file."""


def check_features(array: np.ndarray, video_id: str, source: str, width: int | None) -> np.ndarray:
    """Validate one video's features and return them as float32.

    Args:
        array: the raw array read from ``source``.
        video_id: for messages.
        source: file (and key) it came from, for messages.
        width: expected feature width D, or None to accept any.

    Returns:
        ``(T, D)`` float32 array (a view when already float32).

    Raises:
        FeatureError: wrong rank, empty, wrong width, or non-finite values.
    """
    if array.ndim != 2 or array.shape[0] == 0:
        raise FeatureError(
            f"video {video_id!r} ({source}): expected a (T, D) feature array with T >= 1, "
            f"got shape {array.shape}"
        )
    if width is not None and array.shape[1] != width:
        raise FeatureError(
            f"video {video_id!r} ({source}): expected feature width {width}, got {array.shape[1]}"
        )
    features = np.asarray(array, dtype=np.float32)
    if not np.isfinite(features).all():
        bad_row = int(np.argwhere(~np.isfinite(features))[0, 0])
        raise FeatureError(f"video {video_id!r} ({source}): non-finite value at row {bad_row}")
    return features


class NpyDirStore:
    """A directory of ``<video_id>.npy`` / ``<video_id>.npz`` files, one ``(T, D)`` array each.

    ``.npy`` files are memory-mapped; an ``.npz`` holds one array (any key) or a ``features`` key.
    """

    def __init__(self, root: str | Path, width: int | None = None):
        self.root = Path(root).resolve()  # absolute: the catalog records sources
        if not self.root.is_dir():
            raise FeatureError(f"feature directory {self.root} does not exist")
        self.width = width

    def path(self, video_id: str) -> Path:
        """The file holding this video's features; raises FeatureError when neither exists."""
        for suffix in (".npy", ".npz"):
            candidate = self.root / f"{video_id}{suffix}"
            if candidate.is_file():
                return candidate
        raise FeatureError(
            f"video {video_id!r}: no feature file {video_id}.npy or {video_id}.npz in {self.root}"
        )

    def video_ids(self) -> list[str]:
        """Ids of every video with a feature file, sorted."""
        stems = {p.stem for p in self.root.iterdir() if p.suffix in (".npy", ".npz")}
        return sorted(stems)

    def __contains__(self, video_id: str) -> bool:
        return any((self.root / f"{video_id}{s}").is_file() for s in (".npy", ".npz"))

    def load(self, video_id: str) -> np.ndarray:
        """This video's ``(T, D)`` float32 features (validated)."""
        path = self.path(video_id)
        try:
            raw = _read_npy_or_npz(path)
        except (OSError, ValueError, KeyError, EOFError) as e:
            raise FeatureError(f"video {video_id!r}: cannot read {path}: {_why(e)}") from e
        return check_features(raw, video_id, str(path), self.width)

    def source(self, video_id: str) -> str:
        """A string naming where the features live (stored in the catalog)."""
        return str(self.path(video_id))


def _why(error: Exception) -> str:
    """A reader error in plain words (numpy's pickle advice must not reach the user)."""
    text = str(error)
    if isinstance(error, EOFError) or any(
            word in text for word in ("pickle", "magic string", "Python objects")):
        return ("not a numeric array saved with numpy.save / numpy.savez (corrupt, truncated "
                "or another kind of file)")
    return text


def check_length(video_id: str, source: str, n_rows: int, duration: float,
                 feature_rate: float | None) -> None:
    """Refuse features whose row count disagrees with ``duration x feature_rate`` by more than
    one row (the rule: one row of slack covers rounding the last partial second either way).

    Raises:
        FeatureError: names the video, the file, both lengths and what to fix.
    """
    if feature_rate is None:
        return
    expected = duration * feature_rate
    if abs(n_rows - expected) > 1.0:
        raise FeatureError(
            f"video {video_id!r} ({source}): {n_rows} feature rows, but a {duration:g} s video "
            f"at {feature_rate:g} features/s should have about {expected:.1f}; fix its duration "
            f"or feature_rate in the manifest (or its features)")


def _read_npy_or_npz(path: Path) -> np.ndarray:
    if path.suffix == ".npy":
        return np.load(path, mmap_mode="r")
    with np.load(path) as archive:
        keys = list(archive.keys())
        key = "features" if "features" in keys else keys[0] if len(keys) == 1 else None
        if key is None:
            raise FeatureError(f"npz holds {keys}; expected one array or a 'features' key")
        return archive[key]


class HDF5Store:
    """One HDF5 file whose datasets are keyed by video id, each ``(T, D)``."""

    def __init__(self, path: str | Path, width: int | None = None):
        self.path = Path(path).resolve()  # absolute: the catalog records sources
        if not self.path.is_file():
            raise FeatureError(f"feature file {self.path} does not exist")
        self.width = width
        self._file = None

    def _handle(self):
        if self._file is None:
            import h5py

            self._file = h5py.File(self.path, "r")
        return self._file

    def video_ids(self) -> list[str]:
        """Ids of every dataset in the file, sorted."""
        return sorted(self._handle().keys())

    def __contains__(self, video_id: str) -> bool:
        return video_id in self._handle()

    def load(self, video_id: str) -> np.ndarray:
        """This video's ``(T, D)`` float32 features (validated)."""
        handle = self._handle()
        if video_id not in handle:
            raise FeatureError(f"video {video_id!r}: no dataset {video_id!r} in {self.path}")
        return check_features(handle[video_id][()], video_id, f"{self.path}:{video_id}", self.width)

    def source(self, video_id: str) -> str:
        """A string naming where the features live (stored in the catalog)."""
        return f"{self.path}:{video_id}"

    def close(self) -> None:
        """Close the HDF5 handle (reopened lazily on the next read)."""
        if self._file is not None:
            self._file.close()
            self._file = None


FeatureStore = NpyDirStore | HDF5Store


def open_feature_store(path: str | Path, width: int | None = None) -> FeatureStore:
    """Open a feature directory or an HDF5 file (``.h5``/``.hdf5``).

    Raises:
        FeatureError: when the path is neither.
    """
    path = Path(path)
    if path.is_dir():
        return NpyDirStore(path, width)
    if path.suffix in (".h5", ".hdf5"):
        return HDF5Store(path, width)
    raise FeatureError(f"{path}: expected a directory of .npy/.npz files or an .h5/.hdf5 file")


def iter_features(store: FeatureStore, video_ids: list[str]) -> Iterator[tuple[str, np.ndarray]]:
    """Yield ``(video_id, (T, D) features)`` one video at a time (streaming)."""
    for video_id in video_ids:
        yield video_id, store.load(video_id)


def load_feature_source(source: str, width: int | None = None) -> np.ndarray:
    """Load one video's features from a source string as stores write it (``store.source``):
    a ``.npy``/``.npz`` path, or ``"file.h5:video_id"``.

    Raises:
        FeatureError: a missing or unreadable source (names it).
    """
    for suffix in (".h5:", ".hdf5:"):
        if suffix in source:
            path, _, key = source.rpartition(":")
            return HDF5Store(path, width).load(key)
    path = Path(source)
    return NpyDirStore(path.parent, width).load(path.stem)
