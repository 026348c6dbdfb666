"""The 2D temporal map of 2D-TAN: which clip ranges are proposals, and their pooled features.

A video is cut into N equal clips; cell (i, j) of the N x N map is the moment spanning clips
i..j inclusive (only i <= j is meaningful). Short maps use every cell; long maps keep all short
moments and sample longer ones more sparsely, exactly as 2D-TAN's ``SparsePropMaxPool`` does.

The proposal order used everywhere (training targets, the indexer's ids, search results) is the
row-major order of the mask: by start clip i, then end clip j. See :func:`proposal_index`.
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # imported inside the tensor functions: the query path runs without torch
    import torch

from moment_search.geometry.spans import clip_span_to_seconds

__all__ = [
    "SCALE_LAYERS",
    "gather_proposals",
    "map_max_pool",
    "num_proposals",
    "proposal_index",
    "proposal_mask",
    "proposal_spans",
    "scale_layers_for",
]

# 2D-TAN's ``NUM_SCALE_LAYERS`` of SparsePropMaxPool, by map size N (microsoft/2D-TAN configs).
# Scale 0 is one identity pooling plus (n - 1) MaxPool1d(2, 1): moments of 1..n clips, every start.
# Each later scale starts with MaxPool1d(3, 2), doubling the start stride, then (n - 1)
# MaxPool1d(2, 1): n more moment lengths, each one stride longer, at starts that are multiples
# of the stride. (The 2dtan/MMN reimplementation writes the same masks as POOLING_COUNTS with
# one fewer on the first scale: (15,), (15, 8, 8), (15, 8, 8, 8).) Kept as 2D-TAN has it: the
# kernel-3 pooling skips one length, so sparse maps hold no moment of exactly 17 clips.
SCALE_LAYERS: Mapping[int, tuple[int, ...]] = MappingProxyType(
    {
        # Charades-STA, experiments/charades/2D-TAN-16x16-K5L8-pool.yaml (PropMaxPool, 16 layers):
        # dense, all 136 moments.
        16: (16,),
        # Not in 2D-TAN: the natural step between Charades and ActivityNet, i.e. the ActivityNet and
        # TACoS schedule cut at the scale that first reaches the whole video (lengths 1..16, then
        # 18..32 clips at even starts): 428 proposals.
        32: (16, 8),
        # ActivityNet Captions, experiments/activitynet/2D-TAN-64x64-K9L4-pool.yaml: 1104 proposals.
        64: (16, 8, 8),
        # TACoS, experiments/tacos/2D-TAN-128x128-K5L8-pool.yaml: 2548 proposals.
        128: (16, 8, 8, 8),
    }
)


def scale_layers_for(n_clips: int) -> tuple[int, ...]:
    """The 2D-TAN sampling schedule for a map of ``n_clips`` clips.

    Args:
        n_clips: map size N, > 0.

    Returns:
        ``SCALE_LAYERS[N]`` for N in the table; ``(N,)`` (dense) for N < 16.

    Raises:
        ValueError: for N <= 0 or a size with no published schedule (pass ``scale_layers``
            explicitly to the proposal functions to use one anyway).
    """
    _check_n_clips(n_clips)
    if n_clips in SCALE_LAYERS:
        return SCALE_LAYERS[n_clips]
    if n_clips < 16:
        return (n_clips,)
    raise ValueError(
        f"no 2D-TAN proposal sampling for a map of {n_clips} clips; known sizes are 1..16 (dense) "
        f"and {sorted(SCALE_LAYERS)}; pass scale_layers=... to choose one"
    )


def _check_n_clips(n_clips) -> None:
    if isinstance(n_clips, bool) or not isinstance(n_clips, numbers.Integral) or n_clips <= 0:
        raise ValueError(f"n_clips must be a positive integer, got {n_clips!r}")


def _resolve_scale_layers(n_clips: int, scale_layers: Sequence[int] | None) -> tuple[int, ...]:
    """The schedule to use: the table's, or a checked explicit one."""
    if scale_layers is None:
        return scale_layers_for(n_clips)
    _check_n_clips(n_clips)
    layers = tuple(scale_layers)
    if not layers or not all(
        isinstance(n, numbers.Integral) and not isinstance(n, bool) and n > 0 for n in layers
    ):
        raise ValueError(
            f"scale_layers must be a non-empty sequence of positive ints, got {layers!r}"
        )
    return tuple(int(n) for n in layers)


def _diagonals(scale_layers: tuple[int, ...]) -> list[tuple[int, int]]:
    """(length offset j - i, start stride) of every sampled diagonal of the map, shortest first."""
    diagonals = []
    offset, stride = 0, 1
    for scale, n_layers in enumerate(scale_layers):
        for layer in range(n_layers):
            if scale > 0 and layer == 0:
                stride *= 2  # MaxPool1d(3, 2) over the previous scale: 2 old strides longer
            if scale > 0 or layer > 0:
                offset += stride
            diagonals.append((offset, stride))
    return diagonals


@functools.lru_cache(maxsize=64)
def _cached_mask(n_clips: int, scale_layers: tuple[int, ...]) -> np.ndarray:
    mask = np.zeros((n_clips, n_clips), dtype=bool)
    for offset, stride in _diagonals(scale_layers):
        starts = np.arange(0, n_clips - offset, stride)
        mask[starts, starts + offset] = True
    mask.setflags(write=False)
    return mask


def proposal_mask(n_clips: int, *, scale_layers: Sequence[int] | None = None) -> np.ndarray:
    """Which cells (i, j) of the N x N map are proposals (always i <= j).

    Args:
        n_clips: map size N, > 0.
        scale_layers: 2D-TAN ``NUM_SCALE_LAYERS``; None takes :func:`scale_layers_for`.

    Returns:
        bool array (N, N); True at (i, j) when the moment of clips i..j is a proposal.

    Raises:
        ValueError: for a bad N or schedule (see :func:`scale_layers_for`).
    """
    return _cached_mask(n_clips, _resolve_scale_layers(n_clips, scale_layers)).copy()


def proposal_index(n_clips: int, *, scale_layers: Sequence[int] | None = None) -> np.ndarray:
    """Start and end clip of every proposal, in the canonical (row-major) proposal order.

    Args:
        n_clips: map size N, > 0.
        scale_layers: 2D-TAN ``NUM_SCALE_LAYERS``; None takes :func:`scale_layers_for`.

    Returns:
        int64 array (P, 2) of (i, j), sorted by i then j; row p is proposal p.

    Raises:
        ValueError: for a bad N or schedule.
    """
    mask = _cached_mask(n_clips, _resolve_scale_layers(n_clips, scale_layers))
    return np.argwhere(mask).astype(np.int64)


def num_proposals(n_clips: int, *, scale_layers: Sequence[int] | None = None) -> int:
    """Number of proposals P of an N-clip map (136 for 16, 1104 for 64, 2548 for 128)."""
    return int(_cached_mask(n_clips, _resolve_scale_layers(n_clips, scale_layers)).sum())


def proposal_spans(
    n_clips: int, duration: float, *, scale_layers: Sequence[int] | None = None
) -> np.ndarray:
    """Every proposal of a video as a window in seconds, in proposal order.

    Args:
        n_clips: map size N, > 0.
        duration: video length in seconds, > 0.
        scale_layers: 2D-TAN ``NUM_SCALE_LAYERS``; None takes :func:`scale_layers_for`.

    Returns:
        float64 array (P, 2) of ``[start_s, end_s]``; row p is proposal p of :func:`proposal_index`.

    Raises:
        ValueError: for a bad N, schedule or duration.
    """
    index = proposal_index(n_clips, scale_layers=scale_layers)
    return clip_span_to_seconds(index[:, 0], index[:, 1], n_clips, duration)


def map_max_pool(clips: torch.Tensor) -> torch.Tensor:
    """Build the dense 2D temporal feature map by max pooling (2D-TAN / PLN Fig. 3 / FVMR).

    Cell (i, j) with i <= j is the elementwise max of clip features i..j; cells with i > j are 0.
    The sparse proposal mask is not applied: every i <= j is filled. Fills one diagonal per
    moment length with a vectorised pairwise max of the previous one: O(N) steps, no cell loop.

    Args:
        clips: float tensor (B, N, D): N clip features per video.

    Returns:
        tensor (B, D, N, N) on the device and dtype of ``clips``; differentiable.

    Raises:
        ValueError: if ``clips`` is not 3-D or has no clips.
    """
    import torch

    if clips.ndim != 3 or clips.shape[1] == 0:
        raise ValueError(f"clips must have shape (B, N, D) with N > 0, got {tuple(clips.shape)}")
    batch, n_clips, dim = clips.shape
    map2d = clips.new_zeros(batch, dim, n_clips, n_clips)  # (B, D, N, N)
    pooled = clips.transpose(1, 2)  # (B, D, N): one-clip moments (i, i)
    map2d.diagonal(0, -2, -1).copy_(pooled)
    for offset in range(1, n_clips):
        # moment (i, i + offset) = max of moments (i, i + offset - 1) and (i + 1, i + offset)
        pooled = torch.maximum(pooled[..., :-1], pooled[..., 1:])  # (B, D, N - offset)
        map2d.diagonal(offset, -2, -1).copy_(pooled)
    return map2d


def gather_proposals(
    map2d: torch.Tensor, n_clips: int, *, scale_layers: Sequence[int] | None = None
) -> torch.Tensor:
    """Take the proposal cells of a 2D map, in proposal order.

    Args:
        map2d: tensor (B, D, N, N), e.g. from :func:`map_max_pool`.
        n_clips: map size N; must match ``map2d``.
        scale_layers: 2D-TAN ``NUM_SCALE_LAYERS``; None takes :func:`scale_layers_for`.

    Returns:
        tensor (B, P, D): row p is cell ``proposal_index(N)[p]``.

    Raises:
        ValueError: if ``map2d`` is not (B, D, N, N) for this N, or N has no schedule.
    """
    if map2d.ndim != 4 or tuple(map2d.shape[-2:]) != (n_clips, n_clips):
        raise ValueError(
            f"map2d must have shape (B, D, {n_clips}, {n_clips}), got {tuple(map2d.shape)}"
        )
    import torch

    index = proposal_index(n_clips, scale_layers=scale_layers)
    cells = torch.from_numpy(index[:, 0] * n_clips + index[:, 1]).to(map2d.device)
    return map2d.flatten(2).index_select(-1, cells).transpose(1, 2)  # (B, P, D)
