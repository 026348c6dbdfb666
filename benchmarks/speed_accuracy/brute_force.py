"""The brute-force baseline: one cross-modal model scanning every video of the corpus.

Per query: TE (the model's text encoding, once), CML (every video scored, in chunks of videos per
forward pass), then NMS within each video and the best k moments across the corpus: the index's
search rule (NMS at the search's 0.5, the default per-video cap of a corpus search). The
videos' features are loaded into memory beforehand and the model's query-independent work on
them (PLN's pooled clips) is kept from the warm-up queries on: the scan's most favourable case,
so the measured ratio to the index is a lower bound.

Before timing, :func:`check_chunking` verifies that scoring videos in chunks gives the same scores
as scoring them one at a time (batching must not change the answer).
"""

from __future__ import annotations

import numpy as np

from ...data.corpus import Corpus
from ...data.features import FeatureStore
from ...eval.stepwise import Stopwatch, timed_pass
from ...search.localize import best_across_videos, video_cap
from ...search.rerank import Reranker, RerankVideo
from ..report import progress

K = 100  # moments per query, as in the corpus table
CHUNK = 64  # videos per forward pass (measured: 16-150 cost the same per video on 1 core)


def load_videos(corpus: Corpus, store: FeatureStore, video_ids: list[str] | None = None
                ) -> list[RerankVideo]:
    """The videos (default: all of the corpus) with their raw features in memory."""
    ids = list(corpus.videos) if video_ids is None else video_ids
    return [RerankVideo(vid, np.asarray(store.load(vid)), corpus.video(vid).duration,
                        corpus.video(vid).feature_rate) for vid in ids]


def score_all(reranker: Reranker, query, videos: list[RerankVideo], chunk: int = CHUNK
              ) -> list[np.ndarray]:
    """Per video, (P, 3) ``[start_s, end_s, probability]`` for an encoded query."""
    out = []
    for start in range(0, len(videos), chunk):
        out += reranker.score_encoded(query, videos[start:start + chunk])
    return out


def top_moments(videos: list[RerankVideo], scored: list[np.ndarray], k: int, nms: float
                ) -> list[tuple[str, float, float, float]]:
    """NMS within each video, then the best ``k`` ``(video_id, start_s, end_s, score)``."""
    moments = np.concatenate(scored)  # (sum P, 3)
    numbers = np.repeat(np.arange(len(scored)), [len(s) for s in scored])
    cap, fill = video_cap(None, None)  # the searcher's default over the whole corpus
    chosen = best_across_videos(moments[:, :2], moments[:, 2], numbers, k, cap, nms, fill)
    return [(videos[numbers[i]].video_id, float(moments[i, 0]), float(moments[i, 1]),
             float(moments[i, 2])) for i in chosen]


def scan(reranker: Reranker, text: str, videos: list[RerankVideo], k: int, nms: float = 0.5
         ) -> tuple[list[tuple[str, float, float, float]], dict[str, float]]:
    """One query against every video: the top ``k`` moments and ``{"TE", "CML", "NMS"}`` ms."""
    watch = Stopwatch()
    query = reranker.encode_text(text)
    watch.lap("TE")
    scored = score_all(reranker, query, videos)
    watch.lap("CML")
    moments = top_moments(videos, scored, k, nms)
    watch.lap("NMS")
    return moments, watch.ms


def check_chunking(reranker: Reranker, text: str, videos: list[RerankVideo], count: int = 4,
                   tolerance: float = 1e-4) -> float:
    """Largest score difference between chunked and one-video scoring of the first ``count``
    videos; RuntimeError above ``tolerance``."""
    query = reranker.encode_text(text)
    chunked = score_all(reranker, query, videos[:count], chunk=count)
    single = [reranker.score_encoded(query, [video])[0] for video in videos[:count]]
    worst = max(float(np.abs(a - b).max()) for a, b in zip(chunked, single, strict=True))
    if worst > tolerance:
        raise RuntimeError(f"{reranker.name}: chunked scoring differs from one-video scoring by "
                           f"{worst:.2e} (> {tolerance}); refusing to time the scan")
    return worst


def measure(reranker: Reranker, videos: list[RerankVideo], texts: list[str], warmup: int = 1
            ) -> dict:
    """The scan measured over ``videos`` for each text after the first ``warmup`` (untimed)."""
    progress(f"{reranker.name} scanning {len(videos):,} videos")
    _, wall, _ = timed_pass(lambda text: scan(reranker, text, videos, K), texts[:warmup],
                            texts[warmup:] or texts)
    return {"videos": len(videos), "queries": len(wall), "ms_p50": float(np.median(wall)),
            "ms_p95": float(np.percentile(wall, 95)), "source": "measured"}
