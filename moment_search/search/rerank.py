"""The rerank stage: one interface for every cross-modal model, a registry, and score fusion.

A reranker sees one query and whole videos (their raw features and durations) and returns every
proposal of each video with a relevance probability in [0, 1]. PLN, FIAN, DRN and LPNet are in;
another model joins by adding a line to :data:`RERANKERS`. A checkpoint may carry its fusion
weight (``fusion_weight`` in its stored settings, chosen on validation data); the cascade uses it
unless the caller gives one.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..geometry.spans import temporal_iou


@dataclass
class RerankVideo:
    """One candidate video as a reranker needs it."""

    video_id: str
    features: np.ndarray  # (T, D) raw features
    duration: float  # seconds
    feature_rate: float | None  # features per second, or None (spread over the duration)
    # query-independent work a reranker did on this video (e.g. PLN's pooled clips), kept for
    # the next query that scores the same object
    prepared: dict = field(default_factory=dict, repr=False, compare=False)


class Reranker(Protocol):
    """A cross-modal model that scores the moments of whole videos for one query.

    ``score_videos(text, videos)`` is ``score_encoded(encode_text(text), videos)``: the split lets
    the benchmarks time text encoding (TE) apart from the cross-modal part (CML), and lets a scan
    of a whole corpus encode the sentence once. A reranker may also offer
    ``prepare_video(video)``: its query-independent work on a video, kept in ``video.prepared``
    (callers that hold videos across queries run it ahead).
    """

    name: str
    fusion_weight: float  # w of :func:`fuse` when the caller gives none (DEFAULT_FUSION_WEIGHT)

    def encode_text(self, text: str) -> Any:
        """The model's encoding of one sentence."""
        ...

    def score_encoded(self, query: Any, videos: list[RerankVideo]) -> list[np.ndarray]:
        """Per video, a (P, 3) array ``[start_s, end_s, probability]`` over its proposals."""
        ...

    def score_videos(self, text: str, videos: list[RerankVideo]) -> list[np.ndarray]:
        """Per video, a (P, 3) array ``[start_s, end_s, probability]`` over its proposals."""
        ...


# name -> module whose ``load_reranker(model_dir, device)`` builds it (imported on first use).
RERANKERS = {"pln": "moment_search.search.pln_reranker",
             "fian": "moment_search.search.fian_reranker",
             "drn": "moment_search.search.drn_reranker",
             "lpnet": "moment_search.search.lpnet_reranker"}


def load_reranker(name: str, model_dir: str | Path | None = None, device: str = "auto"
                  ) -> Reranker:
    """The reranker ``name`` from ``model_dir`` (default: its shipped checkpoint).

    Raises:
        ValueError: an unknown name (lists the known ones).
    """
    if name not in RERANKERS:
        raise ValueError(f"unknown reranker {name!r}; expected one of {sorted(RERANKERS)}")
    module = importlib.import_module(RERANKERS[name])
    return module.load_reranker(None if model_dir is None else Path(model_dir), device)


def fast_scores_for(rerank_spans: np.ndarray, fast_spans: np.ndarray, fast_scores: np.ndarray
                    ) -> np.ndarray:
    """The fast-path score of each reranked proposal: that of the best-overlapping fast proposal.

    When both models use the same 2D-map grid this is an exact lookup (IoU 1).
    """
    best = temporal_iou(rerank_spans, fast_spans).argmax(axis=1)  # (P_rerank,)
    return fast_scores[best]


DEFAULT_FUSION_WEIGHT = 0.5  # for a checkpoint that stores none


def stored_fusion_weight(extra: dict) -> float:
    """The fusion weight a checkpoint's stored settings give (default 0.5).

    Raises:
        ValueError: a stored weight outside [0, 1].
    """
    weight = float(extra.get("fusion_weight", DEFAULT_FUSION_WEIGHT))
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"stored fusion_weight must be in [0, 1], got {weight}")
    return weight


def fuse(fast_probability: np.ndarray, rerank_probability: np.ndarray, weight: float
         ) -> np.ndarray:
    """``weight * fast + (1 - weight) * rerank``: both are probabilities of the same event."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"rerank fusion weight must be in [0, 1], got {weight}")
    return weight * fast_probability + (1.0 - weight) * rerank_probability
