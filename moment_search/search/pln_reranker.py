"""PLN as a reranker (and as a localizer for ``evaluate model pln``)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from ..data.corpus import Corpus, Query
from ..data.features import FeatureStore
from ..device import resolve_device
from ..geometry.proposals import proposal_spans
from ..models.pln import PLN, pool_stage_clips
from ..pretrained import default_model_dir
from ..text.tokens import TokenEncoder
from .localize import rank_moments
from .rerank import RerankVideo


class PLNReranker:
    """Scores every finest-map proposal of each video with PLN (Strategy 1 or 2)."""

    name = "pln"

    def __init__(self, model: PLN, tokens: TokenEncoder, strategy: int = 1,
                 nms_threshold: float = 0.5, feature_rate: float | None = None):
        self.model = model
        self.feature_rate = feature_rate  # used for videos that carry none (training's rate)
        self.tokens = tokens
        self.strategy = strategy
        self.nms_threshold = nms_threshold
        self.timings: dict[str, float] = {}

    @torch.inference_mode()
    def score_videos(self, text: str, videos: list[RerankVideo]) -> list[np.ndarray]:
        """Per video, (P, 3) ``[start_s, end_s, probability]`` in proposal order."""
        if not videos:
            return []
        device = next(self.model.parameters()).device
        batch = self.tokens.encode([text])
        tokens = batch.embeddings.to(device).expand(len(videos), -1, -1)  # (V, L, Dt)
        mask = batch.mask.to(device).expand(len(videos), -1)
        stages = [pool_stage_clips(v.features, self.model.config.stage_clips, v.duration,
                                   v.feature_rate or self.feature_rate) for v in videos]
        clips = [torch.from_numpy(np.stack([s[t] for s in stages])).to(device)
                 for t in range(self.model.n_stages)]
        scores = self.model.score_proposals(clips, tokens, mask, self.strategy).float().cpu()
        return [np.concatenate([proposal_spans(self.model.final_clips, v.duration),
                                scores[i].numpy()[:, None]], axis=1)
                for i, v in enumerate(videos)]

    def localize(self, queries: list[Query], corpus: Corpus, store: FeatureStore, k: int
                 ) -> dict[str, np.ndarray]:
        """``qid -> (K, 3)``: each query on its own video (``evaluate model pln``)."""
        out, cml = {}, []
        for query in queries:
            video = corpus.video(query.video_id)
            candidate = RerankVideo(video.video_id, store.load(video.video_id), video.duration,
                                    video.feature_rate)
            start = time.perf_counter()
            scored = self.score_videos(query.text, [candidate])[0]
            cml.append(1000 * (time.perf_counter() - start))
            out[query.qid] = rank_moments(scored[:, 2], scored[:, :2], k, self.nms_threshold)
        self.timings = {"TE_plus_CML_ms_median": float(np.median(cml))}
        return out


def load_reranker(model_dir: Path | None, device: str = "auto") -> PLNReranker:
    """PLN from ``model_dir`` (default: the shipped checkpoint), with its stored settings."""
    directory = model_dir or default_model_dir("pln")
    _, extra = PLN.read_config(directory)
    torch_device = resolve_device(device)
    tokens = TokenEncoder(device=torch_device, max_length=int(extra.get("max_tokens", 32)))
    return PLNReranker(PLN.from_pretrained(directory, torch_device), tokens,
                       int(extra.get("strategy", 1)), float(extra.get("nms_threshold", 0.5)),
                       extra.get("feature_rate"))
