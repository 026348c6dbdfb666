"""The prior baseline: predict the moment positions most frequent in the training split.

It sees neither the video nor the sentence, only where ground-truth moments usually lie on a
normalised time axis. Any model worth shipping must beat it clearly (on Charades-STA it reaches
R1@0.5 of about 27 on its own). Fitted on train, evaluated on val.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from moment_search.atomic import atomic_write_text
from moment_search.data.corpus import Query
from moment_search.geometry.spans import nms, temporal_iou

from ..errors import DataError

_FILE_KIND = "moment_search.prior_baseline"
_TRUTH_CHUNK = 4096  # ground-truth windows per IoU block, bounds memory to C x 4096 floats


def grid_moments(n_cells: int) -> np.ndarray:
    """All moments of a 2D temporal map on the normalised axis [0, 1].

    Args:
        n_cells: number of equal cells of the axis.

    Returns:
        (n_cells * (n_cells + 1) / 2, 2) ``[start, end]`` fractions: cell ``i`` to cell ``j``
        inclusive, ``i <= j``, i.e. ``[i / n, (j + 1) / n]``.
    """
    if n_cells < 1:
        raise ValueError(f"n_cells must be >= 1, got {n_cells}")
    starts, ends = np.triu_indices(n_cells)
    return np.stack([starts / n_cells, (ends + 1) / n_cells], axis=1).astype(np.float64)


def normalised_windows(queries: Sequence[Query], durations: Mapping[str, float]) -> np.ndarray:
    """Every ground-truth window of ``queries`` as a fraction of its video's duration.

    Returns:
        (G, 2) ``[start, end]`` clipped to [0, 1], one row per window.

    Raises:
        ValueError: naming a query whose video has no (valid) duration.
    """
    rows = []
    for query in queries:
        duration = durations.get(query.video_id)
        if duration is None or not (math.isfinite(duration) and duration > 0):
            raise ValueError(
                f"query {query.qid!r}: video {query.video_id!r} needs a positive duration in "
                f"seconds, got {duration!r}"
            )
        rows.extend([start / duration, end / duration] for start, end in query.windows)
    if not rows:
        raise DataError("no ground-truth windows to fit the prior on")
    return np.clip(np.asarray(rows, dtype=np.float64), 0.0, 1.0)


def _match_statistics(
    candidates: np.ndarray, truth: np.ndarray, match_iou: float
) -> tuple[np.ndarray, np.ndarray]:
    """For each candidate: how many truth windows it matches (IoU >= match_iou), and its mean IoU.

    Args:
        candidates: (C, 2); truth: (G, 2); same unit.

    Returns:
        ``counts`` (C,) int64 and ``mean_iou`` (C,) float64.
    """
    counts = np.zeros(len(candidates), dtype=np.int64)
    iou_sums = np.zeros(len(candidates))
    for begin in range(0, len(truth), _TRUTH_CHUNK):
        iou = temporal_iou(candidates, truth[begin : begin + _TRUTH_CHUNK])  # (C, chunk)
        counts += (iou >= match_iou).sum(axis=1)
        iou_sums += iou.sum(axis=1)
    return counts, iou_sums / len(truth)


@dataclass
class PriorBaseline:
    """Fixed moment positions ranked by how often training moments fall on them.

    Build one with :meth:`fit` (or :meth:`load`); an instance is always fitted.

    Attributes:
        moments: (R, 2) ranked ``[start, end]`` fractions of a video on [0, 1], best first,
            pairwise IoU <= ``nms_iou``.
        scores: (R,) fraction of training windows each ranked moment matches, non-increasing.
        n_cells: cells of the normalised 2D map it was fitted on.
        match_iou: a candidate matched a training window at IoU >= this.
        nms_iou: a candidate overlapping a better one at IoU > this was dropped.
    """

    moments: np.ndarray
    scores: np.ndarray
    n_cells: int = 32
    match_iou: float = 0.5
    nms_iou: float = 0.5

    def __post_init__(self) -> None:
        self.moments = np.asarray(self.moments, dtype=np.float64)
        self.scores = np.asarray(self.scores, dtype=np.float64)
        if self.moments.ndim != 2 or self.moments.shape[1:] != (2,) or len(self.moments) == 0:
            raise ValueError(f"moments must be (R >= 1, 2) [start, end], got {self.moments.shape}")
        if self.scores.shape != (len(self.moments),):
            raise ValueError(f"scores must be ({len(self.moments)},) like the moments, "
                             f"got {self.scores.shape}")

    @classmethod
    def fit(
        cls,
        train_queries: Sequence[Query],
        durations: Mapping[str, float],
        n_cells: int = 32,  # 2D-TAN's map size for Charades-STA: 528 candidate moments
        match_iou: float = 0.5,  # the IoU of the headline metric R1@0.5
        nms_iou: float = 0.5,  # the usual temporal NMS threshold, so the top k differ
    ) -> PriorBaseline:
        """Count, for each grid moment, the training windows it matches; keep an NMS'd ranking.

        Ties in the count are broken by mean IoU over all training windows, then by grid order.

        Args:
            train_queries: queries of the training split (their windows in seconds).
            durations: ``video_id -> duration`` in seconds for their videos.
            n_cells, match_iou, nms_iou: see the class attributes.

        Returns:
            The fitted prior.

        Raises:
            ValueError: a video without a duration, or no windows at all.
        """
        truth = normalised_windows(train_queries, durations)  # (G, 2)
        candidates = grid_moments(n_cells)  # (C, 2)
        counts, mean_iou = _match_statistics(candidates, truth, match_iou)
        order = np.lexsort((-mean_iou, -counts))  # last key is primary: count, then mean IoU
        rank_score = np.empty(len(order))
        rank_score[order] = -np.arange(len(order), dtype=np.float64)  # NMS visits in this ranking
        kept = nms(candidates, rank_score, nms_iou)
        return cls(moments=candidates[kept], scores=counts[kept] / len(truth), n_cells=n_cells,
                   match_iou=match_iou, nms_iou=nms_iou)

    def predict(self, duration: float, k: int = 5) -> np.ndarray:
        """The top-k prior moments scaled to one video.

        Args:
            duration: the video's length in seconds, > 0.
            k: how many moments, >= 1.

        Returns:
            (min(k, R), 3) ``[start_s, end_s, score]``, best first.

        Raises:
            ValueError: a non-positive duration or k.
        """
        if not (math.isfinite(duration) and duration > 0):
            raise ValueError(f"duration must be a positive number of seconds, got {duration!r}")
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        top = self.moments[:k] * duration  # (k, 2) seconds
        return np.concatenate([top, self.scores[:k, None]], axis=1)

    def predict_queries(
        self, queries: Sequence[Query], durations: Mapping[str, float], k: int = 5
    ) -> dict[str, np.ndarray]:
        """:meth:`predict` for every query: ``qid -> (k, 3)``, ready for ``single_video_metrics``.

        Raises:
            ValueError: naming a query whose video has no duration.
        """
        predictions = {}
        for query in queries:
            if query.video_id not in durations:
                raise DataError(f"query {query.qid!r}: no duration for video {query.video_id!r}")
            predictions[query.qid] = self.predict(durations[query.video_id], k)
        return predictions

    def save(self, path: str | os.PathLike) -> None:
        """Write the configuration and fitted ranking as JSON (atomically)."""
        payload = {
            "kind": _FILE_KIND,
            "n_cells": self.n_cells,
            "match_iou": self.match_iou,
            "nms_iou": self.nms_iou,
            "moments": self.moments.tolist(),
            "scores": self.scores.tolist(),
        }
        atomic_write_text(path, json.dumps(payload, indent=1) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> PriorBaseline:
        """Read a prior written by :meth:`save`.

        Raises:
            ValueError: naming the file when it is not a saved prior or its arrays disagree.
        """
        try:
            with open(path, encoding="utf-8") as stream:
                payload = json.load(stream)
            if payload.get("kind") != _FILE_KIND:
                raise DataError(f"expected 'kind': {_FILE_KIND!r}, got {payload.get('kind')!r}")
            return cls(moments=payload["moments"], scores=payload["scores"],
                       n_cells=int(payload["n_cells"]), match_iou=float(payload["match_iou"]),
                       nms_iou=float(payload["nms_iou"]))
        except (KeyError, TypeError, AttributeError, ValueError) as e:
            raise DataError(f"{path}: not a saved PriorBaseline ({e!r})") from e
