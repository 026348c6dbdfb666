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
here): ``auto`` keeps flat while it answers in ~1 ms (``FLAT_MAX_FLOATS``), else IVF, whose
nprobe a build raises until recall@100 and @200 against exact search reach 0.98 on real
sentences (``recall_check``; the figures are published with the index params). On the real
264-wide inner products HNSW reached only recall@100 0.41 at efSearch 1024, so auto never picks it.
``faiss`` is imported lazily; a missing install raises ImportError naming
``pip install faiss-cpu``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_write
from .faiss_core import (  # re-exported: callers import them from here
    _as_ids,
    _as_matrix,
    _is_gpu,
    _is_refine,
    _unwrap,
    import_faiss,
    index_kind,
)
from .faiss_search import make_id_selector, search  # re-exported
from .index_choice import (  # re-exported: callers import them from here
    FLAT_MAX_FLOATS,
    HNSW_EF_CONSTRUCTION,
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
    flat_is_fast,
    format_bytes,
    nlist_for,
    parse_bytes,
    pq_m_for,
    train_sample_size,
)

__all__ = [
    "FLAT_MAX_FLOATS",
    "KINDS",
    "IndexSpec",
    "Placement",
    "add",
    "choose_index",
    "default_ef_search",
    "default_nprobe",
    "estimated_bytes",
    "fit_spec_to_data",
    "flat_is_fast",
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
