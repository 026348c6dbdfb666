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


def _iou(start: float, end: float, other_start: float, other_end: float) -> float:
    """Temporal IoU of two spans in plain floats (the rule of ``geometry.spans.temporal_iou``)."""
    inter = max(0.0, min(end, other_end) - max(start, other_start))
    union = (end - start) + (other_end - other_start) - inter
    if union > 0:
        return inter / union
    return 1.0 if (start, end) == (other_start, other_end) else 0.0


def best_across_videos(spans: np.ndarray, scores: np.ndarray, videos: np.ndarray, k: int,
                       per_video: int, nms_threshold: float) -> np.ndarray:
    """Indices of the top ``k`` moments over many videos, best first.

    The same as :func:`keep_best` (NMS, at most ``per_video`` kept) in each video and then the
    best ``k`` of all (ties: lower video number, then earlier index), but in one pass over the
    candidates in score order that stops at ``k`` kept: spans of different videos never
    suppress each other, so a candidate needs checking only against the kept spans of its own
    video.

    Args:
        spans: (C, 2) ``[start, end]``; scores: (C,); videos: (C,) int video numbers.
        k, per_video: how many to keep in all and per video.
        nms_threshold: IoU above which a lower-scored span of the same video is dropped
            (>= 1: no NMS).
    """
    spans = np.asarray(spans, dtype=np.float64)  # plain-float IoU: float32 would round apart
    order = np.lexsort((np.arange(len(scores)), videos, -scores))
    kept: dict[int, list[tuple[float, float]]] = {}
    out: list[int] = []
    for index, start, end, video in zip(order.tolist(), spans[order, 0].tolist(),
                                        spans[order, 1].tolist(), videos[order].tolist(),
                                        strict=True):
        mine = kept.setdefault(video, [])
        if len(mine) >= per_video or any(_iou(start, end, a, b) > nms_threshold
                                         for a, b in mine):
            continue
        mine.append((start, end))
        out.append(index)
        if len(out) == k:
            break
    return np.asarray(out, dtype=np.int64)
