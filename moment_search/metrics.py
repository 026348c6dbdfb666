"""Moment retrieval metrics: single-video grounding (R{n}@{m}, mIoU) and video-corpus retrieval.

Conventions (those of the papers, so numbers compare):

- ``R{n}@{m}``: percent of queries with at least one of their top-``n`` predictions at temporal
  IoU ``>= m`` with *any* of their ground-truth windows.
- ``mIoU``: mean over queries of the top-1 prediction's IoU (max over ground-truth windows),
  in percent.
- A query without a prediction counts as a miss (IoU 0); a prediction for a query id that is not in
  the ground truth is an error, since it means the two sides do not belong together.
- Corpus retrieval (TVR convention): a hit also needs the predicted moment to come from the query's
  video.

Predictions are ranked best first in the order given; scores are carried but not re-sorted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np

from moment_search.data.corpus import Query, QueryId
from moment_search.geometry.spans import temporal_iou

from .errors import DataError, InputError

_RECALL_KEY = re.compile(r"^R(\d+)@(.+)$")


def threshold_label(m: float) -> str:
    """How an IoU threshold is written in metric names: 0.5 -> ``"0.5"``, 0.75 -> ``"0.75"``."""
    return f"{m:g}"


def _queries_by_id(
    queries: Sequence[Query], predicted_qids: Sequence[QueryId]
) -> dict[QueryId, Query]:
    """Index queries by qid, checking that every predicted qid is known (ids match by value and
    type, as the field's evaluators match them: ``7`` is not ``"7"``).

    Raises:
        ValueError: a duplicate ground-truth qid, a query without windows, or a predicted qid
            absent from the ground truth (all named; says so when only the types differ).
    """
    by_id: dict[QueryId, Query] = {}
    for query in queries:
        if query.qid in by_id:
            raise DataError(f"ground truth lists query {query.qid!r} twice")
        if not query.windows:
            raise DataError(f"query {query.qid!r} has no ground-truth window to score against")
        by_id[query.qid] = query
    unknown = [qid for qid in predicted_qids if qid not in by_id]
    if unknown:
        shown = ", ".join(repr(q) for q in unknown[:5])
        hint = _type_mismatch_hint(unknown, by_id)
        raise DataError(
            f"predictions for {len(unknown)} query id(s) not in the ground truth: {shown}{hint}"
        )
    if not by_id:
        raise DataError("no ground-truth queries to score")
    return by_id


def _type_mismatch_hint(unknown: Sequence[QueryId], by_id: Mapping[QueryId, Query]) -> str:
    """A note for ids that are in the ground truth as another type (``"7"`` for ``7``)."""
    as_text = {str(qid): qid for qid in by_id}
    if not all(str(qid) in as_text for qid in unknown):
        return ""
    example = as_text[str(unknown[0])]
    return (f" (the ground truth has them as {type(example).__name__}s, e.g. {example!r}: "
            f"ids must match in type too)")


def _as_windows(qid: QueryId, moments: np.ndarray) -> np.ndarray:
    """Predicted windows of one query as (K, 2) seconds; accepts (K, 2) or (K, 3) with scores.

    Raises:
        ValueError: naming the query when the array has another shape.
    """
    array = np.asarray(moments, dtype=np.float64)
    if array.size == 0:
        return np.zeros((0, 2))
    if array.ndim != 2 or array.shape[1] not in (2, 3):
        raise DataError(
            f"query {qid!r}: predictions must be an array (K, 2) or (K, 3) "
            f"[start_s, end_s(, score)], got shape {array.shape}"
        )
    return array[:, :2]


def ranked_ious(windows: np.ndarray, query: Query) -> np.ndarray:
    """IoU of each ranked prediction with its best-matching ground-truth window.

    Args:
        windows: (K, 2) predicted ``[start_s, end_s]``, best first.
        query: the query whose ``windows`` are the ground truth.

    Returns:
        (K,) IoU in [0, 1], max over the query's ground-truth windows.

    Raises:
        ValueError: naming the query when a predicted window is not finite or ends before it starts.
    """
    if len(windows) == 0:
        return np.zeros(0)
    truth = np.asarray(query.windows, dtype=np.float64)  # (G, 2)
    try:
        return temporal_iou(windows, truth).max(axis=1)
    except ValueError as e:
        raise DataError(f"query {query.qid!r}: bad predicted window: {e}") from e


def _recall_table(
    ious: list[np.ndarray], ns: Sequence[int], ms: Sequence[float]
) -> dict[str, float]:
    """``R{n}@{m}`` in percent from each query's ranked IoUs (a non-hit IoU is 0).

    Args:
        ious: per query, (K_q,) IoUs best first; entries that cannot hit (wrong video) are 0.
    """
    if not ns or any(n < 1 for n in ns):
        raise InputError(f"recall cut-offs must be >= 1, got {list(ns)}")
    if any(not 0 < m <= 1 for m in ms):
        raise InputError(f"IoU thresholds must be in (0, 1], got {list(ms)}")
    depth = max(ns)
    padded = np.zeros((len(ious), depth))  # (Q, depth): missing predictions are misses
    for row, values in enumerate(ious):
        padded[row, : min(depth, len(values))] = values[:depth]
    metrics: dict[str, float] = {}
    for n in ns:
        best_in_top_n = padded[:, :n].max(axis=1)  # (Q,)
        for m in ms:
            hits = best_in_top_n >= m
            metrics[f"R{n}@{threshold_label(m)}"] = 100.0 * float(hits.mean())
    return metrics


def single_video_metrics(
    predictions: Mapping[QueryId, np.ndarray],
    queries: Sequence[Query],
    ns: Sequence[int] = (1, 5),
    ms: Sequence[float] = (0.1, 0.3, 0.5, 0.7),
) -> dict[str, float]:
    """Single-video moment grounding metrics.

    Args:
        predictions: ``qid -> (K, 2|3)`` ``[start_s, end_s(, score)]`` in seconds, best first.
        queries: the ground truth; every query is scored (no prediction = miss).
        ns: recall cut-offs ``n`` of ``R{n}@{m}``.
        ms: IoU thresholds ``m`` (a hit needs IoU >= m).

    Returns:
        ``{"R{n}@{m}": percent, ..., "mIoU": percent, "n_queries": count}``.

    Raises:
        ValueError: a prediction for an unknown qid, a malformed prediction array, or a query
            without ground-truth windows.
    """
    by_id = _queries_by_id(queries, list(predictions))
    ious = [
        ranked_ious(_as_windows(qid, predictions.get(qid, np.zeros((0, 2)))), query)
        for qid, query in by_id.items()
    ]
    metrics = _recall_table(ious, ns, ms)
    top1 = np.array([values[0] if len(values) else 0.0 for values in ious])
    metrics["mIoU"] = 100.0 * float(top1.mean())
    metrics["n_queries"] = float(len(by_id))
    return metrics


def _corpus_ious(qid: QueryId, moments: Sequence[Sequence], query: Query) -> np.ndarray:
    """Ranked IoUs of one query's corpus predictions; a moment from another video scores 0.

    Args:
        moments: K tuples ``(video_id, start_s, end_s, score)``, best first.

    Returns:
        (K,) IoU with the best ground-truth window, 0 where the video is wrong.
    """
    for rank, moment in enumerate(moments):
        if len(moment) != 4:
            raise DataError(
                f"query {qid!r}, prediction {rank}: expected (video_id, start_s, end_s, score), "
                f"got {moment!r}"
            )
    if not moments:
        return np.zeros(0)
    right_video = np.array([str(m[0]) == query.video_id for m in moments])  # (K,)
    windows = np.array([[m[1], m[2]] for m in moments], dtype=np.float64)  # (K, 2)
    return np.where(right_video, ranked_ious(windows, query), 0.0)


def corpus_metrics(
    predictions: Mapping[QueryId, Sequence[Sequence]],
    queries: Sequence[Query],
    ks: Sequence[int] = (1, 5, 10, 100),
    ms: Sequence[float] = (0.5, 0.7),
) -> dict[str, float]:
    """Video-corpus moment retrieval metrics (TVR convention).

    Args:
        predictions: ``qid -> [(video_id, start_s, end_s, score), ...]`` over the whole corpus,
            best first.
        queries: the ground truth; every query is scored (no prediction = miss).
        ks: recall cut-offs ``k`` of ``R{k}@{m}``.
        ms: IoU thresholds ``m``; a hit needs the query's video and IoU >= m.

    Returns:
        ``{"R{k}@{m}": percent, ..., "n_queries": count}``.

    Raises:
        ValueError: a prediction for an unknown qid, a malformed moment, or a query without
            ground-truth windows.
    """
    by_id = _queries_by_id(queries, list(predictions))
    ious = [
        _corpus_ious(qid, predictions.get(qid, ()), query) for qid, query in by_id.items()
    ]
    metrics = _recall_table(ious, ks, ms)
    metrics["n_queries"] = float(len(by_id))
    return metrics


def _split_recall_keys(
    metrics: Mapping[str, float],
) -> tuple[list[int], list[str], dict[str, float]]:
    """Cut-offs and thresholds of the ``R{n}@{m}`` keys, and the remaining metrics."""
    cutoffs: list[int] = []
    thresholds: list[str] = []
    others: dict[str, float] = {}
    for key, value in metrics.items():
        match = _RECALL_KEY.match(key)
        if match is None:
            others[key] = value
            continue
        n, m = int(match.group(1)), match.group(2)
        if n not in cutoffs:
            cutoffs.append(n)
        if m not in thresholds:
            thresholds.append(m)
    return sorted(cutoffs), thresholds, others


def _format_value(key: str, value: float) -> str:
    """Counts print as integers, everything else with two decimals."""
    if key.startswith("n_") and float(value).is_integer():
        return str(int(value))
    return f"{value:.2f}"


def format_table(metrics: Mapping[str, float]) -> str:
    """A plain-text table: ``R{n}@{m}`` as a grid (rows n, columns IoU m), then other metrics.

    Args:
        metrics: as returned by :func:`single_video_metrics` or :func:`corpus_metrics`.

    Returns:
        Lines joined by newlines, no trailing newline. A missing grid cell prints as ``-``.
    """
    cutoffs, thresholds, others = _split_recall_keys(metrics)
    names = ["IoU>=", *others, *(f"R{n}" for n in cutoffs)]
    name_width = max(len(name) for name in names)
    lines: list[str] = []
    if cutoffs:
        lines.append("IoU>=".ljust(name_width) + "".join(f"{m:>9}" for m in thresholds))
        for n in cutoffs:
            cells = [metrics.get(f"R{n}@{m}") for m in thresholds]
            row = "".join("        -" if v is None else f"{v:>9.2f}" for v in cells)
            lines.append(f"R{n}".ljust(name_width) + row)
    for key, value in others.items():
        lines.append(key.ljust(name_width) + f"{_format_value(key, value):>9}")
    return "\n".join(lines)


def video_ranks(scores: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(Q,) 1-based rank of the right video from (Q, V) video scores and (Q,) right columns."""
    right = scores[np.arange(len(truth)), truth][:, None]
    return (scores > right).sum(1) + 1


def video_retrieval_metrics(scores: np.ndarray, truth: np.ndarray,
                            ks: Sequence[int] = (1, 5, 10, 100)) -> dict[str, float]:
    """Video retrieval ``video_R@k`` (percent) and ``video_median_rank`` of (Q, V) scores whose
    right video for query q is column ``truth[q]``."""
    rank = video_ranks(scores, truth)
    metrics = {f"video_R@{k}": float(100 * (rank <= k).mean()) for k in ks}
    metrics["video_median_rank"] = float(np.median(rank))
    return metrics
