"""FIAN as a reranker (and, through ``eval.reranker_localizer``, a single-video localizer).

FIAN scores its own candidate moments, the content-oriented anchors moved by their regressed
offsets, so its spans differ per query and from the fast path's 2D-map grid; the cascade fuses
each with the fast-path score of the best-overlapping proposal (``rerank.fast_scores_for``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..device import resolve_device
from ..models.fian import FIAN, EncodedQuery, moments_in_seconds, pool_video_steps
from ..pretrained import default_model_dir
from ..text.tokens import TokenEncoder
from .rerank import RerankVideo


class FIANReranker:
    """Scores every anchor of each video with FIAN: ``[start_s, end_s, confidence]``."""

    name = "fian"

    def __init__(self, model: FIAN, tokens: TokenEncoder, nms_threshold: float = 0.5,
                 feature_rate: float | None = None):
        self.model = model
        self.tokens = tokens
        self.nms_threshold = nms_threshold
        self.feature_rate = feature_rate  # used for videos that carry none (training's rate)

    @torch.inference_mode()
    def encode_text(self, text: str) -> EncodedQuery:
        """TE: MiniLM token embeddings -> FIAN's query BiGRU, h_q of shape (1, L, d).

        Raises:
            ValueError: an empty or blank sentence.
        """
        device = next(self.model.parameters()).device
        batch = self.tokens.encode([text])
        return self.model.encode_query(batch.embeddings.to(device), batch.mask.to(device))

    @torch.inference_mode()
    def score_encoded(self, query: EncodedQuery, videos: list[RerankVideo]) -> list[np.ndarray]:
        """CML: per video, (A, 3) ``[start_s, end_s, confidence]`` in anchor order, for the
        query of :meth:`encode_text`."""
        if not videos:
            return []
        device = query.words.device
        steps = torch.stack([self.prepare_video(v) for v in videos]).to(device)  # (V, T, Dv)
        scores, spans = self.model.score_encoded(steps, query.expand(len(videos)))
        return [moments_in_seconds(scores[i], spans[i], v.duration, self.model.config.n_steps)
                for i, v in enumerate(videos)]

    def prepare_video(self, video: RerankVideo) -> torch.Tensor:
        """The video's features pooled to FIAN's steps (query-independent: done once per
        video object and kept in ``video.prepared``)."""
        rate = video.feature_rate or self.feature_rate
        key = ("fian", self.model.config.n_steps, rate)
        if key not in video.prepared:
            video.prepared[key] = pool_video_steps(video.features, self.model.config.n_steps,
                                                   video.duration, rate)
        return video.prepared[key]

    def score_videos(self, text: str, videos: list[RerankVideo]) -> list[np.ndarray]:
        """Per video, (A, 3) ``[start_s, end_s, confidence]`` in anchor order."""
        return self.score_encoded(self.encode_text(text), videos) if videos else []


def load_reranker(model_dir: Path | None, device: str = "auto") -> FIANReranker:
    """FIAN from ``model_dir`` (default: the shipped checkpoint), with its stored settings."""
    directory = model_dir or default_model_dir("fian")
    config, extra = FIAN.read_config(directory)
    torch_device = resolve_device(device)
    tokens = TokenEncoder(device=torch_device,
                          max_length=int(extra.get("max_tokens", config.max_tokens)))
    return FIANReranker(FIAN.from_pretrained(directory, torch_device), tokens,
                        float(extra.get("nms_threshold", 0.5)), extra.get("feature_rate"))
