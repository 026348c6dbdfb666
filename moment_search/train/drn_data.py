"""Training examples for DRN over a Corpus: video segments, tokens and per-location targets.

Everything expensive (pooling each video to its segments, MiniLM token embeddings, the targets
of every location) is computed once when the examples are built; an epoch only pads and stacks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..data.corpus import Corpus
from ..data.features import FeatureStore
from ..models.drn import DRNConfig, location_layout, pool_video_segments
from .batching import TokenSource, grounded_queries, pad_with_mask, pool_per_video


@dataclass
class DRNExample:
    """One query with its video, ready to batch."""

    qid: str
    video_id: str
    duration: float  # seconds
    segments: torch.Tensor  # (T, Dv) video segments (shared by the queries of one video)
    tokens: torch.Tensor  # (L, Dt)
    labels: torch.Tensor  # (A,) 1 at the positive locations (m_t of Sec. 3.4)
    distances: torch.Tensor  # (A, 2) (d_s, d_e) of Eq. 4, in segments (0 off the positives)
    windows: torch.Tensor  # (W, 2) ground truth in segments
    weight: float = 1.0  # loss weight (1 for real sentences, the --extra weight for others)


@dataclass
class DRNBatch:
    """A padded batch of examples (see :func:`collate_drn`)."""

    segments: torch.Tensor  # (B, T, Dv)
    tokens: torch.Tensor  # (B, L, Dt)
    token_mask: torch.Tensor  # (B, L) bool
    labels: torch.Tensor  # (B, A)
    distances: torch.Tensor  # (B, A, 2)
    windows: torch.Tensor  # (B, W, 2)
    window_mask: torch.Tensor  # (B, W) bool
    weights: torch.Tensor  # (B,)
    videos: torch.Tensor  # (B,) int64, equal for examples of the same video

    def to(self, device: torch.device | str) -> DRNBatch:
        """The batch on ``device``."""
        return DRNBatch(*(getattr(self, name).to(device) for name in
                          ("segments", "tokens", "token_mask", "labels", "distances", "windows",
                           "window_mask", "weights", "videos")))


def location_targets(windows: np.ndarray, centres: np.ndarray, levels: np.ndarray,
                     range_low: Sequence[float], range_high: Sequence[float]
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Labels and Eq. 4 distances of every location (official ``compute_targets_for_locations``).

    Location t (centre c) is positive for a window [t_s, t_e] when it lies strictly inside
    (d_s = c - t_s > 0 and d_e = t_e - c > 0) and max(d_s, d_e) lies in its level's regression
    range [low, high]; when several windows qualify, the shortest one is its target (FCOS).

    Args:
        windows: (W, 2) ground truth in segments.
        centres: (A,) location centres in segments; levels: (A,) their levels.
        range_low, range_high: the regression range of each level, in segments.

    Returns:
        float32 (A,) labels in {0, 1} and float32 (A, 2) distances (0 where negative).

    Raises:
        ValueError: for no windows.
    """
    if len(windows) == 0:
        raise ValueError("location targets need at least one ground-truth window")
    windows = np.asarray(windows, dtype=np.float64)
    d_start = centres[:, None] - windows[None, :, 0]  # (A, W)
    d_end = windows[None, :, 1] - centres[:, None]
    largest = np.maximum(d_start, d_end)
    low = np.asarray(range_low)[levels][:, None]
    high = np.asarray(range_high)[levels][:, None]
    valid = (np.minimum(d_start, d_end) > 0) & (largest >= low) & (largest <= high)
    length = np.where(valid, (windows[:, 1] - windows[:, 0])[None], np.inf)  # (A, W)
    best = length.argmin(1)  # (A,)
    positive = np.isfinite(length.min(1))
    rows = np.arange(len(centres))
    distances = np.stack([d_start[rows, best], d_end[rows, best]], 1) * positive[:, None]
    return positive.astype(np.float32), distances.astype(np.float32)


def build_drn_examples(corpus: Corpus, store: FeatureStore, config: DRNConfig,
                       encoder: TokenSource, weights: dict[str, float] | None = None
                       ) -> list[DRNExample]:
    """One :class:`DRNExample` per query of ``corpus`` (queries without windows are skipped).

    Args:
        corpus: videos (with ``feature_rate``) and queries.
        store: the feature store holding each video's (T, Dv) features.
        config: the model config (segments, regression ranges).
        encoder: gives token embeddings (``TokenEncoder``).
        weights: loss weight by query id (absent ids weigh 1).
    """
    weights = weights or {}
    centres, levels = location_layout(config.n_segments)
    queries = grounded_queries(corpus)
    segments = pool_per_video(corpus, store, queries,
                              lambda f, d, r: pool_video_segments(f, config.n_segments, d, r))
    tokens = encoder.precompute([q.text for q in queries])
    examples = []
    for query in queries:
        duration = corpus.video(query.video_id).duration
        windows = np.asarray(query.windows, dtype=np.float64) * (config.n_segments / duration)
        labels, distances = location_targets(windows, centres, levels, config.range_low,
                                             config.range_high)
        examples.append(DRNExample(query.qid, query.video_id, duration,
                                   segments[query.video_id],
                                   tokens[query.text], torch.from_numpy(labels),
                                   torch.from_numpy(distances),
                                   torch.from_numpy(windows.astype(np.float32)),
                                   weights.get(query.qid, 1.0)))
    return examples


def collate_drn(examples: Sequence[DRNExample]) -> DRNBatch:
    """Pad and stack examples into a :class:`DRNBatch`.

    Raises:
        ValueError: for no examples.
    """
    tokens, token_mask = pad_with_mask([e.tokens for e in examples])
    windows, window_mask = pad_with_mask([e.windows for e in examples])
    numbers = {video_id: i for i, video_id in enumerate(dict.fromkeys(e.video_id
                                                                       for e in examples))}
    return DRNBatch(
        segments=torch.stack([e.segments for e in examples]),
        tokens=tokens,
        token_mask=token_mask,
        labels=torch.stack([e.labels for e in examples]),
        distances=torch.stack([e.distances for e in examples]),
        windows=windows,
        window_mask=window_mask,
        weights=torch.tensor([e.weight for e in examples], dtype=torch.float32),
        videos=torch.tensor([numbers[e.video_id] for e in examples], dtype=torch.int64),
    )
