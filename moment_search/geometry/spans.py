"""Temporal spans: IoU, greedy NMS, clip <-> seconds conversion and soft IoU labels.

A span is ``[start, end]`` with ``start <= end``; a set of spans is a float array shaped ``(N, 2)``.
Units are whatever the caller uses (seconds at the library boundary, clip indices inside models);
every function here is unit-agnostic unless its name says otherwise. Everything is vectorised over
numpy arrays; :func:`temporal_iou_torch` is the tensor twin used inside models.

Zero-length spans (``start == end``) are allowed: two identical points have IoU 1, any other pair
involving a point has IoU 0.
"""

from __future__ import annotations

import numbers
import sys
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch stays unimported for numpy callers (the query path)
    import torch

__all__ = [
    "as_spans",
    "clip_span_to_seconds",
    "nms",
    "seconds_to_clip_index",
    "soft_iou_labels",
    "temporal_iou",
    "temporal_iou_diag",
    "temporal_iou_torch",
]


def as_spans(spans, name: str = "spans") -> np.ndarray:
    """Check and convert spans to a float array.

    Args:
        spans: array-like shaped (N, 2) of ``[start, end]``; N may be 0.
        name: what to call the argument in error messages.

    Returns:
        float array (N, 2): the input's float dtype is kept, anything else becomes float64.

    Raises:
        ValueError: if the shape is not (N, 2), a value is NaN or infinite, or some end < start;
            the message names the first bad row.
    """
    arr = np.asarray(spans)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"{name} must have shape (N, 2) of [start, end], got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}") from e
    finite = np.isfinite(arr).all(axis=1)
    if not finite.all():
        row = int(np.flatnonzero(~finite)[0])
        raise ValueError(f"{name}[{row}] = {arr[row].tolist()} is not finite (NaN or inf)")
    reversed_rows = arr[:, 1] < arr[:, 0]
    if reversed_rows.any():
        row = int(np.flatnonzero(reversed_rows)[0])
        raise ValueError(f"{name}[{row}] = {arr[row].tolist()} has end < start")
    return arr


def is_tensor(value) -> bool:
    """True for a torch tensor (without importing torch: a tensor means it is imported)."""
    torch_module = sys.modules.get("torch")
    return torch_module is not None and isinstance(value, torch_module.Tensor)


def _iou_from_bounds(a_start, a_end, b_start, b_end):
    """IoU of broadcast span bounds; works on numpy arrays and torch tensors alike."""
    lib = sys.modules["torch"] if is_tensor(a_start) else np
    inter = (lib.minimum(a_end, b_end) - lib.maximum(a_start, b_start)).clip(min=0)
    union = (a_end - a_start) + (b_end - b_start) - inter
    # union == 0 only when both spans are points; they then match exactly when they coincide.
    same_point = (a_start == b_start) & (a_end == b_end)
    safe_union = lib.where(union > 0, union, lib.ones_like(union))
    return lib.where(union > 0, inter / safe_union, same_point * lib.ones_like(union))


def temporal_iou(a, b) -> np.ndarray:
    """Pairwise temporal IoU (intersection over union) of two span sets.

    Args:
        a: spans (N, 2), any unit.
        b: spans (M, 2), same unit as ``a``.

    Returns:
        float array (N, M) in [0, 1]; entry (n, m) is IoU(a[n], b[m]).

    Raises:
        ValueError: on a bad span (see :func:`as_spans`).
    """
    a = as_spans(a, "a")
    b = as_spans(b, "b")
    return _iou_from_bounds(a[:, 0:1], a[:, 1:2], b[None, :, 0], b[None, :, 1])


def temporal_iou_diag(a, b) -> np.ndarray:
    """Elementwise temporal IoU of two equally long span sets: IoU(a[n], b[n]).

    Args:
        a: spans (N, 2).
        b: spans (N, 2), same unit as ``a``.

    Returns:
        float array (N,) in [0, 1]; equals ``np.diag(temporal_iou(a, b))`` without the N x N cost.

    Raises:
        ValueError: on a bad span or when ``a`` and ``b`` differ in length.
    """
    a = as_spans(a, "a")
    b = as_spans(b, "b")
    if len(a) != len(b):
        raise ValueError(f"a and b must hold as many spans, got {len(a)} and {len(b)}")
    return _iou_from_bounds(a[:, 0], a[:, 1], b[:, 0], b[:, 1])


def temporal_iou_torch(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise temporal IoU of two span tensors, on their device (twin of :func:`temporal_iou`).

    Only shapes are checked: values are not, so that model code does not synchronise with the GPU.

    Args:
        a: float tensor (N, 2) of ``[start, end]``.
        b: float tensor (M, 2), same unit, device and dtype as ``a``.

    Returns:
        tensor (N, M) in [0, 1].

    Raises:
        ValueError: if a shape is not (N, 2).
    """
    for name, t in (("a", a), ("b", b)):
        if t.ndim != 2 or t.shape[1] != 2:
            raise ValueError(f"{name} must have shape (N, 2), got {tuple(t.shape)}")
    return _iou_from_bounds(a[:, 0:1], a[:, 1:2], b[None, :, 0], b[None, :, 1])


def _check_scores(scores, n_spans: int) -> np.ndarray:
    """Scores as a float array (n_spans,) without NaN, or ValueError naming the problem."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape != (n_spans,):
        raise ValueError(f"scores must have shape ({n_spans},) to match spans, got {scores.shape}")
    if np.isnan(scores).any():
        raise ValueError(f"scores[{int(np.flatnonzero(np.isnan(scores))[0])}] is NaN")
    return scores


def nms(spans, scores, iou_threshold: float, max_keep: int | None = None) -> np.ndarray:
    """Greedy temporal non-maximum suppression.

    Visits spans from the highest score down (ties: lower index first) and drops every span whose
    IoU with an already kept span is greater than ``iou_threshold`` (2D-TAN's rule: IoU equal to
    the threshold survives).

    Args:
        spans: spans (N, 2).
        scores: float array (N,), higher is better; -inf is allowed, NaN is not.
        iou_threshold: in [0, 1]; 1 suppresses nothing, 0 drops every span that overlaps a kept one.
        max_keep: stop after this many kept spans (>= 0); None keeps all survivors.

    Returns:
        int64 array (K,) of indices into ``spans``, in descending score order; every pair of kept
        spans has IoU <= ``iou_threshold``.

    Raises:
        ValueError: on bad spans, scores of the wrong shape or with NaN, a threshold outside [0, 1]
            or a negative ``max_keep``.
    """
    spans = as_spans(spans)
    scores = _check_scores(scores, len(spans))
    if not (isinstance(iou_threshold, numbers.Real) and 0.0 <= iou_threshold <= 1.0):
        raise ValueError(f"iou_threshold must be a number in [0, 1], got {iou_threshold!r}")
    if max_keep is not None and not (isinstance(max_keep, numbers.Integral) and max_keep >= 0):
        raise ValueError(f"max_keep must be None or an integer >= 0, got {max_keep!r}")
    limit = len(spans) if max_keep is None else min(int(max_keep), len(spans))
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size and len(keep) < limit:
        best, rest = order[0], order[1:]
        keep.append(int(best))
        ious = _iou_from_bounds(spans[best, 0], spans[best, 1], spans[rest, 0], spans[rest, 1])
        order = rest[ious <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def _check_clip_grid(n_clips, duration) -> np.ndarray:
    """Validate the clip grid; return ``duration`` as a float array (scalar or broadcastable)."""
    if isinstance(n_clips, bool) or not isinstance(n_clips, numbers.Integral) or n_clips <= 0:
        raise ValueError(f"n_clips must be a positive integer, got {n_clips!r}")
    duration = np.asarray(duration, dtype=np.float64)
    bad = ~(np.isfinite(duration) & (duration > 0))
    if bad.any():
        raise ValueError(
            f"duration must be a positive finite number of seconds, got {duration[bad].flat[0]!r}"
        )
    return duration


def clip_span_to_seconds(i, j, n_clips: int, duration) -> np.ndarray:
    """Seconds covered by the proposal spanning clips ``i..j`` inclusive.

    The video is cut into ``n_clips`` equal clips (the 2D-TAN grid), so proposal (i, j) covers
    ``[i * duration / n_clips, (j + 1) * duration / n_clips]``.

    Args:
        i: start clip index, int or int array (P,), ``0 <= i <= j``.
        j: end clip index (inclusive), same shape as ``i``, ``j < n_clips``.
        n_clips: clips per video (the map size N), > 0.
        duration: video length in seconds, float or array broadcastable with ``i``.

    Returns:
        float64 array (..., 2): ``[start_s, end_s]`` for each (i, j); shape (2,) for scalars.

    Raises:
        ValueError: for n_clips <= 0, a non-positive duration, or indices outside
            ``0 <= i <= j < N``.
    """
    duration = _check_clip_grid(n_clips, duration)
    i = np.asarray(i)
    j = np.asarray(j)
    for name, idx in (("i", i), ("j", j)):
        if not np.issubdtype(idx.dtype, np.integer):
            raise ValueError(f"clip index {name} must be integer, got dtype {idx.dtype}")
    i, j = np.broadcast_arrays(i, j)
    bad = (i < 0) | (j < i) | (j >= n_clips)
    if bad.any():
        at = np.argwhere(bad)[0] if bad.ndim else ()
        raise ValueError(
            f"clip indices (i, j) = ({i[tuple(at)]}, {j[tuple(at)]}) must satisfy "
            f"0 <= i <= j < n_clips = {n_clips}"
        )
    clip_s = duration / n_clips
    return np.stack([i * clip_s, (j + 1) * clip_s], axis=-1)


def seconds_to_clip_index(start, end, n_clips: int, duration) -> tuple[np.ndarray, np.ndarray]:
    """Nearest clip-grid cell (i, j) of a window in seconds: the inverse of clip_span_to_seconds.

    Boundaries snap to the nearest clip boundary (halves round up) and are clamped to the video.
    A window shorter than half a clip that would snap to ``j < i`` becomes the single clip holding
    its midpoint. The cell is on the dense N x N grid; whether it is a proposal of a sparse map is
    for :mod:`moment_search.geometry.proposals` to say.

    Args:
        start: window start in seconds, float or array (P,).
        end: window end in seconds, same shape as ``start``, ``end >= start``.
        n_clips: clips per video (the map size N), > 0.
        duration: video length in seconds, float or array broadcastable with ``start``.

    Returns:
        ``(i, j)``: two int64 arrays shaped like ``start``, with ``0 <= i <= j < n_clips``.

    Raises:
        ValueError: for n_clips <= 0, a non-positive duration, a NaN/infinite time or end < start.
    """
    duration = _check_clip_grid(n_clips, duration)
    start, end = np.broadcast_arrays(np.asarray(start, np.float64), np.asarray(end, np.float64))
    as_spans(np.stack([start.ravel(), end.ravel()], axis=-1), "window [start, end]")
    scale = n_clips / duration
    i = np.clip(np.floor(start * scale + 0.5), 0, n_clips - 1).astype(np.int64)
    j = np.clip(np.floor(end * scale + 0.5) - 1, 0, n_clips - 1).astype(np.int64)
    mid = np.clip(np.floor((start + end) / 2 * scale), 0, n_clips - 1).astype(np.int64)
    too_short = j < i
    return np.where(too_short, mid, i), np.where(too_short, mid, j)


def soft_iou_labels(iou, o_min: float, o_max: float):
    """2D-TAN's scaled IoU training target: ``(iou - o_min) / (o_max - o_min)`` clipped to [0, 1].

    FVMR (Eq. 8) prints ``(o_i - o_min) / (o_max - o_i)``, which is garbled (it is not even
    monotone in o_i); it cites 2D-TAN, whose paper and ``bce_rescale_loss`` use
    ``(o - o_min) / (o_max - o_min)`` with values below 0 set to 0 and above 1 set to 1, which is
    what this implements. (FVMR also prints "o_max and o_min are set to 0.3 and 0.7": read it as
    o_min = 0.3, o_max = 0.7, 2D-TAN's TACoS setting.)

    Args:
        iou: IoU values in [0, 1], numpy array or torch tensor of any shape.
        o_min: IoU at and below which the label is 0.
        o_max: IoU at and above which the label is 1; must be > o_min.

    Returns:
        labels of the same type, shape and (floating) dtype as ``iou``, in [0, 1].

    Raises:
        ValueError: if ``o_max <= o_min``.
    """
    if not o_max > o_min:
        raise ValueError(f"soft IoU labels need o_min < o_max, got o_min={o_min}, o_max={o_max}")
    if is_tensor(iou):
        return ((iou - o_min) / (o_max - o_min)).clamp(0.0, 1.0)
    iou = np.asarray(iou)
    if not np.issubdtype(iou.dtype, np.floating):
        iou = iou.astype(np.float64)
    return np.clip((iou - o_min) / (o_max - o_min), 0.0, 1.0).astype(iou.dtype, copy=False)
