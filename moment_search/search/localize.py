"""From proposal scores to ranked moments: top scores, temporal NMS within a video, the per-video
cap across videos."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np

from ..geometry.spans import nms

# The per-video cap of a search over more than one video when the caller sets none: at most
# this many moments of one video, then, when the fetched proposals leave fewer than k (a small
# corpus, or a few videos holding every fetched proposal), the moments held back. Chosen on two
# train folds (the fast path's mean R10@0.5 + R10@0.7, searched by the fold search
# checkpoints): ``moment-search benchmark per-video-cv``, reports/per_video_cv.
CORPUS_PER_VIDEO = 3

# When the default cap comes up short of what it promises (``short_of_cap``), a search fetches
# again, this many times more proposals each time, up to WIDEST_FETCH (or the whole index, or
# what the vector store returns at most).
WIDEN_FACTOR = 4
WIDEST_FETCH = 16384


def one_video(video_ids: Sequence[str] | None) -> bool:
    """Whether a search restricted to ``video_ids`` (None or empty: the whole index) is a
    search within one video."""
    return len(set(video_ids or ())) == 1


def video_cap(per_video: int | None, video_ids: Sequence[str] | None
              ) -> tuple[int | None, bool]:
    """``(cap, fill)`` of a search: the caller's ``per_video`` (a hard cap), else, over more
    than one video, :data:`CORPUS_PER_VIDEO` filled up to k; within one video, none (there the
    filled cap would give the same moments: it is left out for clarity)."""
    if per_video is not None:
        return per_video, False
    if one_video(video_ids):
        return None, False
    return CORPUS_PER_VIDEO, True


def short_of_cap(videos: Sequence, k: int, cap: int | None) -> bool:
    """Whether an answer (the video of each moment, best first) falls short of a filled cap:
    fewer than ``k`` moments, or a video holding more than ``cap`` (the fill reached into the
    moments the cap held back). A wider fetch may then find moments of other videos."""
    if len(videos) < k:
        return True
    return cap is not None and max(Counter(videos).values(), default=0) > cap


def widened(answer: list, fetched: int, limit: int, k: int, cap: int | None,
            fetch: Callable[[int], list], video_of: Callable) -> list:
    """``answer`` (from the best ``fetched`` proposals), or, while it is :func:`short_of_cap`,
    ``fetch(n)`` for n :data:`WIDEN_FACTOR` times larger each time, up to ``limit``."""
    return widened_many({0: answer}, fetched, limit, k, cap,
                        lambda rows, n: [fetch(n) for _ in rows], video_of)[0]


def widened_many(answers: dict, fetched: int, limit: int, k: int, cap: int | None,
                 fetch_many: Callable[[list, int], list], video_of: Callable) -> dict:
    """:func:`widened` for many answers at once (row -> answer, each from the best ``fetched``
    proposals): each round, ``fetch_many(rows, n)`` answers every row still short in one
    call, so a batch that widens costs one wider search per round, not one per sentence."""
    answers = dict(answers)
    short = [row for row in answers if _short(answers[row], k, cap, video_of)]
    while fetched < limit and short:
        fetched = min(limit, fetched * WIDEN_FACTOR)
        answers.update(zip(short, fetch_many(short, fetched), strict=True))
        short = [row for row in short if _short(answers[row], k, cap, video_of)]
    return answers


def _short(answer: list, k: int, cap: int | None, video_of: Callable) -> bool:
    """:func:`short_of_cap` of an answer's items, their videos read by ``video_of``."""
    return short_of_cap([video_of(item) for item in answer], k, cap)


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
                       per_video: int, nms_threshold: float, fill: bool = False) -> np.ndarray:
    """Indices of the top ``k`` moments over many videos, best first.

    The same as :func:`keep_best` (NMS, at most ``per_video`` kept) in each video and then the
    best ``k`` of all (ties: lower video number, then earlier index), but in one pass over the
    candidates in score order that stops at ``k`` kept: spans of different videos never
    suppress each other, so a candidate needs checking only against the kept spans of its own
    video. ``fill``: when the cap leaves fewer than ``k``, the moments it held back (NMS still
    applies) follow, best first, up to ``k``: a small corpus still answers ``k`` moments.

    Args:
        spans: (C, 2) ``[start, end]``; scores: (C,); videos: (C,) int video numbers.
        k, per_video: how many to keep in all and per video (with ``fill``, per video before
            the held-back moments).
        nms_threshold: IoU above which a lower-scored span of the same video is dropped
            (>= 1: no NMS).
        fill: follow the capped moments with the held-back ones when fewer than ``k`` are kept.
    """
    spans = np.asarray(spans, dtype=np.float64)  # plain-float IoU: float32 would round apart
    order = np.lexsort((np.arange(len(scores)), videos, -scores))
    kept: dict[int, list[tuple[float, float]]] = {}
    out: list[int] = []
    held: list[int] = []  # positions in ``order`` the cap alone turned away
    for position, (start, end, video) in enumerate(zip(spans[order, 0].tolist(),
                                                       spans[order, 1].tolist(),
                                                       videos[order].tolist(), strict=True)):
        mine = kept.setdefault(video, [])
        if any(_iou(start, end, a, b) > nms_threshold for a, b in mine):
            continue
        if len(mine) >= per_video:
            held.append(position)
            continue
        mine.append((start, end))
        out.append(int(order[position]))
        if len(out) == k:
            return np.asarray(out, dtype=np.int64)
    if fill:
        out += _held_back(order, spans, videos, held, kept, k - len(out), nms_threshold)
    return np.asarray(out, dtype=np.int64)


def _held_back(order: np.ndarray, spans: np.ndarray, videos: np.ndarray, held: list[int],
               kept: dict[int, list[tuple[float, float]]], room: int, nms_threshold: float
               ) -> list[int]:
    """Up to ``room`` of the moments the per-video cap held back, best first, each checked by
    NMS against every span kept in its video (``kept`` grows)."""
    out: list[int] = []
    for position in held:
        if len(out) == room:
            break
        index = int(order[position])
        start, end = float(spans[index, 0]), float(spans[index, 1])
        mine = kept[int(videos[index])]
        if any(_iou(start, end, a, b) > nms_threshold for a, b in mine):
            continue
        mine.append((start, end))
        out.append(index)
    return out
