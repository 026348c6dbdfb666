"""FIAN as a reranker (and, through ``eval.reranker_localizer``, a single-video localizer).

FIAN scores its own candidate moments, the content-oriented anchors moved by their regressed
offsets, so its spans differ per query and from the fast path's 2D-map grid; the cascade fuses
each with the fast-path score of the best-overlapping proposal (``rerank.fast_scores_for``).
"""

from __future__ import annotations

import numpy as np
import torch

from ..models.fian import FIAN, EncodedQuery, moments_in_seconds, pool_video_steps
from .rerank import RerankVideo
from .token_reranker import TokenReranker


class FIANReranker(TokenReranker):
    """Scores every anchor of each video with FIAN: ``[start_s, end_s, confidence]``."""

    name = "fian"
    model_class = FIAN
    default_nms = 0.5

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

