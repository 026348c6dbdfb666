"""Corpus moment retrieval with more than one right answer (multi-positive R@k).

Single-ground-truth corpus metrics (``metrics.corpus_metrics``, TVR convention) count a predicted
moment only in the annotated video, though many videos of a corpus may show the same action. Here
a query has a set of positive moments, possibly in several videos: its annotated windows (always
positive) plus the positives a file such as MVMR's gives (``eval.mvmr``), kept only where their
video is in the indexed corpus. A query is a hit at ``R{k}@{m}`` when one of its top-k moments
has IoU >= m with a positive of the same video.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from moment_search.data.corpus import Query, QueryId
from moment_search.eval.mvmr import PositiveMoment, PositiveSentence
from moment_search.geometry.spans import temporal_iou
from moment_search.metrics import _recall_table

from ..errors import DataError


def query_positives(
    queries: Sequence[Query], matched: Mapping[QueryId, PositiveSentence],
    durations: Mapping[str, float],
) -> tuple[dict[QueryId, tuple[PositiveMoment, ...]], dict[str, float]]:
    """Each query's positives inside the corpus, and how many the file gave outside it.

    Args:
        queries: the corpus's queries; their windows are positives.
        matched: ``qid -> PositiveSentence`` (``mvmr.match_queries``); unmatched queries keep only
            their annotated windows.
        durations: ``video_id -> duration_s`` of the indexed corpus; a positive of another video
            is kept only when its video is here, with its end clipped to the duration.

    Returns:
        ``qid -> positives`` (annotated windows first, duplicates removed) and the counts
        ``file_positives`` (other-video positives of the matched sentences), ``kept`` and
        ``outside_corpus``.
    """
    positives: dict[QueryId, tuple[PositiveMoment, ...]] = {}
    counts = {"file_positives": 0.0, "kept": 0.0, "outside_corpus": 0.0}
    for query in queries:
        moments = [PositiveMoment(query.video_id, s, e) for s, e in query.windows]
        others = matched[query.qid].positives if query.qid in matched else ()
        for moment in others:
            duration = durations.get(moment.video_id)
            inside = duration is not None and moment.start_s < duration
            counts["file_positives"] += 1
            counts["kept" if inside else "outside_corpus"] += 1
            if inside:
                moments.append(PositiveMoment(moment.video_id, moment.start_s,
                                              min(moment.end_s, duration)))
        positives[query.qid] = tuple(dict.fromkeys(moments))
    return positives, counts


def positives_summary(positives: Mapping[QueryId, Sequence[PositiveMoment]]) -> dict[str, float]:
    """Positives per query inside the corpus: mean, min, max, and the percent of queries whose
    only positive is the annotated moment (one positive)."""
    sizes = np.array([len(p) for p in positives.values()], dtype=np.float64)  # (Q,)
    return {"positives_mean": float(sizes.mean()), "positives_min": float(sizes.min()),
            "positives_max": float(sizes.max()),
            "annotated_only_pct": float(100 * (sizes == 1).mean())}


def _ranked_positive_ious(qid: QueryId, moments: Sequence[Sequence],
                          positives: Sequence[PositiveMoment]) -> np.ndarray:
    """(K,) IoU of each ranked moment ``(video_id, start_s, end_s, score)`` with its best
    positive of the same video (0 for a video without a positive)."""
    ious = np.zeros(len(moments))
    for rank, moment in enumerate(moments):
        if len(moment) != 4:
            raise DataError(f"query {qid!r}, prediction {rank}: expected (video_id, start_s, "
                            f"end_s, score), got {moment!r}")
    for video in {p.video_id for p in positives}:
        rows = [r for r, m in enumerate(moments) if str(m[0]) == video]
        if rows:
            truth = [(p.start_s, p.end_s) for p in positives if p.video_id == video]  # (G, 2)
            windows = [(moments[r][1], moments[r][2]) for r in rows]  # (K_v, 2)
            ious[rows] = temporal_iou(windows, truth).max(axis=1)
    return ious


def multi_positive_metrics(
    predictions: Mapping[QueryId, Sequence[Sequence]],
    positives: Mapping[QueryId, Sequence[PositiveMoment]],
    ks: Sequence[int] = (1, 10, 100),
    ms: Sequence[float] = (0.5, 0.7),
) -> dict[str, float]:
    """Multi-positive corpus moment retrieval ``R{k}@{m}`` in percent.

    Args:
        predictions: ``qid -> [(video_id, start_s, end_s, score), ...]``, best first.
        positives: ``qid -> positive moments`` (:func:`query_positives`); every query here is
            scored (no prediction = miss).
        ks: recall cut-offs. ms: IoU thresholds.

    Returns:
        ``{"R{k}@{m}": percent, ..., "n_queries": count}``, the keys of ``corpus_metrics``.

    Raises:
        ValueError: a prediction for a query without positives, a query without a positive, or
            a malformed moment.
    """
    unknown = [qid for qid in predictions if qid not in positives]
    if unknown:
        raise DataError(f"predictions for {len(unknown)} query id(s) without positives: "
                        f"{', '.join(repr(q) for q in unknown[:5])}")
    empty = [qid for qid, moments in positives.items() if not moments]
    if empty or not positives:
        raise DataError(f"queries without a positive moment: {empty[:5]}")
    ious = [_ranked_positive_ious(qid, predictions.get(qid, ()), moments)
            for qid, moments in positives.items()]
    metrics = _recall_table(ious, ks, ms)
    metrics["n_queries"] = float(len(positives))
    return metrics
