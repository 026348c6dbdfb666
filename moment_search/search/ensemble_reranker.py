"""Several rerankers as one: the mean of their probabilities over the union of their moments.

Each member scores the video as it alone would (DRN's regressed boxes, FIAN's moved anchors,
PLN's and LPNet's own grids), so their spans differ. The ensemble's candidates are the union of
every member's spans; a member's probability for a candidate is that of its own best-overlapping
moment (as the cascade reads the fast path's score, ``rerank.fast_scores_for``), and the
candidate's score is the plain mean over members. Equal weights are the rule, fixed before any
run: nothing is fitted, so nothing can be fitted on val. Which members go in is chosen on train
folds (``benchmark ensemble-cv``); the checkpoint (``models.ensemble``) names them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ..models.ensemble import MODEL_TYPE, Ensemble
from ..pretrained import default_model_dir
from .rerank import (
    Reranker,
    RerankVideo,
    fast_scores_for,
    load_reranker,
    same_text_encoder,
    stored_fusion_weight,
)


def combine(scored: list[np.ndarray]) -> np.ndarray:
    """(K, 3) ``[start_s, end_s, mean probability]``, best first, from each member's (P_i, 3)
    moments of one video: over the union of their spans, each member's probability of its
    best-overlapping moment, averaged. A member with no moment for the video has no say in it
    (no moment at all: an empty (0, 3) array)."""
    scored = [moments for moments in scored if len(moments)]
    if not scored:
        return np.zeros((0, 3))
    spans = np.unique(np.concatenate([moments[:, :2] for moments in scored]), axis=0)
    probability = np.mean([fast_scores_for(spans, moments[:, :2], moments[:, 2])
                           for moments in scored], axis=0)
    order = np.argsort(-probability, kind="stable")
    return np.column_stack([spans[order], probability[order]])


class EnsembleReranker:
    """The members' mean probability (see the module docstring)."""

    name = MODEL_TYPE
    model_class = Ensemble

    def __init__(self, members: list[Reranker], fusion_weight: float):
        rates = {getattr(m, "feature_rate", None) for m in members}
        if len(rates) > 1:
            raise DataError(f"ensemble members read features at different rates {rates}: "
                            f"{[m.name for m in members]}")
        self.members = members
        self.tokens = self.tokens  # one text encoder for the members that can share it
        self.feature_rate = rates.pop()
        # the first member's threshold: the one the fold choice ranks by (ensemble-cv)
        self.nms_threshold = float(getattr(members[0], "nms_threshold", 0.5))
        self.fusion_weight = fusion_weight

    @property
    def tokens(self):
        """The first member's token encoder (None: it has none)."""
        return getattr(self.members[0], "tokens", None)

    @tokens.setter
    def tokens(self, encoder) -> None:
        """Give ``encoder`` to every member whose own runs the same text model and settings
        (``Searcher`` shares its encoder this way; MiniLM then runs once per query)."""
        for member in self.members:
            if same_text_encoder(encoder, getattr(member, "tokens", None)):
                member.tokens = encoder

    def encode_text(self, text: str) -> list[Any]:
        """TE: every member's encoding of the sentence."""
        return [member.encode_text(text) for member in self.members]

    def prepare_video(self, video: RerankVideo) -> None:
        """Each member's query-independent work on the video (kept in ``video.prepared``)."""
        for member in self.members:
            if hasattr(member, "prepare_video"):
                member.prepare_video(video)

    def score_encoded(self, query: list[Any], videos: list[RerankVideo]) -> list[np.ndarray]:
        """CML: per video, (K, 3) ``[start_s, end_s, probability]``, best first."""
        if not videos:
            return []
        per_member = [member.score_encoded(encoded, videos)
                      for member, encoded in zip(self.members, query, strict=True)]
        return [combine([scored[i] for scored in per_member]) for i in range(len(videos))]

    def score_videos(self, text: str, videos: list[RerankVideo]) -> list[np.ndarray]:
        """Per video, (K, 3) ``[start_s, end_s, probability]``: TE once, then CML."""
        return self.score_encoded(self.encode_text(text), videos) if videos else []

    @classmethod
    def load(cls, model_dir: Path | None, device: str = "auto") -> EnsembleReranker:
        """The ensemble of ``model_dir`` (default: the shipped one), each member from its
        checkpoint (default: its shipped one), with the stored fusion weight.

        Raises:
            CheckpointError: not an ensemble's checkpoint. DataError: members that read
                features at different rates, or a stored weight outside [0, 1].
        """
        directory = model_dir or default_model_dir(MODEL_TYPE)
        _, extra = Ensemble.read_config(directory)
        members = [load_reranker(name, path, device)
                   for name, path in Ensemble.member_dirs(directory)]
        try:
            return cls(members, stored_fusion_weight(extra))
        except DataError as error:
            raise DataError(f"{directory}: {error}") from error
