"""DRN as a reranker (and, through ``eval.reranker_localizer``, a single-video localizer).

DRN regresses its own boxes, one per pyramid location, so its spans differ per query and from
the fast path's 2D-map grid; the cascade fuses each with the fast-path score of the
best-overlapping proposal (``rerank.fast_scores_for``). Per video it returns its candidates
(``DRN.candidates``: m_t above the threshold, the best 32 by m_t x u_t, at least one box).
"""

from __future__ import annotations

import numpy as np
import torch

from ..models.drn import DRN, EncodedQuery, pool_video_segments
from .rerank import RerankVideo
from .token_reranker import TokenReranker


class DRNReranker(TokenReranker):
    """Scores the regressed boxes of each video with DRN: ``[start_s, end_s, m_t x u_t]``."""

    name = "drn"
    model_class = DRN
    default_nms = 0.6

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

