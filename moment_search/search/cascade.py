"""The search cascade: fast-path moments -> top M videos -> reranker -> fused scores -> NMS.

Fusion (``rerank.fuse``): for each proposal of a reranked video, ``w * p + (1 - w) * logit(r)``
where r is the reranker's probability and p the fast-path score of every proposal of the video,
not only the fetched ones (read back from the index where it stores exact vectors, else computed
again): the inner product of the search vectors, i.e. FVMR's logit plus, for a checkpoint with
corpus terms (``train.compose``), beta x the video-text score - gamma x the hub correction + the
cell's prior pi (``train.cell_prior``). The weight w is the caller's (``rerank_weight``), else the
one the reranker's checkpoint stores (``fusion_weight``: every shipped reranker stores one;
``docs/query.md`` says how each was chosen), else ``rerank.DEFAULT_FUSION_WEIGHT``.
Reranked videos come first, ranked by the fused score; the fast-path moments of the other videos
follow, so k may exceed what M videos hold. Each reranked video keeps ``per_video`` moments:
the caller's cap, or, over more than one video, the default one (``localize.CORPUS_PER_VIDEO``,
raised for a video to what the fast path's top k, filled up to k where the fetched proposals
leave fewer, held of it);
within one video, as many as the fast path's top k held (at least one). The reranker re-scores
and re-places moments; it does not let ten videos crowd out the rest of the corpus.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import numpy as np

from ..data.corpus import Video
from ..data.features import load_feature_source
from .localize import keep_best, video_cap
from .rerank import Reranker, RerankVideo, fast_scores_for, fuse


def rerank_video(record) -> RerankVideo:
    """A catalog record's video with its raw features, from the source recorded at index time."""
    features = load_feature_source(record.feature_source)
    return RerankVideo(record.video_id, features, record.duration, record.feature_rate)


def candidate_videos(searcher, video_ids: list[str]) -> list[RerankVideo]:
    """The raw features of each video, from the sources recorded in the catalog."""
    return [rerank_video(searcher.catalog.video(video_id)) for video_id in video_ids]


def fast_logits(searcher, query: np.ndarray, videos: list[RerankVideo], records: list
                ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per video (with its catalog record), ``(spans (P, 2), p (P,))``: the fast-path score
    over all proposals, for the (D,) query vector the search already computed. The
    proposal embeddings are read back from the index when it stores them exactly (flat, HNSW),
    else computed again."""
    encoder = searcher.moment_encoder()
    out = []
    for video, record in zip(videos, records, strict=True):
        embedded = searcher.index.stored_vectors(record.first_id, record.n_proposals)
        if embedded is None:
            meta = Video(video.video_id, video.duration, None, video.feature_rate)
            embedded = encoder.embed_video(video.features, meta)
        out.append((encoder.spans(video.duration), embedded @ query))
    return out


def video_budget(per_video: int | None, in_fast_top: int, fill: bool) -> int:
    """How many moments a reranked video keeps: the cap (the default one raised to what the
    filled fast path gave the video), else what the video had in the fast path's top k (at least
    one)."""
    if per_video is None:
        return max(1, in_fast_top)
    return max(per_video, in_fast_top) if fill else per_video


def rerank_moments(searcher, reranker: Reranker, text: str, query: np.ndarray, fast: list,
                   opts) -> list:
    """Fast-path moments of one query -> the cascade's top ``opts.k`` moments."""
    chosen = list(dict.fromkeys(m.video_id for m in fast))[:opts.rerank_videos]
    budget = Counter(m.video_id for m in fast[:opts.k])
    per_video, fill = video_cap(opts.per_video, opts.video_ids)
    records = [searcher.catalog.video(video_id) for video_id in chosen]
    videos = [rerank_video(record) for record in records]
    scored = reranker.score_videos(text, videos)
    weight = reranker.fusion_weight if opts.rerank_weight is None else opts.rerank_weight
    fused = []
    for video, moments, (spans, logits) in zip(videos, scored,
                                               fast_logits(searcher, query, videos, records),
                                               strict=True):
        score = fuse(fast_scores_for(moments[:, :2], spans, logits), moments[:, 2], weight)
        cap = video_budget(per_video, budget[video.video_id], fill)
        keep = keep_best(moments[:, :2], score, cap, opts.nms)
        fused += [(video.video_id, moments[i, 0], moments[i, 1], float(score[i])) for i in keep]
    fused.sort(key=lambda hit: -hit[3])
    stage = f"{reranker.name}+fvmr"
    # a reranked moment carries the relevance of its video's best fast-path moment
    relevance = {}
    for m in fast:
        relevance.setdefault(m.video_id, m.relevance)
    head = [type(fast[0])(0, v, float(s), float(e), sc, stage, relevance=relevance[v])
            for v, s, e, sc in fused]
    tail = [m for m in fast if m.video_id not in set(chosen)]
    return [replace(m, rank=rank) for rank, m in enumerate((head + tail)[:opts.k], start=1)]
