"""Score a prediction file (its formats: ``data.predictions``) with the metric of its kind."""

from __future__ import annotations

import os
from collections.abc import Sequence

from moment_search.data.corpus import Query
from moment_search.data.predictions import SINGLE, read_predictions
from moment_search.eval.average_precision import single_video_report
from moment_search.metrics import corpus_metrics

from ..errors import DataError


def score_predictions(
    pred_path: str | os.PathLike, gt_queries: Sequence[Query]
) -> dict[str, float]:
    """Score a prediction file against ground-truth queries, with the metric of its kind.

    Args:
        pred_path: a single-video or corpus prediction ``.jsonl``, or a TVR submission ``.json``.
        gt_queries: the ground truth.

    Returns:
        ``single_video_report`` (R@n, IoU=m, mIoU and moment_detr's mAPs; see
        :mod:`moment_search.eval.average_precision`) for a single-video file, ``corpus_metrics``
        for a corpus one (see :mod:`moment_search.metrics`).

    Raises:
        ValueError: a malformed file, or predictions for queries absent from the ground truth
            (saying so when only the qid types differ).
    """
    kind, predictions = read_predictions(pred_path)
    try:
        if kind == SINGLE:
            return single_video_report(predictions, gt_queries)
        return corpus_metrics(predictions, gt_queries)
    except ValueError as e:
        raise DataError(f"{pred_path}: {e}") from e
