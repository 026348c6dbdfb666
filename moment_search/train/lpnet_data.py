"""Training examples for LPNet over a Corpus: video clips, tokens, windows and boundary labels.

Everything expensive (pooling each video to its clips, MiniLM token embeddings, the relaxed
boundary labels) is computed once when the examples are built; an epoch only pads and stacks.
The proposals' IoU targets are not stored: the proposals move during training, so the losses
compute them from the windows at every step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..data.corpus import Corpus
from ..data.features import FeatureStore
from ..models.lpnet import LPNetConfig, pool_video_clips
from .batching import TokenSource, grounded_queries, pad_with_mask, pool_per_video
from .lpnet_losses import boundary_clips, relaxed_boundary_labels


@dataclass
class LPNetExample:
    """One query with its video, ready to batch."""

    qid: str
    duration: float  # seconds
    clips: torch.Tensor  # (T, Dv) video clips (shared by the queries of one video)
    tokens: torch.Tensor  # (M, Dt)
    windows: torch.Tensor  # (W, 2) ground truth as fractions of the video
    start_labels: torch.Tensor  # (T,) Y_s of Eq. 11 (from the first window)
    end_labels: torch.Tensor  # (T,) Y_e
    weight: float = 1.0  # loss weight (1 for real sentences, the --extra weight for others)


@dataclass
class LPNetBatch:
    """A padded batch of examples (see :func:`collate_lpnet`)."""

    clips: torch.Tensor  # (B, T, Dv)
    tokens: torch.Tensor  # (B, M, Dt)
    token_mask: torch.Tensor  # (B, M) bool
    windows: torch.Tensor  # (B, W, 2)
    window_mask: torch.Tensor  # (B, W) bool
    start_labels: torch.Tensor  # (B, T)
    end_labels: torch.Tensor  # (B, T)
    weights: torch.Tensor  # (B,)


def build_lpnet_examples(corpus: Corpus, store: FeatureStore, config: LPNetConfig,
                         encoder: TokenSource, weights: dict[str, float] | None = None
                         ) -> list[LPNetExample]:
    """One :class:`LPNetExample` per query of ``corpus`` (queries without windows are skipped).

    Args:
        corpus: videos (with ``feature_rate``) and queries.
        store: the feature store holding each video's (T, Dv) features.
        config: the model config (``n_clips``).
        encoder: gives token embeddings (``TokenEncoder``).
        weights: loss weight by query id (absent ids weigh 1).
    """
    weights = weights or {}
    queries = grounded_queries(corpus)
    clips = pool_per_video(corpus, store, queries,
                           lambda f, d, r: pool_video_clips(f, config.n_clips, d, r))
    tokens = encoder.precompute([q.text for q in queries])
    examples = []
    for query in queries:
        duration = corpus.video(query.video_id).duration
        windows = (torch.tensor(query.windows, dtype=torch.float32) / duration).clamp(0, 1)
        start, end = boundary_clips(tuple(windows[0].tolist()), config.n_clips)
        examples.append(LPNetExample(
            query.qid, duration, clips[query.video_id], tokens[query.text], windows,
            relaxed_boundary_labels(start, config.n_clips),
            relaxed_boundary_labels(end, config.n_clips), weights.get(query.qid, 1.0)))
    return examples


def collate_lpnet(examples: Sequence[LPNetExample]) -> LPNetBatch:
    """Pad and stack examples into an :class:`LPNetBatch`.

    Raises:
        ValueError: for no examples.
    """
    tokens, token_mask = pad_with_mask([e.tokens for e in examples])
    windows, window_mask = pad_with_mask([e.windows for e in examples])
    return LPNetBatch(
        clips=torch.stack([e.clips for e in examples]),
        tokens=tokens,
        token_mask=token_mask,
        windows=windows,
        window_mask=window_mask,
        start_labels=torch.stack([e.start_labels for e in examples]),
        end_labels=torch.stack([e.end_labels for e in examples]),
        weights=torch.tensor([e.weight for e in examples], dtype=torch.float32),
    )
