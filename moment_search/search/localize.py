"""From proposal scores to ranked moments in one video: top scores, temporal NMS, seconds."""

from __future__ import annotations

import numpy as np

from ..geometry.spans import nms


def keep_best(spans: np.ndarray, scores: np.ndarray, k: int, nms_threshold: float
              ) -> np.ndarray:
    """Indices of the best ``k`` spans, best first, after temporal NMS (>= 1 disables it)."""
    if nms_threshold >= 1.0:
        return np.argsort(-scores, kind="stable")[:k]
    return nms(spans, scores, nms_threshold, max_keep=k)


def rank_moments(scores: np.ndarray, spans: np.ndarray, k: int, nms_threshold: float = 0.5
                 ) -> np.ndarray:
    """The best ``k`` moments of one video after temporal NMS.

    Args:
        scores: (P,) proposal scores (higher is better).
        spans: (P, 2) proposal ``[start_s, end_s]``.
        k: moments to return (fewer when NMS leaves fewer).
        nms_threshold: IoU above which a lower-scored moment is suppressed; >= 1 disables NMS.

    Returns:
        (K, 3) float array of ``[start_s, end_s, score]``, best first.
    """
    keep = keep_best(spans, scores, k, nms_threshold)
    return np.concatenate([spans[keep], scores[keep, None]], axis=1).astype(np.float64)
