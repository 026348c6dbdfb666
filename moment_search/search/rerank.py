"""The rerank stage: one interface for every cross-modal model, a registry, and score fusion.

A reranker sees one query and whole videos (their raw features and durations) and returns every
proposal of each video with a relevance probability in [0, 1]. PLN, FIAN, DRN, LPNet and the
ensemble of several (``ensemble_reranker``) are in;
another model joins through the ``reranker`` of its line in the registry (``registry.MODELS``).
A checkpoint may carry its fusion weight (``fusion_weight`` in its stored settings; the shipped
ones were chosen on train folds by ``benchmark cascade-cv``); the cascade uses it unless the
caller gives one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..errors import DataError, InputError
from ..geometry.spans import temporal_iou
from ..registry import reranker_class


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


def load_reranker(name: str, model_dir: str | Path | None = None, device: str = "auto"
                  ) -> Reranker:
    """The reranker ``name`` (see ``registry.list_rerankers``) from ``model_dir`` (default: its
    shipped checkpoint).

    Raises:
        UnknownNameError: an unknown name (lists the known ones).
    """
    return reranker_class(name).load(None if model_dir is None else Path(model_dir), device)


def fast_scores_for(rerank_spans: np.ndarray, fast_spans: np.ndarray, fast_scores: np.ndarray
                    ) -> np.ndarray:
    """The fast-path score of each reranked proposal: that of the best-overlapping fast proposal.

    When both models use the same 2D-map grid this is an exact lookup (IoU 1).
    """
    best = temporal_iou(rerank_spans, fast_spans).argmax(axis=1)  # (P_rerank,)
    return fast_scores[best]


DEFAULT_FUSION_WEIGHT = 0.5  # for a checkpoint that stores none
TEXT_ENCODER_SETTINGS = ("model_path", "max_length", "device")


def same_text_encoder(mine, theirs) -> bool:
    """Whether two token encoders (``text.tokens.TokenEncoder``; None: none) run the same text
    model with the same settings, so that one can serve for both (one MiniLM per process, and a
    sentence encoded once through the shared sentence cache)."""
    return mine is not None and theirs is not None and all(
        getattr(mine, a) == getattr(theirs, a) for a in TEXT_ENCODER_SETTINGS)


def stored_fusion_weight(extra: dict) -> float:
    """The fusion weight a checkpoint's stored settings give (default 0.5).

    Raises:
        DataError: a stored weight outside [0, 1].
    """
    weight = float(extra.get("fusion_weight", DEFAULT_FUSION_WEIGHT))
    if not 0.0 <= weight <= 1.0:
        raise DataError(f"stored fusion_weight must be in [0, 1], got {weight}")
    return weight


PROBABILITY_FLOOR = 1e-6  # a reranker's probability is kept this far from 0 and 1 (finite logit)


def log_odds(probability: np.ndarray) -> np.ndarray:
    """``log(r / (1 - r))``, with r kept within :data:`PROBABILITY_FLOOR` of 0 and 1."""
    r = np.clip(probability, PROBABILITY_FLOOR, 1.0 - PROBABILITY_FLOOR)
    return np.log(r / (1.0 - r))


def fuse(fast_logit: np.ndarray, rerank_probability: np.ndarray, weight: float) -> np.ndarray:
    """``weight * p + (1 - weight) * logit(r)``: the log-odds of the same event from both stages.

    The fast-path score p is a logit (FVMR's, plus the corpus terms), so the reranker's
    probability r joins it as one. Fusing probabilities instead (``w * sigmoid(p) + (1 - w) *
    r``, before) let r all but decide at every w < 1: the fast path's top scores are 5-8, where
    the sigmoid is flat. Both the fusion space and each reranker's w were chosen on train folds
    (``benchmark cascade-cv``).
    """
    if not 0.0 <= weight <= 1.0:
        raise InputError(f"rerank fusion weight must be in [0, 1], got {weight}",
                         parameter="fusion_weight")
    return weight * fast_logit + (1.0 - weight) * log_odds(rerank_probability)
