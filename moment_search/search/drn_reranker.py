"""DRN as a reranker (and, through ``eval.reranker_localizer``, a single-video localizer).

DRN regresses its own boxes, one per pyramid location, so its spans differ per query and from
the fast path's 2D-map grid; the cascade fuses each with the fast-path score of the
best-overlapping proposal (``rerank.fast_scores_for``). Per video it returns its candidates
(``DRN.candidates``: m_t above the threshold, the best 32 by m_t x u_t, at least one box).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..device import resolve_device
from ..models.drn import DRN, EncodedQuery, pool_video_segments
from ..pretrained import default_model_dir
from ..text.tokens import TokenEncoder
from .rerank import RerankVideo


class DRNReranker:
    """Scores the regressed boxes of each video with DRN: ``[start_s, end_s, m_t x u_t]``."""

    name = "drn"

    def __init__(self, model: DRN, tokens: TokenEncoder, nms_threshold: float = 0.6,
                 feature_rate: float | None = None):
        self.model = model
        self.tokens = tokens
        self.nms_threshold = nms_threshold
        self.feature_rate = feature_rate  # used for videos that carry none (training's rate)

    @torch.inference_mode()
    def encode_text(self, text: str) -> EncodedQuery:
        """TE: MiniLM token embeddings -> DRN's BiLSTM and per-level attention (Eq. 2-3).

        Raises:
            ValueError: an empty or blank sentence.
        """
        device = next(self.model.parameters()).device
        batch = self.tokens.encode([text])
        return self.model.encode_query(batch.embeddings.to(device), batch.mask.to(device))

    @torch.inference_mode()
    def score_encoded(self, query: EncodedQuery, videos: list[RerankVideo]) -> list[np.ndarray]:
        """CML: per video, (K, 3) ``[start_s, end_s, score]`` of its candidates, best first,
        for the query of :meth:`encode_text`."""
        if not videos:
            return []
        device = query.levels[0].device
        segments = torch.stack([self.prepare_video(v) for v in videos]).to(device)  # (V, T, Dv)
        matching, scores, boxes = self.model.score_encoded(segments, query.expand(len(videos)))
        return [self.model.candidates(matching[i], scores[i], boxes[i], v.duration)
                for i, v in enumerate(videos)]

    def prepare_video(self, video: RerankVideo) -> torch.Tensor:
        """The video's features pooled to DRN's segments (query-independent: done once per
        video object and kept in ``video.prepared``)."""
        rate = video.feature_rate or self.feature_rate
        key = ("drn", self.model.config.n_segments, rate)
        if key not in video.prepared:
            video.prepared[key] = pool_video_segments(
                video.features, self.model.config.n_segments, video.duration, rate)
        return video.prepared[key]

    def score_videos(self, text: str, videos: list[RerankVideo]) -> list[np.ndarray]:
        """Per video, (K, 3) ``[start_s, end_s, score]`` of its candidates, best first."""
        return self.score_encoded(self.encode_text(text), videos) if videos else []


def load_reranker(model_dir: Path | None, device: str = "auto") -> DRNReranker:
    """DRN from ``model_dir`` (default: the shipped checkpoint), with its stored settings."""
    directory = model_dir or default_model_dir("drn")
    _, extra = DRN.read_config(directory)
    torch_device = resolve_device(device)
    tokens = TokenEncoder(device=torch_device, max_length=int(extra.get("max_tokens", 32)))
    return DRNReranker(DRN.from_pretrained(directory, torch_device), tokens,
                       float(extra.get("nms_threshold", 0.6)), extra.get("feature_rate"))
