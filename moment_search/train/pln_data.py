"""Training examples for PLN over a Corpus: per-stage clips, tokens and soft IoU label maps.

Everything expensive (clip pooling at every stage's size, MiniLM token embeddings) is computed
once when the examples are built; an epoch only pads and stacks small tensors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..data.corpus import Corpus
from ..data.features import FeatureStore
from ..geometry.proposals import proposal_index, proposal_mask, proposal_spans
from ..geometry.spans import soft_iou_labels, temporal_iou
from ..models.pln import pool_stage_clips
from .batching import TokenSource, grounded_queries, pad_with_mask, pool_per_video

PAPER_TAU = 0.5  # IoU threshold tau of Eq. 7 ("set to be 0.5")


@dataclass
class PLNExample:
    """One query with its video, ready to batch."""

    qid: str
    duration: float  # seconds
    clips: list[torch.Tensor]  # per stage (N^t, Dv)
    tokens: torch.Tensor  # (L, Dt)
    labels: list[torch.Tensor]  # per stage (N^t, N^t) soft IoU labels, 0 off the proposal mask
    video_index: int
    weight: float = 1.0  # loss weight (1 for real sentences, the --extra weight for others)


@dataclass
class PLNBatch:
    """A padded batch of examples (see :func:`collate_pln`)."""

    clips: list[torch.Tensor]  # per stage (B, N^t, Dv)
    tokens: torch.Tensor  # (B, L, Dt)
    token_mask: torch.Tensor  # (B, L) bool
    labels: list[torch.Tensor]  # per stage (B, N^t, N^t)
    masks: list[torch.Tensor]  # per stage (N^t, N^t) bool proposal masks
    video_groups: torch.Tensor  # (B,) int, equal for queries of the same video
    weights: torch.Tensor | None = None  # (B,) loss weight of each query (None: all 1)

    def to(self, device: torch.device | str) -> PLNBatch:
        """The batch on ``device``."""
        weights = None if self.weights is None else self.weights.to(device)
        return PLNBatch([c.to(device) for c in self.clips], self.tokens.to(device),
                        self.token_mask.to(device), [y.to(device) for y in self.labels],
                        [m.to(device) for m in self.masks], self.video_groups.to(device),
                        weights)


def stage_label_map(windows: Sequence[Sequence[float]], duration: float, n_clips: int,
                    tau: float = PAPER_TAU) -> np.ndarray:
    """Eq. 7 on one stage's map: y = 0 if IoU <= tau else (IoU - tau) / (1 - tau).

    Args:
        windows: the query's ground-truth ``(start_s, end_s)`` windows (IoU is the best over them).
        duration: video length in seconds.
        n_clips: the stage's map size N^t.
        tau: IoU threshold in [0, 1).

    Returns:
        float32 (N^t, N^t): the label of proposal (i, j) at cell (i, j), 0 on non-proposal cells.

    Raises:
        ValueError: for no windows, a tau outside [0, 1), or a bad duration/N.
    """
    if not windows:
        raise ValueError("a label map needs at least one ground-truth window")
    if not 0.0 <= tau < 1.0:
        raise ValueError(f"tau must be in [0, 1), got {tau!r}")
    iou = temporal_iou(proposal_spans(n_clips, duration), np.asarray(windows)).max(1)  # (P,)
    index = proposal_index(n_clips)  # (P, 2)
    labels = np.zeros((n_clips, n_clips), dtype=np.float32)
    labels[index[:, 0], index[:, 1]] = soft_iou_labels(iou, tau, 1.0)
    return labels


def build_pln_examples(corpus: Corpus, store: FeatureStore, stage_clips: Sequence[int],
                       encoder: TokenSource, tau: float = PAPER_TAU,
                       weights: dict[str, float] | None = None) -> list[PLNExample]:
    """One :class:`PLNExample` per query of ``corpus`` (queries without windows are skipped).

    Args:
        corpus: videos (with ``feature_rate``) and queries.
        store: the feature store holding each video's (T, Dv) features.
        stage_clips: N^t per stage (``PLNConfig.stage_clips``).
        encoder: gives token embeddings (``TokenEncoder``).
        tau: IoU threshold of the soft labels (paper: 0.5).
        weights: loss weight by query id (absent ids weigh 1).
    """
    weights = weights or {}
    queries = grounded_queries(corpus)
    clips = pool_per_video(corpus, store, queries,
                           lambda f, d, r: pool_stage_clips(f, stage_clips, d, r))
    video_index = {vid: i for i, vid in enumerate(clips)}
    tokens = encoder.precompute([q.text for q in queries])
    examples = []
    for query in queries:
        duration = corpus.video(query.video_id).duration
        labels = [torch.from_numpy(stage_label_map(query.windows, duration, n, tau))
                  for n in stage_clips]
        examples.append(PLNExample(qid=query.qid, duration=duration, clips=clips[query.video_id],
                                   tokens=tokens[query.text], labels=labels,
                                   video_index=video_index[query.video_id],
                                   weight=weights.get(query.qid, 1.0)))
    return examples


def collate_pln(examples: Sequence[PLNExample]) -> PLNBatch:
    """Pad and stack examples (all with the same stages) into a :class:`PLNBatch`.

    Raises:
        ValueError: for no examples.
    """
    tokens, token_mask = pad_with_mask([e.tokens for e in examples])
    n_stages = len(examples[0].clips)
    return PLNBatch(
        clips=[torch.stack([e.clips[t] for e in examples]) for t in range(n_stages)],
        tokens=tokens,
        token_mask=token_mask,
        labels=[torch.stack([e.labels[t] for e in examples]) for t in range(n_stages)],
        masks=[torch.from_numpy(proposal_mask(e.shape[0])) for e in examples[0].clips],
        video_groups=torch.tensor([e.video_index for e in examples]),
        weights=torch.tensor([e.weight for e in examples], dtype=torch.float32),
    )
