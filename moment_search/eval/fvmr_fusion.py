"""The FVMR (p + q) ablation: rank proposals by the average of the fast path and the teacher.

Paper Sec. 4.3, "How about fusing p and q?": the average of the two matching scores (here of
their sigmoids, the probabilities both are trained as). Slow: it parses every query and runs the
teacher, so it is an evaluation-only localizer, not a search path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..data.corpus import Corpus, Query
from ..data.features import FeatureStore
from ..geometry.proposals import proposal_spans
from ..models.fvmr import FVMR
from ..search.localize import rank_moments
from ..text.role_tree import RoleTreeParser
from ..text.tokens import TokenEncoder
from ..train.data import build_examples, collate
from .fvmr_localizer import load_checkpoint


class FVMRFusionLocalizer:
    """Scores (sigmoid(p) + sigmoid(q)) / 2 over each query's own video."""

    def __init__(self, model: FVMR, max_tokens: int = 32, feature_rate: float | None = None):
        self.model = model
        self.feature_rate = feature_rate
        self.tokens = TokenEncoder(max_length=max_tokens)
        self.parser = RoleTreeParser()

    @torch.inference_mode()
    def localize(self, queries: list[Query], corpus: Corpus, store: FeatureStore, k: int
                 ) -> dict[str, np.ndarray]:
        """``qid -> (K, 3) [start_s, end_s, score]``."""
        subset = Corpus(corpus.videos, list(queries), corpus.name)
        examples = build_examples(subset, store, self.model.config.n_clips, self.tokens,
                                  self.parser)
        out = {}
        for start in range(0, len(examples), 128):
            chunk = examples[start:start + 128]
            batch = collate(chunk)
            result = self.model(batch.clips, batch.tokens, batch.token_mask, batch.tree,
                                query_video=batch.query_video)
            fused = ((torch.sigmoid(result.p) + torch.sigmoid(result.q)) / 2).numpy()
            for example, scores in zip(chunk, fused, strict=True):
                spans = proposal_spans(self.model.config.n_clips, example.duration)
                out[example.qid] = rank_moments(scores, spans, k)
        return out


def load_fvmr_fusion(data_dir: Path, model_dir: Path | None, device: str = "cpu"
                     ) -> FVMRFusionLocalizer:
    """The FVMR checkpoint in ``model_dir`` (default: the shipped model), p + q fused, on the
    CPU (an evaluation-only ablation; ``device`` is accepted for the common loader call)."""
    return FVMRFusionLocalizer(*load_checkpoint(model_dir))
