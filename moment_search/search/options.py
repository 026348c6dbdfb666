"""What a search is asked (:class:`SearchOptions`) and what it answers (:class:`Moment`,
:class:`Timings`); ``search.searcher`` re-exports them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Moment:
    """One search result: a moment of a video, with the score of the stage that ranked it and
    its relevance, a probability in [0, 1] that it is a real match (``search.relevance``; None
    when the index's model carries no calibration)."""

    rank: int
    video_id: str
    start_s: float
    end_s: float
    score: float
    stage: str = "fvmr"
    proposal_id: int = -1
    relevance: float | None = None

    def to_dict(self) -> dict:
        """JSON-ready fields (``relevance`` only when the index is calibrated)."""
        fields = {"rank": self.rank, "video_id": self.video_id,
                  "start_s": round(self.start_s, 3), "end_s": round(self.end_s, 3),
                  "score": round(self.score, 6), "stage": self.stage}
        if self.relevance is not None:
            fields["relevance"] = round(self.relevance, 4)
        return fields


def default_candidates(k: int) -> int:
    """Proposals fetched from FAISS for k moments: NMS and the per-video cap drop many."""
    return max(200, 20 * k)


@dataclass
class SearchOptions:
    """How hits become moments."""

    k: int = 10  # moments returned
    nms: float = 0.5  # temporal NMS IoU threshold within a video (>= 1 disables it)
    # at most this many moments per video; None: localize.CORPUS_PER_VIDEO over more than one
    # video (fetched wider, then the held-back moments, when fewer than k are left; see
    # localize.widened), no cap within one video
    per_video: int | None = None
    # proposals fetched from the index (default: default_candidates(k), then wider where the
    # default cap needs it; given, fetched once as given)
    candidates: int | None = None
    video_ids: Sequence[str] | None = None  # restrict the search to these videos
    rerank: str | None = None  # a reranker name (registry.list_rerankers), or None
    rerank_videos: int = 10  # M: the top videos of the fast path that the reranker re-scores
    # fused = w * fast-path score + (1 - w) * logit(reranker's probability) (rerank.fuse);
    # None: the reranker's own w
    # (stored with its checkpoint, 0.5 when it stores none)
    rerank_weight: float | None = None


@dataclass
class Timings:
    """Milliseconds spent in each step of the last search call."""

    encode_ms: float = 0.0
    search_ms: float = 0.0
    post_ms: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)
