"""Training examples for FIAN over a Corpus: video steps, tokens and per-anchor targets.

Everything expensive (pooling each video to its steps, MiniLM token embeddings, the IoU of every
anchor with the ground truth) is computed once when the examples are built; an epoch only pads
and stacks small tensors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..data.corpus import Corpus
from ..data.features import FeatureStore
from ..geometry.spans import temporal_iou
from ..models.fian import FIANConfig, anchor_layout, pool_video_steps
from .batching import TokenSource, grounded_queries, pad_with_mask, pool_per_video


@dataclass
class FIANExample:
    """One query with its video, ready to batch."""

    qid: str
    duration: float  # seconds
    steps: torch.Tensor  # (T, Dv) video steps (shared by the queries of one video)
    tokens: torch.Tensor  # (L, Dt)
    iou: torch.Tensor  # (A,) o_j: IoU of each anchor with the ground truth (best window)
    offsets: torch.Tensor  # (A, 2) (delta_s, delta_e): ground truth minus anchor, in steps
    weight: float = 1.0  # loss weight (1 for real sentences, the --extra weight for others)


@dataclass
class FIANBatch:
    """A padded batch of examples (see :func:`collate_fian`)."""

    steps: torch.Tensor  # (B, T, Dv)
    tokens: torch.Tensor  # (B, L, Dt)
    token_mask: torch.Tensor  # (B, L) bool
    iou: torch.Tensor  # (B, A)
    offsets: torch.Tensor  # (B, A, 2)
    weights: torch.Tensor  # (B,)

    def to(self, device: torch.device | str) -> FIANBatch:
        """The batch on ``device``."""
        return FIANBatch(*(getattr(self, name).to(device) for name in
                           ("steps", "tokens", "token_mask", "iou", "offsets", "weights")))


def anchor_targets(windows: Sequence[Sequence[float]], duration: float, anchors: np.ndarray,
                   n_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """o_j and (delta_s, delta_e) of every anchor (Sec. 3.5), against its best-IoU window.

    Args:
        windows: the query's ground-truth ``(start_s, end_s)`` windows.
        duration: video length in seconds (the n_steps steps span it).
        anchors: (A, 2) ``[start, end)`` in steps (``anchor_layout``).
        n_steps: T.

    Returns:
        float32 (A,) IoU and float32 (A, 2) ground truth minus anchor, in steps.

    Raises:
        ValueError: for no windows or a non-positive duration.
    """
    if not windows:
        raise ValueError("anchor targets need at least one ground-truth window")
    if not duration > 0:
        raise ValueError(f"duration must be > 0, got {duration!r}")
    truth = np.asarray(windows, dtype=np.float64) * (n_steps / duration)  # (W, 2) in steps
    iou = temporal_iou(anchors.astype(np.float64), truth)  # (A, W)
    best = iou.argmax(1)  # (A,)
    offsets = truth[best] - anchors
    return iou.max(1).astype(np.float32), offsets.astype(np.float32)


def build_fian_examples(corpus: Corpus, store: FeatureStore, config: FIANConfig,
                        encoder: TokenSource, weights: dict[str, float] | None = None
                        ) -> list[FIANExample]:
    """One :class:`FIANExample` per query of ``corpus`` (queries without windows are skipped).

    Args:
        corpus: videos (with ``feature_rate``) and queries.
        store: the feature store holding each video's (T, Dv) features.
        config: the model config (steps, kernels, stride ratio).
        encoder: gives token embeddings (``TokenEncoder``).
        weights: loss weight by query id (absent ids weigh 1).
    """
    weights = weights or {}
    anchors = anchor_layout(config.n_steps, config.kernels, config.stride_ratio)
    queries = grounded_queries(corpus)
    steps = pool_per_video(corpus, store, queries,
                           lambda f, d, r: pool_video_steps(f, config.n_steps, d, r))
    tokens = encoder.precompute([q.text for q in queries])
    examples = []
    for query in queries:
        duration = corpus.video(query.video_id).duration
        iou, offsets = anchor_targets(query.windows, duration, anchors, config.n_steps)
        examples.append(FIANExample(query.qid, duration, steps[query.video_id],
                                    tokens[query.text], torch.from_numpy(iou),
                                    torch.from_numpy(offsets), weights.get(query.qid, 1.0)))
    return examples


def collate_fian(examples: Sequence[FIANExample]) -> FIANBatch:
    """Pad and stack examples into a :class:`FIANBatch`.

    Raises:
        ValueError: for no examples.
    """
    tokens, token_mask = pad_with_mask([e.tokens for e in examples])
    return FIANBatch(
        steps=torch.stack([e.steps for e in examples]),
        tokens=tokens,
        token_mask=token_mask,
        iou=torch.stack([e.iou for e in examples]),
        offsets=torch.stack([e.offsets for e in examples]),
        weights=torch.tensor([e.weight for e in examples], dtype=torch.float32),
    )
