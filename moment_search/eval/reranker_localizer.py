"""Every reranker as a single-video localizer: ``evaluate model pln``, ``pln-s2``, and any model
with a reranker in the registry (``registry.MODELS``) joins by its name.

The reranker's own split gives the timed steps (see ``stepwise``): TE is ``encode_text`` (for PLN:
MiniLM + its sentence BiLSTM), CML is ``score_encoded`` on the one video. Query-independent work
on the video (PLN's pooling of the features into stage clips) is done in ``prepare`` when the
reranker offers it (``prepare_video``), as FVMR's moment embeddings are: CML is the cross-modal
model alone, with (on a GPU) the copy of the pooled clips to the device and of the scores back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..data.corpus import Corpus
from ..data.features import FeatureStore
from ..search.rerank import Reranker, RerankVideo, load_reranker
from .stepwise import StepwiseLocalizer


class RerankerLocalizer(StepwiseLocalizer):
    """A reranker scoring each query's own video, step by step."""

    def __init__(self, reranker: Reranker):
        self.reranker = reranker
        self.nms_threshold = float(getattr(reranker, "nms_threshold", 0.5))
        # videos are read at the rate the model was trained with (None: spread over the duration)
        self.feature_rate = getattr(reranker, "feature_rate", None)
        self.videos: dict[str, RerankVideo] = {}
        self.timings: dict[str, float] = {}

    def prepare(self, corpus: Corpus, store: FeatureStore, video_ids: list[str]) -> None:
        """Load each video's raw features into memory and do the reranker's query-independent
        work on them (neither is CML)."""
        for vid in video_ids:
            video = corpus.video(vid)
            self.videos[vid] = RerankVideo(vid, np.asarray(store.load(vid)), video.duration,
                                           video.feature_rate)
            if hasattr(self.reranker, "prepare_video"):
                self.reranker.prepare_video(self.videos[vid])

    def encode_query(self, text: str) -> Any:
        """TE: the reranker's text encoding."""
        return self.reranker.encode_text(text)

    def score_video(self, query: Any, video_id: str) -> np.ndarray:
        """CML: (P, 3) ``[start_s, end_s, probability]`` over the video's proposals."""
        return self.reranker.score_encoded(query, [self.videos[video_id]])[0]


def load_named(name: str, data_dir: Path, model_dir: Path | None, device: str = "cpu"
               ) -> RerankerLocalizer:
    """Reranker ``name`` (see ``registry.list_rerankers``) from ``model_dir`` (default:
    shipped) on ``device``; ``data_dir`` is not read (the common loader call)."""
    return RerankerLocalizer(load_reranker(name, model_dir, device))


def load_pln_strategy2(data_dir: Path, model_dir: Path | None, device: str = "cpu"
                       ) -> RerankerLocalizer:
    """PLN with Strategy 2: the average of every stage's scores."""
    localizer = load_named("pln", data_dir, model_dir, device)
    localizer.reranker.strategy = 2
    return localizer
