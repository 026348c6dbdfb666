"""Moment retrieval mAP as moment_detr's standalone evaluator computes it (``MR-mAP``).

Per query, its predictions are a detection list and its ground-truth windows the objects
(MMAction2's ``compute_average_precision_detection``, which moment_detr and lighthouse use):

1. keep the first ``max_predictions`` (10) predictions in the order given, then sort them by
   score, highest first (a stable sort: equal scores keep their order);
2. at each IoU threshold t, walk the predictions: one is a true positive when its best-IoU
   ground-truth window not yet taken has IoU >= t (that window is then taken), else a false
   positive;
3. AP at t is the VOC 2011 interpolated area under the precision-recall curve (recall over the
   number of ground-truth windows).

``mAP@t`` is the mean over queries of AP at t (a query without predictions scores 0); ``mAP`` is
the mean of ``mAP@t`` over t = 0.5, 0.55, ..., 0.95. Percent, like every metric here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from moment_search.data.corpus import Query, QueryId
from moment_search.geometry.spans import temporal_iou
from moment_search.metrics import single_video_metrics

# moment_detr's thresholds: np.linspace(0.5, 0.95, 10) rounded to 2 decimals
AP_THRESHOLDS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))
MAX_PREDICTIONS = 10  # moment_detr's max_pred_windows


def interpolated_average_precision(precision: np.ndarray, recall: np.ndarray) -> float:
    """VOC 2011 interpolated AP of a precision-recall curve.

    Args:
        precision: (K,) precision after each of K ranked predictions.
        recall: (K,) recall after each of them, non-decreasing, in [0, 1].

    Returns:
        The area under the curve whose precision at recall r is the best precision at any recall
        >= r, in [0, 1].
    """
    padded_precision = np.concatenate([[0.0], precision, [0.0]])
    padded_recall = np.concatenate([[0.0], recall, [1.0]])
    envelope = np.maximum.accumulate(padded_precision[::-1])[::-1]
    steps = np.flatnonzero(padded_recall[1:] != padded_recall[:-1]) + 1
    return float(np.sum((padded_recall[steps] - padded_recall[steps - 1]) * envelope[steps]))


def _true_positives(ious: np.ndarray, threshold: float) -> np.ndarray:
    """(K,) bool: greedy matching of K ranked predictions to G windows, (K, G) IoUs."""
    taken = np.zeros(ious.shape[1], dtype=bool)
    hits = np.zeros(len(ious), dtype=bool)
    for k, row in enumerate(ious):
        for g in np.argsort(row)[::-1]:  # best-overlapping window first
            if row[g] < threshold:
                break
            if not taken[g]:
                taken[g] = hits[k] = True
                break
    return hits


def query_average_precision(
    windows: np.ndarray, truth: np.ndarray, thresholds: Sequence[float] = AP_THRESHOLDS,
    max_predictions: int = MAX_PREDICTIONS,
) -> np.ndarray:
    """AP of one query's predictions at each IoU threshold.

    Args:
        windows: (K, 3) ``[start_s, end_s, score]`` in the order given (or (K, 2): that order is
            the ranking).
        truth: (G, 2) ground-truth windows, seconds.
        thresholds: IoU thresholds.
        max_predictions: predictions kept, from the first (None: all).

    Returns:
        (len(thresholds),) AP in [0, 1]; zeros when there is no prediction.
    """
    windows = np.asarray(windows, dtype=np.float64)[:max_predictions]
    if len(windows) == 0:
        return np.zeros(len(thresholds))
    if windows.shape[1] == 3:
        windows = windows[np.argsort(-windows[:, 2], kind="stable")]
    ious = temporal_iou(windows[:, :2], truth)  # (K, G)
    rank = np.arange(1, len(windows) + 1)
    ap = []
    for threshold in thresholds:
        found = np.cumsum(_true_positives(ious, threshold))  # (K,)
        ap.append(interpolated_average_precision(found / rank, found / len(truth)))
    return np.asarray(ap)


def mean_average_precision(
    predictions: Mapping[QueryId, np.ndarray], queries: Sequence[Query],
    max_predictions: int = MAX_PREDICTIONS,
) -> dict[str, float]:
    """``mAP@0.5``, ``mAP@0.75`` and ``mAP`` (the mean over 0.5:0.05:0.95), percent.

    Args:
        predictions: ``qid -> (K, 3|2)`` windows, as for ``single_video_metrics`` (whose checks
            of the qids and shapes run first).
        queries: the ground truth; every query counts (no prediction = AP 0).
        max_predictions: predictions per query that count, from the first.
    """
    per_query = np.stack([
        query_average_precision(predictions.get(q.qid, np.zeros((0, 3))),
                                np.asarray(q.windows, dtype=np.float64),
                                max_predictions=max_predictions)
        for q in queries
    ])  # (Q, T)
    by_threshold = dict(zip(AP_THRESHOLDS, 100.0 * per_query.mean(axis=0), strict=True))
    return {"mAP@0.5": float(by_threshold[0.5]), "mAP@0.75": float(by_threshold[0.75]),
            "mAP": float(np.mean(list(by_threshold.values())))}


def single_video_report(
    predictions: Mapping[QueryId, np.ndarray], queries: Sequence[Query]
) -> dict[str, float]:
    """What ``evaluate score`` and ``evaluate model`` report for single-video predictions:
    ``single_video_metrics`` (R{1,5}@{0.1,0.3,0.5,0.7}, mIoU) with the mAPs before
    ``n_queries``.

    Raises:
        ValueError: as :func:`moment_search.metrics.single_video_metrics`.
    """
    metrics = single_video_metrics(predictions, queries)
    n_queries = metrics.pop("n_queries")
    metrics.update(mean_average_precision(predictions, queries))
    metrics["n_queries"] = n_queries
    return metrics
