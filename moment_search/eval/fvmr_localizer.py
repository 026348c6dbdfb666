"""FVMR as a localizer for ``evaluate model fvmr``: the fast path p, with TE and CML timed.

TE is the query (text) encoding time per query; CML the cross-modal scoring time per query per
video (inner products of the query with the video's proposal embeddings; NMS is timed apart, see
``stepwise``). Moment embeddings are computed once per video beforehand, as the indexer does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.corpus import Corpus
from ..data.features import FeatureStore
from ..device import resolve_device
from ..embed.encoders import MomentEncoder, QueryEncoder
from ..models.fvmr import FVMR
from ..pretrained import default_model_dir
from ..text.tokens import TokenEncoder
from .stepwise import StepwiseLocalizer


class FVMRLocalizer(StepwiseLocalizer):
    """Ranks the proposals of each query's own video by p = phi_m(m_i) . phi_s(s) (plus the
    video-text term of a composed checkpoint), as a search within one video does: without the
    constant column, whose per-cell prior only weighs cells across videos and whose hub
    correction is constant within one, and with the video-text term at its one-video weight
    (``embed.one_video``)."""

    def __init__(self, model: FVMR, max_tokens: int = 32, nms_threshold: float = 0.5,
                 feature_rate: float | None = None):
        self.feature_rate = feature_rate
        self.moments = MomentEncoder(model)
        tokens = TokenEncoder(device=self.moments.device, max_length=max_tokens)
        self.queries = QueryEncoder(model, tokens)
        self.nms_threshold = nms_threshold
        self.gallery: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.timings: dict[str, float] = {}

    def prepare(self, corpus: Corpus, store: FeatureStore, video_ids: list[str]) -> None:
        """The indexer's work, done once: per video, its (P, D) proposal embeddings and (P, 2)
        spans in seconds."""
        for vid in video_ids:
            video = corpus.video(vid)
            self.gallery[vid] = (self.moments.embed_video(store.load(vid), video),
                                 self.moments.spans(video.duration))

    def encode_query(self, text: str) -> np.ndarray:
        """TE: MiniLM + BiLSTM + phi_s, a (D,) embedding weighed as a search within one video
        weighs it (``embed.one_video``)."""
        return self.queries.one_video.apply(self.queries.encode([text]))[0]

    def score_video(self, query: np.ndarray, video_id: str) -> np.ndarray:
        """CML: inner products with the video's stored proposal embeddings, (P, 3)."""
        embeddings, spans = self.gallery[video_id]
        return np.concatenate([spans, (embeddings @ query)[:, None]], axis=1)


def load_checkpoint(model_dir: Path | None, device: str = "cpu"
                    ) -> tuple[FVMR, int, float | None]:
    """``(model, max_tokens, feature_rate)`` of an FVMR checkpoint (default: the shipped one),
    the model on ``device`` (``auto`` | ``cpu`` | ``cuda[:N]``)."""
    directory = model_dir or default_model_dir("fvmr")
    _, extra = FVMR.read_config(directory)
    return (FVMR.from_pretrained(directory, resolve_device(device)),
            int(extra.get("max_tokens", 32)),
            extra.get("feature_rate"))


def load_fvmr(data_dir: Path, model_dir: Path | None, device: str = "cpu") -> FVMRLocalizer:
    """The FVMR checkpoint in ``model_dir`` (default: the shipped model)."""
    model, max_tokens, feature_rate = load_checkpoint(model_dir, device)
    return FVMRLocalizer(model, max_tokens, feature_rate=feature_rate)
