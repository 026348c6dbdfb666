"""Clip pooling: a video's T features -> N clip features over equal time spans.

PLN and 2D-TAN mean-pool the features that fall inside each of N equal spans of the video. The
time axis is explicit: with a feature rate r (features per second) feature t covers
``[t / r, (t + 1) / r)``; without one, the T features are spread evenly over the duration.
"""

from __future__ import annotations

import numpy as np


def feature_extent(n_features: int, duration: float, feature_rate: float | None) -> float:
    """How many feature rows the video's duration spans (fractional), at most ``n_features``."""
    if feature_rate is None:
        return float(n_features)
    return float(min(n_features, duration * feature_rate))


def clip_bounds(n_features: int, n_clips: int, extent: float) -> tuple[np.ndarray, np.ndarray]:
    """Feature row ranges ``[lo, hi)`` of each clip; every clip gets at least one row.

    Args:
        n_features: T, rows available.
        n_clips: N.
        extent: rows covered by the video (see :func:`feature_extent`).

    Returns:
        ``lo, hi``: int arrays of shape (N,), ``0 <= lo < hi <= T``. A video shorter than N
        features repeats rows across neighbouring clips rather than leaving clips empty.
    """
    edges = np.arange(n_clips + 1) * (extent / n_clips)  # (N + 1,) fractional rows
    lo = np.clip(np.floor(edges[:-1]).astype(np.int64), 0, n_features - 1)
    hi = np.clip(np.ceil(edges[1:] - 1e-6).astype(np.int64), 0, n_features)
    hi = np.maximum(hi, lo + 1)
    return lo, hi


def pool_clips(
    features: np.ndarray, n_clips: int, duration: float, feature_rate: float | None = None
) -> np.ndarray:
    """Mean-pool ``(T, D)`` features into ``(N, D)`` clips over equal time spans.

    Args:
        features: ``(T, D)`` float array (may be a memory map).
        n_clips: N, the number of clips (the 2D-map size).
        duration: video length in seconds.
        feature_rate: features per second, or None when T spans the duration.

    Returns:
        ``(N, D)`` float32 clip features.

    Raises:
        ValueError: for an empty feature array or ``n_clips <= 0``.
    """
    if features.ndim != 2 or features.shape[0] == 0:
        raise ValueError(f"expected (T, D) features with T >= 1, got shape {features.shape}")
    if n_clips <= 0:
        raise ValueError(f"n_clips must be positive, got {n_clips}")
    n_features = features.shape[0]
    lo, hi = clip_bounds(n_features, n_clips, feature_extent(n_features, duration, feature_rate))
    cumulative = np.zeros((n_features + 1, features.shape[1]), dtype=np.float64)
    np.cumsum(features, axis=0, dtype=np.float64, out=cumulative[1:])
    sums = cumulative[hi] - cumulative[lo]  # (N, D)
    return (sums / (hi - lo)[:, None]).astype(np.float32)
