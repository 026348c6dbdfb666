"""The FAISS layer of the indexer: build, search, edit, place and save an IP index.

Every proposal embedding (float32, width D) lives in one inner-product index under its proposal id
(int64, the one id space of the project), so every index kind here accepts explicit ids:

    kind    FAISS structure                              remove  memory / vector (D = 128)
    flat    IndexIDMap2(IndexFlatIP)                     yes     4D + 48         (560 B)
    ivf     IndexIVFFlat (ids stored natively)           yes     4D + 8          (520 B)
    ivfpq   IndexIVFPQ, m = D/4 codes of 8 bits          yes     D/4 + 8         (40 B)
            or IndexIDMap2(IndexRefineFlat(IndexIVFPQ))  no      D/4 + 4D + 56   (600 B)
    hnsw    IndexIDMap2(IndexHNSWFlat)                   no      4D + 8M + 64    (832 B, M=32)

HNSW and the refined IVF-PQ cannot delete vectors in FAISS: :func:`remove` raises
NotImplementedError for them and the caller tombstones (see :func:`supports_remove`).

Defaults come from ``benchmarks/corpus_scale.py`` (clustered synthetic embeddings, D = 128, 10^4 to
10^6 vectors, nlist = 4 sqrt(n)): nprobe = 16 already gave recall@100 >= 0.968 against exact search
at every size (8 fell to 0.87 at 10^4), so nprobe = max(16, nlist / 128) keeps a margin (32 lists at
10^6: 0.997). HNSW (M = 32, efConstruction = 80) needed efSearch 256..1024 for 0.95 (512 gave only
0.94 at 3 * 10^5), so efSearch defaults to 1024. HNSW also depends on insertion order: adding
video-contiguous batches cut recall@100 at efSearch 512 from 0.95 to 0.69..0.79 at 10^5; add it in
one call (FAISS shuffles within a call) or in shuffled order.

Builds are seeded (k-means seed 1234): two builds on the same data give the same bytes, also with
several threads for the IVF kinds; for HNSW this is guaranteed with ``add(..., threads=1)`` only.

Choosing the kind and its parameters lives in ``index_choice`` (pure arithmetic, re-exported
here). ``faiss`` is imported lazily; a missing install raises ImportError naming
``pip install faiss-cpu``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_write
from .index_choice import (  # re-exported: callers import them from here
    FLAT_MAX_VECTORS,
    HNSW_EF_CONSTRUCTION,
    HNSW_FILTER_MIN_FRACTION,
    KINDS,
    MIN_POINTS_PER_CENTROID,
    REFINE_K_FACTOR,
    SEED,
    IndexSpec,
    choose_index,
    default_ef_search,
    default_nprobe,
    estimated_bytes,
    fit_spec_to_data,
    format_bytes,
    nlist_for,
    parse_bytes,
    pq_m_for,
    train_sample_size,
)

__all__ = [
    "FLAT_MAX_VECTORS",
    "KINDS",
    "IndexSpec",
    "Placement",
    "add",
    "choose_index",
    "default_ef_search",
    "default_nprobe",
    "estimated_bytes",
    "fit_spec_to_data",
    "format_bytes",
    "import_faiss",
    "index_kind",
    "make_id_selector",
    "new_index",
    "nlist_for",
    "omp_threads",
    "pq_m_for",
    "parse_bytes",
    "read_index",
    "reconstruct",
    "remove",
    "resolve_placement",
    "stored_vectors",
    "search",
    "supports_remove",
    "to_cpu",
    "to_device",
    "train",
    "train_sample_size",
    "write_index",
]

logger = logging.getLogger("moment_search")


_GPU_RESOURCES: dict[int, Any] = {}


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


# ---------------------------------------------------------------------------------------------
# Building and editing
# ---------------------------------------------------------------------------------------------


def _factory_string(spec: IndexSpec) -> str:
    p = spec.params
    if spec.kind == "flat":
        return "IDMap2,Flat"
    if spec.kind == "hnsw":
        return f"IDMap2,HNSW{int(p['M'])},Flat"
    if spec.kind == "ivf":
        return f"IVF{int(p['nlist'])},Flat"
    # "np": no polysemous training (minutes of CPU for a code ordering this search never uses)
    pq = f"IVF{int(p['nlist'])},PQ{int(p['m'])}x{int(p.get('nbits', 8))}np"
    return f"IDMap2,{pq},RFlat" if p.get("refine") == "flat" else pq


def new_index(spec: IndexSpec, dim: int):
    """An empty inner-product index for ``spec`` that takes explicit int64 ids.

    Flat and HNSW are wrapped in IndexIDMap2; IVF kinds keep ids in their lists (the refined
    IVF-PQ is wrapped too). Seeds and search defaults (nprobe, efSearch, k_factor) are set, and
    stored in the index, so a saved index searches the same way after :func:`read_index`.

    Raises:
        ValueError: dim < 1, or PQ ``m`` does not divide ``dim``.
    """
    faiss = import_faiss()
    if dim < 1:
        raise ValueError(f"dim must be >= 1, got {dim}")
    if spec.kind == "ivfpq" and dim % int(spec.params["m"]):
        raise ValueError(f"PQ m={spec.params['m']} does not divide the embedding width {dim}")
    index = faiss.index_factory(dim, _factory_string(spec), faiss.METRIC_INNER_PRODUCT)
    _, core = _unwrap(index)
    p = spec.params
    if spec.kind == "hnsw":
        core.hnsw.efConstruction = int(p.get("ef_construction", HNSW_EF_CONSTRUCTION))
        core.hnsw.efSearch = int(p.get("ef_search", default_ef_search()))
    elif spec.kind in ("ivf", "ivfpq"):
        ivf = faiss.downcast_index(faiss.extract_index_ivf(index))
        ivf.cp.seed = SEED
        ivf.nprobe = int(p["nprobe"])
        if spec.kind == "ivfpq":
            ivf.pq.cp.seed = SEED
        if p.get("refine") == "flat":
            core.k_factor = float(p.get("k_factor", REFINE_K_FACTOR))
    return index


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


def train(index, sample) -> None:
    """Train the index's quantizers on ``sample`` (N, D) float32; a no-op for flat and HNSW.

    Raises:
        ValueError: wrong shape, non-finite values, or too few vectors for the lists / codebooks
            (use :func:`fit_spec_to_data` and :func:`train_sample_size`).
    """
    sample = _as_matrix(sample, index.d, "training sample")
    kind = index_kind(index)
    if kind in ("flat", "hnsw"):
        return
    nlist, codebook = _ivf_sizes(index)
    needed = MIN_POINTS_PER_CENTROID * max(nlist, codebook)
    if len(sample) < needed:
        raise ValueError(f"{kind} with nlist={nlist} needs >= {needed} training vectors, got "
                         f"{len(sample)}; shrink it with fit_spec_to_data")
    with _blas_distances():
        index.train(sample)


def _ivf_sizes(index) -> tuple[int, int]:
    """(nlist, PQ centroids per sub-quantizer or 0) of a CPU or GPU IVF index."""
    faiss = import_faiss()
    _, core = _unwrap(index)
    if _is_gpu(index):
        bits = core.getBitsPerCode() if index_kind(index) == "ivfpq" else None
        return int(core.nlist), 2**bits if bits else 0
    ivf = faiss.downcast_index(faiss.extract_index_ivf(index))
    return int(ivf.nlist), int(ivf.pq.ksub) if index_kind(index) == "ivfpq" else 0


@contextlib.contextmanager
def _blas_distances() -> Iterator[None]:
    """Let k-means use BLAS distances at any size.

    FAISS switches to its non-BLAS kernel when n * d < 128,000; for the 256-centroid k-means of
    each 4-dimensional PQ sub-space that path is ~10x slower (PQ training on 20k vectors: 16 s
    instead of 1.3 s on one core).
    """
    faiss = import_faiss()
    before = faiss.cvar.distance_compute_blas_threshold
    faiss.cvar.distance_compute_blas_threshold = 20
    try:
        yield
    finally:
        faiss.cvar.distance_compute_blas_threshold = before


@contextlib.contextmanager
def omp_threads(threads: int | None) -> Iterator[None]:
    """Temporarily run FAISS with ``threads`` OpenMP threads (None: leave as is)."""
    faiss = import_faiss()
    if threads is None:
        yield
        return
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(int(threads))
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def add(index, vectors, ids, threads: int | None = None) -> None:
    """Add ``vectors`` (N, D) float32 under ``ids`` (N,) int64, each id new to the index.

    Args:
        threads: OpenMP threads for this call (None: FAISS's setting). HNSW graphs are byte-for-
            byte reproducible only when built with ``threads=1``.

    Raises:
        ValueError: shapes disagree, non-finite vectors, negative or repeated ids, or the index
            is untrained.
    """
    vectors = _as_matrix(vectors, index.d, "vectors")
    ids = _as_ids(ids)
    if len(ids) != len(vectors):
        raise ValueError(f"got {len(vectors)} vectors but {len(ids)} ids")
    if len(np.unique(ids)) != len(ids):
        raise ValueError("ids repeat within the batch; every proposal id must be unique")
    if not index.is_trained:
        raise ValueError("the index is not trained yet: call train(index, sample) first")
    with omp_threads(threads):
        index.add_with_ids(vectors, ids)


def stored_vectors(index, first_id: int, count: int) -> np.ndarray | None:
    """The exact stored vectors of ids ``first_id .. first_id + count - 1`` (count, D), or None
    where the index keeps no exact copy that it returns by id (IVF kinds, GPU copies)."""
    if _is_gpu(index):
        return None
    faiss = import_faiss()
    id_map, core = _unwrap(index)
    if id_map is None or not isinstance(core, (faiss.IndexFlat, faiss.IndexHNSWFlat)):
        return None
    return id_map.reconstruct_batch(np.arange(first_id, first_id + count, dtype=np.int64))


def reconstruct(index, ids) -> tuple[np.ndarray, bool]:
    """The stored vectors of ``ids`` (N, D) and whether they are exact (False: IVF-PQ decodes
    its codes, an approximation). IVF kinds get a hash-table id map first (in memory only).

    Raises:
        ValueError: a GPU index (copy it to the CPU first).
    """
    if _is_gpu(index):
        raise ValueError("reconstruct needs a CPU index: call to_cpu(index) first")
    faiss = import_faiss()
    ids = _as_ids(ids)
    id_map, core = _unwrap(index)
    if id_map is not None:  # flat, HNSW, refined IVF-PQ (its refine index keeps exact vectors)
        return id_map.reconstruct_batch(ids), True
    ivf = faiss.extract_index_ivf(index)
    if ivf.direct_map.type == faiss.DirectMap.NoMap:
        ivf.set_direct_map_type(faiss.DirectMap.Hashtable)
    vectors = np.stack([ivf.reconstruct(int(i)) for i in ids]) if len(ids) else \
        np.zeros((0, index.d), np.float32)
    return vectors, index_kind(index) == "ivf"


def supports_remove(index) -> bool:
    """False for HNSW and the refined IVF-PQ, which FAISS cannot delete from (tombstone them)."""
    _, core = _unwrap(index)
    return index_kind(index) != "hnsw" and not _is_refine(core)


def remove(index, ids) -> int:
    """Delete ``ids`` from the index; returns how many were present and removed.

    Raises:
        NotImplementedError: HNSW or refined IVF-PQ (FAISS cannot delete: the caller tombstones
            the ids and filters them at search time).
        ValueError: ids not a 1-D non-negative integer array.
    """
    faiss = import_faiss()
    ids = _as_ids(ids)
    if not supports_remove(index):
        raise NotImplementedError(
            f"FAISS cannot remove vectors from a {index_kind(index)} index "
            f"({type(_unwrap(index)[1]).__name__}); tombstone the ids and filter them at search "
            f"time, or rebuild the index")
    if _is_gpu(index):
        raise ValueError("remove needs a CPU index: call to_cpu(index) first")
    return int(index.remove_ids(faiss.IDSelectorBatch(ids)))


# ---------------------------------------------------------------------------------------------
# Searching
# ---------------------------------------------------------------------------------------------


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


def _search_gpu(index, queries: np.ndarray, k: int, settings: dict):
    """A GPU index search: IVF gets nprobe through SearchParametersIVF, flat needs nothing."""
    if "nprobe" not in settings:
        return index.search(queries, k)
    params = import_faiss().SearchParametersIVF(nprobe=settings["nprobe"])
    return index.search(queries, k, params=params)


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
        -3.4e38) where fewer than k vectors are allowed / present.

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


# ---------------------------------------------------------------------------------------------
# Placement (CPU / GPU) and files
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Placement:
    """Where FAISS runs.

    Attributes:
        device: "cpu" or "cuda".
        gpu_id: the CUDA device number when ``device == "cuda"``, else None.
        reason: why (printed / logged once).
    """

    device: str
    gpu_id: int | None = None
    reason: str = ""


def _gpu_count(faiss) -> int:
    if not hasattr(faiss, "StandardGpuResources"):
        return 0
    return int(faiss.get_num_gpus())


def resolve_placement(device: str = "auto") -> Placement:
    """Resolve ``"auto" | "cpu" | "cuda" | "cuda:N"`` once, logging one line when on the CPU.

    The GPU is used only when asked for (or auto) and the FAISS build has GPU support with a
    visible device; otherwise the CPU, with a warning when a GPU was asked for explicitly.

    Raises:
        ValueError: an unrecognised device string.
    """
    match = re.fullmatch(r"(auto|cpu|cuda)(?::(\d+))?", str(device).strip().lower())
    if match is None or (match.group(2) is not None and match.group(1) != "cuda"):
        raise ValueError(f"bad device {device!r}; expected 'auto', 'cpu' or 'cuda:N'")
    wanted, number = match.group(1), int(match.group(2) or 0)
    if wanted == "cpu":
        return Placement("cpu", None, "FAISS on the CPU as requested")
    count = _gpu_count(import_faiss())
    if count > number:
        return Placement("cuda", number, f"FAISS on GPU {number} of {count}")
    why = (f"FAISS sees {count} GPU(s), so cuda:{number} is not available"
           if hasattr(import_faiss(), "StandardGpuResources")
           else "this FAISS build has no GPU support (pip install faiss-gpu-cu12)")
    placement = Placement("cpu", None, f"FAISS on the CPU: {why}")
    (logger.warning if wanted == "cuda" else logger.info)(placement.reason)
    return placement


def _gpu_resources(faiss, gpu_id: int):
    """One StandardGpuResources per device, kept for the process lifetime."""
    if gpu_id not in _GPU_RESOURCES:
        _GPU_RESOURCES[gpu_id] = faiss.StandardGpuResources()
    return _GPU_RESOURCES[gpu_id]


def to_device(index, placement: Placement):
    """The index on ``placement``: copied to the GPU for flat / IVF / plain IVF-PQ.

    HNSW and the refined IVF-PQ have no GPU version and stay on the CPU (one log line).
    """
    if placement.device != "cuda":
        return to_cpu(index)
    _, core = _unwrap(index)
    if index_kind(index) == "hnsw" or _is_refine(core):
        logger.info("FAISS %s index stays on the CPU (no GPU version)", type(core).__name__)
        return index
    if _is_gpu(index):
        return index
    faiss = import_faiss()
    options = faiss.GpuClonerOptions()
    if index_kind(index) == "ivfpq":
        # Lookup tables of m x 256 float32 must fit 48 KiB of shared memory; else use float16.
        pq = faiss.downcast_index(faiss.extract_index_ivf(index)).pq
        options.useFloat16 = pq.M * pq.ksub * 4 > 48 * 1024
    return faiss.index_cpu_to_gpu(_gpu_resources(faiss, placement.gpu_id), placement.gpu_id,
                                  index, options)


def to_cpu(index):
    """A CPU copy of a GPU index; a CPU index is returned as is."""
    if not _is_gpu(index):
        return index
    return import_faiss().index_gpu_to_cpu(index)


def write_index(index, path: str | os.PathLike) -> None:
    """Save the index in CPU format to ``path`` atomically (temp file + rename).

    Raises:
        OSError: the directory is missing or not writable (no partial file is left).
    """
    faiss = import_faiss()
    cpu_index = to_cpu(index)
    atomic_write(path, lambda temp: faiss.write_index(cpu_index, temp))


def read_index(path: str | os.PathLike, mmap: bool = False):
    """Load an index written by :func:`write_index`.

    Args:
        mmap: map the vectors / inverted lists from the file instead of reading them into RAM
            (for searching: memory-mapped IVF lists are read-only).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not a readable FAISS index (names the path).
    """
    faiss = import_faiss()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no FAISS index at {path}")
    # IVF lists map with IO_FLAG_MMAP; flat codes (flat, HNSW storage) need IO_FLAG_MMAP_IFC,
    # which IVF refuses: try both, then lists only.
    attempts = ([faiss.IO_FLAG_MMAP | faiss.IO_FLAG_MMAP_IFC, faiss.IO_FLAG_MMAP] if mmap
                else [0])
    for flags in attempts:
        try:
            return faiss.read_index(str(path), flags)
        except RuntimeError as e:
            error = e
    raise ValueError(f"{path} is not a readable FAISS index (corrupt or truncated?): "
                     f"{str(error).splitlines()[0][:200]}") from error
