"""PLN as a reranker (and, through ``eval.reranker_localizer``, a single-video localizer)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..device import resolve_device
from ..geometry.proposals import proposal_spans
from ..models.pln import PLN, pool_stage_clips
from ..pretrained import default_model_dir
from ..text.tokens import TokenEncoder
from .rerank import DEFAULT_FUSION_WEIGHT, RerankVideo, stored_fusion_weight
from .token_reranker import TokenReranker


class PLNReranker(TokenReranker):
    """Scores every finest-map proposal of each video with PLN (Strategy 1 or 2)."""

    name = "pln"

    def __init__(self, model: PLN, tokens: TokenEncoder, strategy: int = 1,
                 nms_threshold: float = 0.5, feature_rate: float | None = None,
                 fusion_weight: float = DEFAULT_FUSION_WEIGHT):
        self.model = model
        self.fusion_weight = fusion_weight  # the cascade's w when the caller gives none
        self.feature_rate = feature_rate  # used for videos that carry none (training's rate)
        self.tokens = tokens
        self.strategy = strategy
        self.nms_threshold = nms_threshold

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


def load_reranker(model_dir: Path | None, device: str = "auto") -> PLNReranker:
    """PLN from ``model_dir`` (default: the shipped checkpoint), with its stored settings."""
    directory = model_dir or default_model_dir("pln")
    _, extra = PLN.read_config(directory)
    torch_device = resolve_device(device)
    tokens = TokenEncoder(device=torch_device, max_length=int(extra.get("max_tokens", 32)))
    return PLNReranker(PLN.from_pretrained(directory, torch_device), tokens,
                       int(extra.get("strategy", 1)), float(extra.get("nms_threshold", 0.5)),
                       extra.get("feature_rate"), stored_fusion_weight(extra))
