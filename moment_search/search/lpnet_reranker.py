"""LPNet as a reranker (and, through ``eval.reranker_localizer``, a single-video localizer).

LPNet rates its k learned proposals, the same k spans (fractions of the video) for every video
and query, so its spans differ from the fast path's 2D-map grid; the cascade fuses each with the
fast-path score of the best-overlapping proposal (``rerank.fast_scores_for``). Per video it
returns all k proposals in seconds with s_i (Eq. 6), best first; NMS happens downstream.
"""

from __future__ import annotations

import numpy as np
import torch

from ..models.lpnet import EncodedQuery, LPNet, pool_video_clips
from .rerank import RerankVideo
from .token_reranker import TokenReranker


class LPNetReranker(TokenReranker):
    """Rates the learned proposals of each video with LPNet: ``[start_s, end_s, s_i]``."""

    name = "lpnet"
    model_class = LPNet
    default_nms = 0.5

    @torch.inference_mode()
    def score_encoded(self, query: EncodedQuery, videos: list[RerankVideo]) -> list[np.ndarray]:
        """CML: per video, (k, 3) ``[start_s, end_s, score]`` of the proposals, best first,
        for the query of :meth:`encode_text`."""
        if not videos:
            return []
        device = query.words.device
        clips = torch.stack([self.prepare_video(v) for v in videos]).to(device)  # (V, T, Dv)
        scores, spans = self.model.score_encoded(clips, query.expand(len(videos)))
        return [self.model.moments(scores[i], spans, v.duration) for i, v in enumerate(videos)]

    def prepare_video(self, video: RerankVideo) -> torch.Tensor:
        """The video's features pooled to LPNet's clips (query-independent: done once per video
        object and kept in ``video.prepared``)."""
        rate = video.feature_rate or self.feature_rate
        key = ("lpnet", self.model.config.n_clips, rate)
        if key not in video.prepared:
            video.prepared[key] = pool_video_clips(video.features, self.model.config.n_clips,
                                                   video.duration, rate)
        return video.prepared[key]

