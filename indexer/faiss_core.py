"""What every FAISS module of the indexer shares: the lazy import, input checks, and how to see
through the IndexIDMap2 wrapper to the index kind."""

from __future__ import annotations

import numpy as np


def import_faiss():
    """The ``faiss`` module.

    Raises:
        ImportError: FAISS is not installed (names the package to install).
    """
    try:
        import faiss
    except ImportError as e:
        raise ImportError("the indexer needs FAISS: pip install faiss-cpu "
                          "(or the [gpu] extra for faiss-gpu-cu12)") from e
    return faiss


def _as_matrix(x, dim: int, name: str) -> np.ndarray:
    """``x`` as a C-contiguous float32 (N, dim) array of finite values."""
    arr = np.ascontiguousarray(x, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise ValueError(f"{name} must have shape (N, {dim}), got {arr.shape}")
    if not np.isfinite(arr).all():
        row = int(np.flatnonzero(~np.isfinite(arr).all(axis=1))[0])
        raise ValueError(f"{name}[{row}] has a NaN or infinite value")
    return arr


def _as_ids(ids, name: str = "ids") -> np.ndarray:
    """``ids`` as a C-contiguous int64 (N,) array of non-negative values."""
    arr = np.ascontiguousarray(ids)
    if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"{name} must be a 1-D integer array, got shape {arr.shape} "
                         f"dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    if arr.size and arr.min() < 0:
        raise ValueError(f"{name} must be >= 0 (-1 means 'no result'), got {int(arr.min())}")
    return arr


def _unwrap(index):
    """``(id_map, core)``: the IndexIDMap2 wrapper (or None) and the index inside it."""
    faiss = import_faiss()
    index = faiss.downcast_index(index)
    if isinstance(index, (faiss.IndexIDMap2, faiss.IndexIDMap)):
        return index, faiss.downcast_index(index.index)
    return None, index


def _is_refine(core) -> bool:
    faiss = import_faiss()
    return isinstance(core, faiss.IndexRefine)


def _is_gpu(index) -> bool:
    _, core = _unwrap(index)
    return type(core).__name__.startswith("Gpu")


def index_kind(index) -> str:
    """"flat" | "ivf" | "ivfpq" | "hnsw" for an index made by :func:`new_index` (CPU or GPU).

    Raises:
        ValueError: an index of another structure.
    """
    _, core = _unwrap(index)
    name = type(core).__name__
    if _is_refine(core):
        name = type(import_faiss().downcast_index(core.base_index)).__name__
    for prefix, kind in (("IndexFlat", "flat"), ("GpuIndexFlat", "flat"),
                         ("IndexIVFFlat", "ivf"), ("GpuIndexIVFFlat", "ivf"),
                         ("IndexIVFPQ", "ivfpq"), ("GpuIndexIVFPQ", "ivfpq"),
                         ("IndexHNSW", "hnsw")):
        if name.startswith(prefix):
            return kind
    raise ValueError(f"unsupported FAISS index structure {name}; build it with new_index")

