"""FVMR as a localizer for ``evaluate model fvmr``: the fast path p, with TE and CML timed.

TE is the query (text) encoding time per query; CML the cross-modal scoring time per query per
video (inner products of the query with the video's proposal embeddings, plus NMS, timed apart).
Moment embeddings are computed once per video beforehand, as the indexer does.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..data.corpus import Corpus, Query
from ..data.features import FeatureStore
from ..models.fvmr import FVMR
from ..pretrained import default_model_dir
from ..search.encoders import MomentEncoder, QueryEncoder
from ..search.localize import rank_moments
from ..text.tokens import TokenEncoder
from .runner import register_localizer


class FVMRLocalizer:
    """Ranks the proposals of each query's own video by p = phi_m(m_i) . phi_s(s)."""

    def __init__(self, model: FVMR, max_tokens: int = 32, nms_threshold: float = 0.5,
                 feature_rate: float | None = None):
        self.feature_rate = feature_rate
        self.moments = MomentEncoder(model)
        self.queries = QueryEncoder(model, TokenEncoder(max_length=max_tokens))
        self.nms_threshold = nms_threshold
        self.timings: dict[str, float] = {}

    def video_embeddings(self, corpus: Corpus, store: FeatureStore, video_ids: list[str]
                         ) -> dict[str, np.ndarray]:
        """``video_id -> (P, D)`` proposal embeddings (the indexer's work, done once)."""
        return {vid: self.moments.embed_clips(
            self.moments.clips(store.load(vid), corpus.video(vid))[None])[0] for vid in video_ids}

    def localize(self, queries: list[Query], corpus: Corpus, store: FeatureStore, k: int
                 ) -> dict[str, np.ndarray]:
        """``qid -> (K, 3) [start_s, end_s, score]`` for each query in its own video."""
        video_ids = list(dict.fromkeys(q.video_id for q in queries))
        gallery = self.video_embeddings(corpus, store, video_ids)
        te, cml, nms_ms, out = [], [], [], {}
        for query in queries:
            embedding = self.queries.encode([query.text])[0]  # (D,)
            te.append(self.queries.last_ms)
            start = time.perf_counter()
            scores = gallery[query.video_id] @ embedding  # (P,)
            cml.append(1000 * (time.perf_counter() - start))
            start = time.perf_counter()
            spans = self.moments.spans(corpus.video(query.video_id).duration)
            out[query.qid] = rank_moments(scores, spans, k, self.nms_threshold)
            nms_ms.append(1000 * (time.perf_counter() - start))
        self.timings = {"TE_ms_median": float(np.median(te)),
                        "CML_ms_median": float(np.median(cml)),
                        "NMS_ms_median": float(np.median(nms_ms))}
        return out


def load_checkpoint(model_dir: Path | None) -> tuple[FVMR, int, float | None]:
    """``(model, max_tokens, feature_rate)`` of an FVMR checkpoint (default: the shipped one)."""
    directory = model_dir or default_model_dir("fvmr")
    _, extra = FVMR.read_config(directory)
    return (FVMR.from_pretrained(directory), int(extra.get("max_tokens", 32)),
            extra.get("feature_rate"))


@register_localizer("fvmr")
def load_fvmr(data_dir: Path, model_dir: Path | None) -> FVMRLocalizer:
    """The FVMR checkpoint in ``model_dir`` (default: the shipped model)."""
    model, max_tokens, feature_rate = load_checkpoint(model_dir)
    return FVMRLocalizer(model, max_tokens, feature_rate=feature_rate)
