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

Defaults (``index_choice``): nlist is the power of two nearest 4 sqrt(n). On the clustered
synthetic embeddings of ``benchmarks/corpus_scale.py`` (D = 128, 10^4 to 10^6 vectors) nprobe = 16
already gave recall@100 >= 0.968 against exact search at every size (8 fell to 0.87 at 10^4), but
the real search vectors (264 wide, with the corpus terms) need more: IVF-Flat over 1.36 M of them
at nlist 4096 measured recall@100 0.86 / 0.92 / 0.96 / 0.99 at nprobe 32 / 64 / 128 / 256. So
nprobe = min(nlist, max(128, nlist / 128)), and a build raises it further until its recall check
passes (``recall_check``). HNSW (M = 32, efConstruction = 80) needed efSearch 256..1024 for 0.95
on the synthetic set (512 gave only 0.94 at 3 * 10^5), so efSearch defaults to 1024. HNSW also
depends on insertion order: adding video-contiguous batches cut recall@100 at efSearch 512 from
0.95 to 0.69..0.79 at 10^5; add it in one call (FAISS shuffles within a call) or in shuffled
order.

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
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..atomic import atomic_write
from ..errors import DataError, InputError
from .faiss_core import (  # re-exported: callers import them from here
    _as_ids,
    _as_matrix,
    _is_gpu,
    _is_refine,
    _unwrap,
    import_faiss,
    index_kind,
)
from .faiss_placement import Placement, resolve_placement, to_cpu, to_device  # re-exported
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
        raise InputError(f"PQ m={spec.params['m']} does not divide the embedding width {dim}")
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
# Files
# ---------------------------------------------------------------------------------------------


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
    raise DataError(f"{path} is not a readable FAISS index (corrupt or truncated?): "
                    f"{str(error).splitlines()[0][:200]}") from error
