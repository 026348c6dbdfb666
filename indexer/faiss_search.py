"""Searching a FAISS index: the k best inner products, optionally among allowed ids only (id
selectors sized to the allowed set; small allowed sets are searched exactly). See faiss_index for
the index kinds and the search defaults."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .faiss_core import _as_matrix, _is_gpu, _is_refine, _unwrap, import_faiss, index_kind
from .index_choice import HNSW_FILTER_MIN_FRACTION, IndexSpec


def _merge_ranges(ranges: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """``(first_id, count)`` ranges as sorted, disjoint, half-open ``[lo, hi)`` intervals."""
    spans = []
    for first, count in ranges:
        first, count = int(first), int(count)
        if first < 0 or count < 0:
            raise ValueError(f"bad id range (first_id={first}, count={count}): both must be >= 0")
        if count:
            spans.append((first, first + count))
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(spans):
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def _or_tree(faiss, selectors: list):
    """A balanced IDSelectorOr tree over ``selectors`` (children kept alive by the parent)."""
    if len(selectors) == 1:
        return selectors[0]
    middle = len(selectors) // 2
    left, right = _or_tree(faiss, selectors[:middle]), _or_tree(faiss, selectors[middle:])
    node = faiss.IDSelectorOr(left, right)
    node.referenced_objects = [left, right]
    return node


def make_id_selector(ranges: Sequence[tuple[int, int]]):
    """The cheapest FAISS IDSelector accepting the ids of ``(first_id, count)`` ranges.

    One range: IDSelectorRange (two comparisons). Up to 4 ranges: an OR tree of ranges. More: a
    bitmap over ``[0, max_id]`` (one bit per id, O(1) test) when it costs at most 8 bytes per
    allowed id, else an IDSelectorBatch (bloom filter + hash set, O(allowed) to build).

    Returns:
        (selector, n_allowed): the selector and how many ids it accepts.

    Raises:
        ValueError: a negative first id or count.
    """
    faiss = import_faiss()
    merged = _merge_ranges(ranges)
    allowed = sum(hi - lo for lo, hi in merged)
    if not merged:
        return faiss.IDSelectorRange(0, 0), 0
    if len(merged) <= 4:
        return _or_tree(faiss, [faiss.IDSelectorRange(lo, hi) for lo, hi in merged]), allowed
    top = merged[-1][1]
    if top <= 64 * allowed:
        bits = np.zeros(top, dtype=bool)
        for lo, hi in merged:
            bits[lo:hi] = True
        return faiss.IDSelectorBitmap(np.packbits(bits, bitorder="little")), allowed
    ids = np.concatenate([np.arange(lo, hi, dtype=np.int64) for lo, hi in merged])
    return faiss.IDSelectorBatch(ids), allowed


def _search_settings(index, spec, nprobe, ef_search, k_factor) -> dict:
    """nprobe / ef_search / k_factor: explicit argument, else spec params, else the index's."""
    faiss = import_faiss()
    params = spec.params if isinstance(spec, IndexSpec) else dict(spec or {})
    _, core = _unwrap(index)
    kind = index_kind(index)
    settings = {}
    if kind in ("ivf", "ivfpq"):
        stored = faiss.extract_index_ivf(index).nprobe if not _is_gpu(index) else core.nprobe
        settings["nprobe"] = int(nprobe or params.get("nprobe") or stored)
    if kind == "hnsw":
        settings["ef_search"] = int(ef_search or params.get("ef_search") or core.hnsw.efSearch)
    if _is_refine(core):
        settings["k_factor"] = float(k_factor or params.get("k_factor") or core.k_factor)
    return settings


def _ivf_params(faiss, settings: dict, nlist: int, sel, allowed: int, ntotal: int):
    """SearchParametersIVF; a small allowed set is scanned in every list (exact within it)."""
    nprobe = settings["nprobe"]
    if sel is not None and allowed <= ntotal * nprobe / max(nlist, 1):
        nprobe = nlist  # the restriction is cheaper to scan in full than to miss in probing
    params = faiss.SearchParametersIVF(nprobe=min(nprobe, nlist))
    if sel is not None:
        params.sel = sel
    return params


def _search_params(index, settings: dict, sel, allowed: int):
    """The SearchParameters object for this index structure, or None for a plain search."""
    faiss = import_faiss()
    id_map, core = _unwrap(index)
    kind = index_kind(index)
    if kind == "flat":
        return faiss.SearchParameters(sel=sel) if sel is not None else None
    if kind == "hnsw":
        params = faiss.SearchParametersHNSW(efSearch=settings["ef_search"])
        if sel is not None:
            params.sel = sel
        return params
    nlist = faiss.extract_index_ivf(index).nlist
    if not _is_refine(core):
        return _ivf_params(faiss, settings, nlist, sel, allowed, index.ntotal)
    # IndexRefine forwards only base_index_params: translate the user's ids to positions there.
    base_sel = None if sel is None else faiss.IDSelectorTranslated(id_map.id_map, sel)
    base = _ivf_params(faiss, settings, nlist, base_sel, allowed, index.ntotal)
    if base_sel is not None:
        base.referenced_objects = [sel]
    params = faiss.IndexRefineSearchParameters(k_factor=settings["k_factor"])
    params.base_index_params = base
    return params


def _exact_hnsw_subset(index, queries: np.ndarray, k: int, sel):
    """Brute force over HNSW's stored vectors, restricted to ``sel``: (scores, ids)."""
    faiss = import_faiss()
    id_map, core = _unwrap(index)
    translated = faiss.IDSelectorTranslated(id_map.id_map, sel)
    storage = faiss.downcast_index(core.storage)
    scores, positions = storage.search(queries, k, params=faiss.SearchParameters(sel=translated))
    lookup = faiss.rev_swig_ptr(id_map.id_map.data(), id_map.id_map.size())
    ids = np.where(positions >= 0, lookup[np.maximum(positions, 0)], -1)
    return scores, ids.astype(np.int64)


# The most results FAISS's GPU k-selection returns per query (GPU_MAX_SELECTION_K of its CUDA
# builds; larger k raises there). A GPU search asks for at most this many and pads the rest.
GPU_MAX_K = 2048


def pad_results(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(B, k) results from fewer columns: the missing ones as FAISS marks absent hits (id -1,
    score -inf)."""
    missing = k - scores.shape[1]
    if missing <= 0:
        return scores, ids
    rows = scores.shape[0]
    return (np.concatenate([scores, np.full((rows, missing), -np.inf, scores.dtype)], axis=1),
            np.concatenate([ids, np.full((rows, missing), -1, ids.dtype)], axis=1))


def _search_gpu(index, queries: np.ndarray, k: int, settings: dict):
    """A GPU index search: IVF gets nprobe through SearchParametersIVF, flat needs nothing; k
    above :data:`GPU_MAX_K` gets the best GPU_MAX_K, padded to k."""
    asked = min(k, GPU_MAX_K)
    if "nprobe" not in settings:
        return pad_results(*index.search(queries, asked), k)
    params = import_faiss().SearchParametersIVF(nprobe=settings["nprobe"])
    return pad_results(*index.search(queries, asked, params=params), k)


def search(index, queries, k: int, spec: IndexSpec | Mapping[str, Any] | None = None,
           id_selector=None, *, nprobe: int | None = None, ef_search: int | None = None,
           k_factor: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` highest inner products of each query, optionally among allowed ids only.

    Args:
        index: an index from :func:`new_index` / :func:`read_index` (or on a GPU).
        queries: (B, D) float32 query embeddings.
        k: results per query (>= 1).
        spec: an IndexSpec or its params dict, giving nprobe / ef_search / k_factor; None uses
            the values stored in the index. Keyword overrides win over both.
        id_selector: None (whole index), a list of ``(first_id, count)`` id ranges, or a ready
            FAISS IDSelector. Ranges are searched exactly when the allowed set is smaller than
            what the ANN would scan (IVF: all lists probed; HNSW below 10 % of the index: brute
            force over its stored vectors), so restricting to a few videos loses no recall.

    Returns:
        scores (B, k) float32, ids (B, k) int64, best first; ids are -1 (scores -inf or
        -3.4e38) where fewer than k vectors are allowed / present, and past the first
        :data:`GPU_MAX_K` on a GPU index.

    Raises:
        ValueError: wrong query shape, k < 1, or a selector on a GPU index.
    """
    queries = _as_matrix(queries, index.d, "queries")
    if int(k) < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    settings = _search_settings(index, spec, nprobe, ef_search, k_factor)
    sel, allowed = None, index.ntotal
    if id_selector is not None:
        if _is_gpu(index):
            raise ValueError("id-restricted search needs a CPU index: call to_cpu(index) first")
        if hasattr(id_selector, "is_member"):
            sel = id_selector
        else:
            sel, allowed = make_id_selector(id_selector)
    if (sel is not None and index_kind(index) == "hnsw"
            and allowed < HNSW_FILTER_MIN_FRACTION * index.ntotal):
        return _exact_hnsw_subset(index, queries, int(k), sel)
    if _is_gpu(index):
        return _search_gpu(index, queries, int(k), settings)
    return index.search(queries, int(k), params=_search_params(index, settings, sel, allowed))

