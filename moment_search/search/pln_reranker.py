"""PLN as a reranker (and, through ``eval.reranker_localizer``, a single-video localizer)."""

from __future__ import annotations

import numpy as np
import torch

from ..geometry.proposals import proposal_spans
from ..models.pln import PLN, pool_stage_clips
from .rerank import RerankVideo
from .token_reranker import TokenReranker


class PLNReranker(TokenReranker):
    """Scores every finest-map proposal of each video with PLN (Strategy 1 or 2)."""

    name = "pln"
    model_class = PLN
    default_nms = 0.5

    def __init__(self, *args, strategy: int = 1, **kwargs):
        super().__init__(*args, **kwargs)
        self.strategy = strategy  # 1: the last stage's scores; 2: the average of every stage's

    @classmethod
    def stored_settings(cls, extra: dict) -> dict:
        """The scoring strategy the checkpoint stores (default 1)."""
        return {"strategy": int(extra.get("strategy", 1))}

    @torch.inference_mode()
    def score_encoded(self, query: torch.Tensor, videos: list[RerankVideo]) -> list[np.ndarray]:
        """CML: per video, (P, 3) ``[start_s, end_s, probability]`` in proposal order, for the
        sentence features of :meth:`encode_text`."""
        if not videos:
            return []
        device = query.device
        stages = [self.prepare_video(v) for v in videos]
        clips = [torch.from_numpy(np.stack([s[t] for s in stages])).to(device)
                 for t in range(self.model.n_stages)]
        scores = self.model.score_encoded(clips, query.expand(len(videos), -1),
                                          self.strategy).float().cpu()
        return [np.concatenate([proposal_spans(self.model.final_clips, v.duration),
                                scores[i].numpy()[:, None]], axis=1)
                for i, v in enumerate(videos)]

    def prepare_video(self, video: RerankVideo) -> list[np.ndarray]:
        """The video's features mean-pooled into each stage's clips (query-independent: done
        once per video object and kept in ``video.prepared``)."""
        rate = video.feature_rate or self.feature_rate
        key = ("pln", tuple(self.model.config.stage_clips), rate)
        if key not in video.prepared:
            video.prepared[key] = pool_stage_clips(video.features, self.model.config.stage_clips,
                                                   video.duration, rate)
        return video.prepared[key]

