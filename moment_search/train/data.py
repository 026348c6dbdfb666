"""Training examples for FVMR over a Corpus: clips, tokens, role trees, soft IoU labels.

Everything expensive (clip pooling, MiniLM token embeddings, spaCy parses) is computed once when
the examples are built; an epoch only pads and stacks small tensors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..data.clips import pool_clips
from ..data.corpus import Corpus, Query
from ..data.features import FeatureStore
from ..geometry.proposals import proposal_spans
from ..geometry.spans import soft_iou_labels, temporal_iou
from ..models.fvmr import RoleTreeTensors
from ..text.role_tree import RoleTree, RoleTreeParser
from ..text.tokens import TokenEncoder, span_weights

MAX_VERBS = 4
MAX_NOUNS = 6


@dataclass
class Example:
    """One query with its video, ready to batch."""

    qid: str
    duration: float  # seconds, of the query's video
    clips: torch.Tensor  # (N, Dv)
    tokens: torch.Tensor  # (L, Dt)
    verb_weights: torch.Tensor  # (V, L)
    noun_weights: torch.Tensor  # (K, L)
    verb_mask: torch.Tensor  # (V,) bool
    noun_mask: torch.Tensor  # (K,) bool
    edges: torch.Tensor  # (V, K) bool
    labels: torch.Tensor  # (P,) soft IoU labels
    video_index: int
    weight: float = 1.0  # loss weight (1 for real sentences, the --extra weight for others)
    teacher: torch.Tensor | None = None  # (P,) target logits of the cross-modal teachers


@dataclass
class Batch:
    """A padded batch of examples (see :func:`collate`).

    Each distinct video of the batch is stored once: query b is grounded in
    ``clips[query_video[b]]``, so the video encoder runs once per video however many of its
    queries the batch holds.
    """

    clips: torch.Tensor  # (V, N, Dv), one row per distinct video
    tokens: torch.Tensor  # (B, L, Dt)
    token_mask: torch.Tensor  # (B, L)
    tree: RoleTreeTensors
    labels: torch.Tensor  # (B, P)
    video_groups: torch.Tensor  # (B,) the examples' video indices (equal for the same video)
    query_video: torch.Tensor  # (B,) row of each query's video in ``clips``
    weights: torch.Tensor  # (B,) loss weight of each query
    teacher: torch.Tensor | None = None  # (B, P) teacher target logits (None: no teachers)

    def to(self, device: torch.device) -> Batch:
        """The batch on ``device``."""
        move = {k: v.to(device) for k, v in vars(self.tree).items()}
        return Batch(self.clips.to(device), self.tokens.to(device), self.token_mask.to(device),
                     RoleTreeTensors(**move), self.labels.to(device),
                     self.video_groups.to(device), self.query_video.to(device),
                     self.weights.to(device),
                     None if self.teacher is None else self.teacher.to(device))


def proposal_labels(query: Query, duration: float, n_clips: int, o_min: float, o_max: float
                    ) -> np.ndarray:
    """(P,) soft IoU labels of every proposal (best IoU over the query's windows)."""
    iou = temporal_iou(proposal_spans(n_clips, duration), np.asarray(query.windows)).max(1)
    return soft_iou_labels(iou, o_min, o_max).astype(np.float32)


def tree_tensors(tree: RoleTree, offsets: torch.Tensor) -> dict[str, torch.Tensor]:
    """Token-pooling weights, masks and edges of one tree, padded to MAX_VERBS x MAX_NOUNS."""
    mask = torch.ones(1, offsets.shape[0], dtype=torch.bool)
    verbs, verb_ok = span_weights(offsets[None], mask, [tree.verbs[:MAX_VERBS]], MAX_VERBS)
    nouns, noun_ok = span_weights(offsets[None], mask, [tree.nouns[:MAX_NOUNS]], MAX_NOUNS)
    edges = torch.zeros(MAX_VERBS, MAX_NOUNS, dtype=torch.bool)
    for v, n in tree.edges:
        if v < MAX_VERBS and n < MAX_NOUNS:
            edges[v, n] = True
    verb_mask = verb_ok[0].clone()
    verb_mask[0] = True  # every tree has a first verb (or pseudo-verb); keep it even if truncated
    return {"verb_weights": verbs[0], "noun_weights": nouns[0], "verb_mask": verb_mask,
            "noun_mask": noun_ok[0], "edges": edges}


def build_examples(corpus: Corpus, store: FeatureStore, n_clips: int, encoder: TokenEncoder,
                   parser: RoleTreeParser, o_min: float = 0.3, o_max: float = 0.7,
                   weights: dict[str, float] | None = None) -> list[Example]:
    """One :class:`Example` per query of ``corpus`` (queries without windows are skipped).

    ``weights`` gives the loss weight of a query id (absent ids weigh 1).
    """
    weights = weights or {}
    queries = [q for q in corpus.queries if q.windows]
    video_index = {vid: i for i, vid in enumerate(dict.fromkeys(q.video_id for q in queries))}
    clips = {vid: _video_clips(corpus, store, vid, n_clips) for vid in video_index}
    texts = [q.text for q in queries]
    trees = parser.parse(texts)
    token_rows = _token_rows(encoder, texts)
    examples = []
    for query, tree in zip(queries, trees, strict=True):
        tokens, offsets = token_rows[query.text]
        labels = proposal_labels(query, corpus.video(query.video_id).duration, n_clips,
                                 o_min, o_max)
        examples.append(Example(
            qid=query.qid, duration=corpus.video(query.video_id).duration,
            clips=clips[query.video_id], tokens=tokens,
            labels=torch.from_numpy(labels),
            video_index=video_index[query.video_id], weight=weights.get(query.qid, 1.0),
            **tree_tensors(tree, offsets)))
    return examples


def _video_clips(corpus: Corpus, store: FeatureStore, video_id: str, n_clips: int
                 ) -> torch.Tensor:
    video = corpus.video(video_id)
    pooled = pool_clips(store.load(video_id), n_clips, video.duration, video.feature_rate)
    return torch.from_numpy(pooled)


def _token_rows(encoder: TokenEncoder, texts: Sequence[str], chunk: int = 256
                ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """``text -> ((L, Dt) token embeddings, (L, 2) char offsets)`` for every distinct text."""
    distinct = list(dict.fromkeys(texts))
    rows = {}
    for start in range(0, len(distinct), chunk):
        part = distinct[start:start + chunk]
        batch = encoder.encode(part)
        for i, text in enumerate(part):
            n = int(batch.mask[i].sum())
            rows[text] = (batch.embeddings[i, :n].cpu(), batch.offsets[i, :n].cpu())
    return rows


def _pad(rows: Sequence[torch.Tensor], length: int, dim: int) -> torch.Tensor:
    """Right-pad the last ``dim`` of each row to ``length`` with zeros and stack."""
    out = []
    for row in rows:
        pad = [0, 0] * (row.ndim - 1 - dim) + [0, length - row.shape[dim]]
        out.append(torch.nn.functional.pad(row, pad))
    return torch.stack(out)


def collate(examples: Sequence[Example]) -> Batch:
    """Pad and stack examples into a :class:`Batch`."""
    length = max(e.tokens.shape[0] for e in examples)
    lengths = torch.tensor([e.tokens.shape[0] for e in examples])
    tree = RoleTreeTensors(
        verb_weights=_pad([e.verb_weights for e in examples], length, 1),
        verb_mask=torch.stack([e.verb_mask for e in examples]),
        noun_weights=_pad([e.noun_weights for e in examples], length, 1),
        noun_mask=torch.stack([e.noun_mask for e in examples]),
        edges=torch.stack([e.edges for e in examples]),
    )
    videos = list(dict.fromkeys(e.video_index for e in examples))
    row = {video: i for i, video in enumerate(videos)}
    first = {}
    for e in examples:
        first.setdefault(e.video_index, e)
    return Batch(
        clips=torch.stack([first[video].clips for video in videos]),
        tokens=_pad([e.tokens for e in examples], length, 0),
        token_mask=torch.arange(length)[None] < lengths[:, None],
        tree=tree,
        labels=torch.stack([e.labels for e in examples]),
        video_groups=torch.tensor([e.video_index for e in examples]),
        query_video=torch.tensor([row[e.video_index] for e in examples]),
        weights=torch.tensor([e.weight for e in examples], dtype=torch.float32),
        teacher=(torch.stack([e.teacher for e in examples])
                 if all(e.teacher is not None for e in examples) else None),
    )


def video_batches(examples: Sequence[Example], batch_size: int, generator: torch.Generator
                  ) -> list[list[Example]]:
    """Shuffled batches of whole videos: all queries of a video land in the same batch.

    Videos are taken in random order and added to a batch until it holds at least
    ``batch_size`` queries, so a batch is about ``batch_size`` queries of few videos.
    """
    by_video: dict[int, list[Example]] = {}
    for example in examples:
        by_video.setdefault(example.video_index, []).append(example)
    groups = list(by_video.values())
    batches, current = [], []
    for i in torch.randperm(len(groups), generator=generator).tolist():
        current.extend(groups[i])
        if len(current) >= batch_size:
            batches.append(current)
            current = []
    if current:
        batches.append(current)
    return batches
