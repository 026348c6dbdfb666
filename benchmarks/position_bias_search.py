"""The search vectors of one split for ``benchmark position-bias``: every proposal and sentence
through the search model, searched by the searcher's rule and measured (corpus R@k, the top-1
and top-10 bias, single-video R1)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property, partial
from pathlib import Path

import numpy as np

from ..data.corpus import Corpus
from ..data.corpus_dir import open_corpus
from ..embed.one_video import OneVideoWeights
from ..geometry.spans import temporal_iou_diag
from ..metrics import corpus_metrics
from ..search.localize import WIDEST_FETCH, best_across_videos, video_cap, widened
from ..search.options import default_candidates
from ..train.cell_prior import best_cell_scores, truth_cells
from .position_bias_report import METRICS


@dataclass
class Split:
    """A split's search vectors and ground truth, videos in sorted order."""

    corpus: Corpus
    videos: list[str]
    moments: np.ndarray  # (V, P, D)
    spans: np.ndarray  # (V, P, 2) seconds
    queries: np.ndarray  # (Q, D)
    own: np.ndarray  # (Q,) each query's video number
    windows: np.ndarray  # (Q, 2) ground truth, seconds
    one_video: OneVideoWeights  # how a search within one video weighs the query vectors

    @cached_property
    def best_cells(self) -> np.ndarray:
        """(Q, P) each sentence's best score per cell over the split's videos (computed once:
        every prior fitted on this split reads it)."""
        return best_cell_scores(self.queries, self.moments)

    @cached_property
    def true_cells(self) -> np.ndarray:
        """(Q,) each sentence's ground-truth cell in its own video."""
        return truth_cells(self.spans[self.own], self.windows)

    def subset(self, corpus: Corpus) -> Split:
        """The same vectors for the videos and sentences of ``corpus`` (a part of this one)."""
        keep = [self.videos.index(v) for v in sorted(corpus.videos)]
        number = {old: new for new, old in enumerate(keep)}
        rows = [i for i, v in enumerate(self.own) if v in number]
        return Split(corpus, sorted(corpus.videos), self.moments[keep], self.spans[keep],
                     self.queries[rows], np.array([number[v] for v in self.own[rows]]),
                     self.windows[rows], self.one_video)


def embed_split(model, data: Path, split: str, feature_rate: float | None) -> Split:
    """Every proposal and sentence of a split through the search model (features read at the
    model's rate, as the indexer reads them)."""
    from ..embed.encoders import MomentEncoder, QueryEncoder
    from ..text.tokens import TokenEncoder

    corpus, store = open_corpus(data, split, feature_rate)
    videos = sorted(corpus.videos)
    moments = MomentEncoder(model)
    encoder = QueryEncoder(model, TokenEncoder(device=moments.device))
    queries = list(corpus.queries)
    texts = [q.text for q in queries]
    return Split(
        corpus, videos,
        np.stack([moments.embed_video(store.load(v), corpus.video(v)) for v in videos]),
        np.stack([moments.spans(corpus.video(v).duration) for v in videos]),
        np.concatenate([encoder.encode(texts[i:i + 256]) for i in range(0, len(texts), 256)]),
        np.array([videos.index(q.video_id) for q in queries]),
        np.array([q.windows[0] for q in queries], dtype=np.float64), encoder.one_video)


def search(split: Split, prior: np.ndarray | None, k: int = 100) -> list[np.ndarray]:
    """Each sentence's top-k proposal numbers over the split's videos (the searcher's rule)."""
    n_videos, n_cells, width = split.moments.shape
    flat = split.moments.reshape(-1, width)
    spans = split.spans.reshape(-1, 2)
    videos = np.repeat(np.arange(n_videos), n_cells)
    offset = np.tile(prior, n_videos) if prior is not None else 0.0
    first = min(default_candidates(k), len(flat))
    limit = min(len(flat), WIDEST_FETCH)
    cap, fill = video_cap(None, None)  # the searcher's default over the whole corpus
    ranked = []
    for query in split.queries:
        answer = partial(capped_answer, flat @ query + offset, spans, videos, k, cap, fill)
        ranked.append(np.asarray(widened(answer(first), first, limit, k, cap, answer,
                                         videos.__getitem__)))
    return ranked


def capped_answer(scores: np.ndarray, spans: np.ndarray, videos: np.ndarray, k: int,
                  cap: int | None, fill: bool, wanted: int) -> np.ndarray:
    """The searcher's answer (proposal numbers) from the ``wanted`` best proposals."""
    top = best_proposals(scores, wanted)
    return top[best_across_videos(spans[top], scores[top], videos[top], k, cap, 0.5, fill)]


def best_proposals(scores: np.ndarray, wanted: int) -> np.ndarray:
    """The numbers of the ``wanted`` highest scores, best first (ties: lower number first)."""
    top = np.arange(len(scores))
    if wanted < len(scores):
        top = np.argpartition(-scores, wanted)[:wanted]
    return top[np.lexsort((top, -scores[top]))]


def measure(split: Split, prior: np.ndarray | None) -> dict[str, float]:
    """Corpus R@k, the bias of the top-1 and top-10 moments, single-video R1 of the fast path."""
    ranked = search(split, prior)
    n_cells = split.moments.shape[1]
    spans = split.spans.reshape(-1, 2)
    predictions = {q.qid: [(split.videos[i // n_cells], *spans[i], 0.0) for i in top]
                   for q, top in zip(split.corpus.queries, ranked, strict=True)}
    metrics = corpus_metrics(predictions, list(split.corpus.queries), (1, 10, 100))
    row = {m: metrics[m] for m in METRICS}
    row.update(bias_of(split, ranked))
    row.update(single_video(split, prior))
    return row


def bias_of(split: Split, ranked: list[np.ndarray]) -> dict[str, float]:
    """Start-at-0 shares (percent) and length (s) of the top-1 and top-10 moments."""
    n_cells = split.moments.shape[1]
    spans = split.spans.reshape(-1, 2)
    first = np.array([spans[top[0]] for top in ranked])
    tens = [top[:10] for top in ranked]
    return {"top1_start0": 100 * float(np.mean(first[:, 0] == 0)),
            "top1_length": float(np.mean(first[:, 1] - first[:, 0])),
            "top10_start0": 100 * float(np.mean([np.mean(spans[t, 0] == 0) for t in tens])),
            "top10_most_from_one_video": float(np.mean(
                [np.bincount(t // n_cells).max() for t in tens]))}


def single_video(split: Split, prior: np.ndarray | None) -> dict[str, float]:
    """R1@0.5 / R1@0.7 of the fast path's best proposal in each sentence's own video: as a
    search within one video ranks (``single_R1@t``: ``embed.one_video``'s rule, the prior left
    out), and as it would with the prior (``prior_single_R1@t``, what it would cost)."""
    queries = split.one_video.apply(split.queries)
    row = {}
    for prefix, added in (("", 0.0), ("prior_", 0.0 if prior is None else prior[None])):
        r1 = own_video_r1(split, queries, added)
        row.update({f"{prefix}single_{name}": r1[name] for name in ("R1@0.5", "R1@0.7")})
    return row


def own_video_r1(split: Split, queries: np.ndarray, added: np.ndarray | float = 0.0
                 ) -> dict[str, float]:
    """R1@0.5, R1@0.7 and mIoU (percent) of the best proposal of each sentence's own video,
    ranked by ``queries`` (Q, D) . its proposals, plus ``added`` (per cell)."""
    scores = np.einsum("qpd,qd->qp", split.moments[split.own], queries) + added
    iou = temporal_iou_diag(split.spans[split.own, scores.argmax(1)], split.windows)
    return {"R1@0.5": 100 * float(np.mean(iou >= 0.5)),
            "R1@0.7": 100 * float(np.mean(iou >= 0.7)), "mIoU": 100 * float(np.mean(iou))}


def causes(split: Split, model) -> list[dict]:
    """Which term of the search vectors carries the bias: the split searched with each term of
    the one inner product alone, and with the hub correction or NMS left out (no prior)."""
    space, width = model.config.space_dim, model._unpadded_dim
    terms_end = width - 1 if model.constant_column else width  # where the constant column starts
    terms = {"all terms": slice(0, width), "FVMR term only": slice(0, space),
             "video-text term only": slice(space, terms_end),
             "without the constant column (hub)": slice(0, terms_end)}
    rows = []
    for name, kept in terms.items():
        if kept.stop <= kept.start or (name != "all terms" and kept == slice(0, width)):
            continue  # a term the model does not have
        queries = np.zeros_like(split.queries)
        queries[:, kept] = split.queries[:, kept]
        ranked = search(dataclasses.replace(split, queries=queries), None)
        rows.append({"search vectors": name, **bias_of(split, ranked)})
    return rows


def truth_bias(split: Split) -> dict[str, float]:
    """The ground truth's start-at-0 share and mean length."""
    return {"truth_start0": 100 * float(np.mean(split.windows[:, 0] == 0)),
            "truth_length": float(np.mean(split.windows[:, 1] - split.windows[:, 0]))}
