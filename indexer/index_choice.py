"""Choosing a FAISS index kind and its parameters for a corpus size and a memory budget.

The measured defaults and the memory model are described in ``faiss_index`` (the module that
builds and searches the index); this one is pure arithmetic and imports no FAISS.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import InputError

KINDS = ("flat", "ivf", "ivfpq", "hnsw")
# auto keeps exact flat search while vectors x width <= this: then one query (k = 200) costs
# <= ~1 ms of FAISS on one thread. Measured on the real 1,000-video index (width 264, Charades-STA
# train sentences as queries, faiss 1.15 AVX512, AMD EPYC, 32 MiB L3), p50 per query: 8k vectors
# 0.14 ms, 16k 0.35, 24k 0.70, 32k 0.98-1.00, 40k 1.35, 68k 6.3, 136k 4.9-8.6 (the load on the
# shared cores varies; the jump past ~32 MiB of vectors is the L3). At 136k IVF-Flat (nlist 2048)
# answers in 0.41 ms at nprobe 128 (recall@100 0.96) and 0.81 ms at nprobe 256 (0.99); HNSW (M 32)
# reaches only recall@100 0.41 at efSearch 1024 and 0.50 at 4096 (9.4 ms) on these inner
# products, so auto never picks it. Reproduce: python -m moment_search.benchmarks.index_latency.
FLAT_MAX_FLOATS = 8_000_000
SEED = 1234  # k-means seed of the coarse quantizer and of the PQ codebooks
MIN_POINTS_PER_CENTROID = 39  # FAISS warns below this many training vectors per centroid
TRAIN_POINTS_PER_CENTROID = 64  # sample size per centroid: k-means quality saturates near here
PQ_CENTROIDS = 256  # 8-bit codes
MIN_NLIST = 16  # below this an inverted file saves nothing over brute force
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
REFINE_K_FACTOR = 4  # the refined IVF-PQ re-scores 4k PQ candidates exactly
HNSW_FILTER_MIN_FRACTION = 0.1  # below this share of allowed ids, filtered HNSW loses recall
ID_MAP2_BYTES = 48  # IndexIDMap2: id_map (8) + rev_map hash node and bucket (~40)
IVF_ID_BYTES = 8  # one int64 id per inverted-list entry
# nprobe = clamp(nlist / NPROBE_DIVISOR, NPROBE_MIN, nlist), measured (see faiss_index's module
# doc): the divisor on corpus_scale's synthetic embeddings, the minimum on real search vectors
NPROBE_DIVISOR = 128
# Raised from 16: with the corpus terms in the search vectors (264 wide), IVF-Flat over 1.36 M
# real fused vectors (the shipped model's, replicated) and nlist 4096 measured recall@100
# 0.86 / 0.92 / 0.96 / 0.99 at nprobe 32 / 64 / 128 / 256 (0.9 / 1.8 / 3.9 / 7.4 ms per query).
NPROBE_MIN = 128
EF_SEARCH_MIN = 1024  # measured: recall@100 >= 0.97 from 10^4 to 10^6 vectors with M=32

_UNITS = {"": 1, "B": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}



@dataclass
class IndexSpec:
    """What to build and how to search it.

    Attributes:
        kind: "flat" | "ivf" | "ivfpq" | "hnsw".
        params: kind-specific settings: ivf ``nlist``, ``nprobe``; ivfpq also ``m``, ``nbits``,
            ``refine`` ("flat" or None), ``k_factor``; hnsw ``M``, ``ef_construction``,
            ``ef_search``. JSON-serialisable.
        reason: one sentence saying what was chosen and why (printed by the CLI).
    """

    kind: str
    params: dict = field(default_factory=dict)
    reason: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InputError(f"unknown index kind {self.kind!r}; expected one of {KINDS}")

    def to_dict(self) -> dict:
        """A JSON-ready ``{"kind", "params", "reason"}`` dict."""
        return {"kind": self.kind, "params": dict(self.params), "reason": self.reason}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IndexSpec:
        """The inverse of :meth:`to_dict`."""
        return cls(str(data["kind"]), dict(data.get("params", {})), str(data.get("reason", "")))


def parse_bytes(text: str | int | None) -> int | None:
    """A memory size in bytes from ``"4G"``, ``"512M"``, ``"1.5GiB"``, ``"800k"`` or an int.

    Units are binary (K = 1024 bytes, M = 2^20, G = 2^30, T = 2^40); "B", "iB" suffixes and case
    are ignored. None passes through (no budget).

    Raises:
        ValueError: naming the string when it is not a positive size.
    """
    if text is None or (isinstance(text, int) and not isinstance(text, bool)):
        value = text
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([KMGT]?)(?:I?B)?\s*", str(text).upper())
        if match is None:
            raise InputError(f"bad memory size {text!r}; expected a number with an optional unit "
                             f"K, M, G or T (e.g. '4G', '512M')")
        value = int(float(match.group(1)) * _UNITS[match.group(2)])
    if value is not None and value <= 0:
        raise InputError(f"bad memory size {text!r}: must be positive")
    return value


def format_bytes(n_bytes: float) -> str:
    """``1536 -> "1.5 KiB"``: a size for messages and reports."""
    value = float(n_bytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def nlist_for(n_vectors: int) -> int:
    """Inverted lists for ``n_vectors``: the power of two nearest 4 * sqrt(n), at most n / 39."""
    nearest = 2 ** max(0, round(math.log2(max(1.0, 4.0 * math.sqrt(n_vectors)))))
    trainable = 2 ** int(math.log2(max(1, n_vectors // MIN_POINTS_PER_CENTROID)))
    return min(nearest, trainable)


def default_nprobe(nlist: int) -> int:
    """Lists probed per query for recall@100 >= 0.95 (measured; see ``faiss_index``'s module
    docstring); a build raises it further until its recall check passes."""
    return int(min(nlist, max(NPROBE_MIN, nlist // NPROBE_DIVISOR)))


def default_ef_search(k: int = 100) -> int:
    """HNSW ``efSearch`` for recall@100 >= 0.95 at ``k`` results (never below ``k``)."""
    return int(max(EF_SEARCH_MIN, k))


def pq_m_for(dim: int) -> int:
    """PQ sub-quantizers: D/4 (4 dimensions per 8-bit code), or the largest divisor of D below."""
    return next(m for m in range(max(1, dim // 4), 0, -1) if dim % m == 0)


def estimated_bytes(spec: IndexSpec, n: int, dim: int) -> int:
    """Steady-state memory of an index of ``n`` vectors of width ``dim``, in bytes.

    Per vector: flat 4D + 48 (vectors + IndexIDMap2's id map and reverse hash map); ivf 4D + 8
    (vectors + inverted-list id); ivfpq m + 8 (codes + id), plus 4D + 48 more with a flat refine
    stage (exact vectors, IndexIDMap2) and 8 for its positional ids; hnsw 4D + 8M (level-0 links,
    2M int32) + ~16 (upper levels, level, offset) + 48 (IndexIDMap2). Fixed parts: IVF centroids
    (nlist * 4D) and list headers (48 B/list), PQ codebooks (256 * 4D). Transient growth while
    adding (vector doubling, up to ~2x the list storage) is not counted.

    Raises:
        ValueError: n < 0 or dim < 1.
    """
    if n < 0 or dim < 1:
        raise ValueError(f"need n >= 0 and dim >= 1, got n={n}, dim={dim}")
    p = spec.params
    if spec.kind == "flat":
        return n * (4 * dim + ID_MAP2_BYTES)
    if spec.kind == "hnsw":
        return n * (4 * dim + 8 * int(p.get("M", HNSW_M)) + 16 + ID_MAP2_BYTES)
    nlist = int(p.get("nlist", nlist_for(n)))
    fixed = nlist * (4 * dim + 48)
    if spec.kind == "ivf":
        return fixed + n * (4 * dim + IVF_ID_BYTES)
    m = int(p.get("m", pq_m_for(dim)))
    per_vector = m * int(p.get("nbits", 8)) // 8 + IVF_ID_BYTES
    if p.get("refine") == "flat":
        per_vector += 4 * dim + ID_MAP2_BYTES
    return fixed + 2 ** int(p.get("nbits", 8)) * 4 * dim + n * per_vector


def _ivf_spec(n: int) -> IndexSpec:
    nlist = nlist_for(n)
    return IndexSpec("ivf", {"nlist": nlist, "nprobe": default_nprobe(nlist)})


def _ivfpq_spec(n: int, dim: int, refine: str | None) -> IndexSpec:
    nlist = nlist_for(n)
    params = {"nlist": nlist, "nprobe": default_nprobe(nlist), "m": pq_m_for(dim), "nbits": 8,
              "refine": refine, "k_factor": REFINE_K_FACTOR if refine else 1}
    return IndexSpec("ivfpq", params)


def _hnsw_spec() -> IndexSpec:
    return IndexSpec("hnsw", {"M": HNSW_M, "ef_construction": HNSW_EF_CONSTRUCTION,
                              "ef_search": default_ef_search()})


def _fits(spec: IndexSpec, n: int, dim: int, budget: int | None) -> bool:
    return budget is None or estimated_bytes(spec, n, dim) <= budget


def _describe(spec: IndexSpec) -> str:
    """A short name with the key parameters, e.g. ``IVF-Flat (nlist=4096, nprobe=256)``."""
    p = spec.params
    if spec.kind == "flat":
        return "exact flat inner-product search"
    if spec.kind == "hnsw":
        return f"HNSW (M={p['M']}, efSearch={p['ef_search']})"
    base = f"nlist={p['nlist']}, nprobe={p['nprobe']}"
    if spec.kind == "ivf":
        return f"IVF-Flat ({base})"
    refine = ", flat refine" if p.get("refine") == "flat" else ""
    return f"IVF-PQ ({base}, {p['m']}x{p['nbits']}-bit codes{refine})"


def _with_reason(spec: IndexSpec, why: str, n: int, dim: int) -> IndexSpec:
    size = format_bytes(estimated_bytes(spec, n, dim))
    return replace(spec, reason=f"{_describe(spec)} for {n:,} vectors of width {dim} "
                                f"(~{size}): {why}")


def _too_big(spec: IndexSpec, n: int, dim: int, budget: int) -> ValueError:
    need = estimated_bytes(spec, n, dim)
    return ValueError(f"{_describe(spec)} of {n:,} vectors (width {dim}) needs "
                      f"~{format_bytes(need)} ({need} bytes) but the memory budget is "
                      f"{format_bytes(budget)} ({budget} bytes); raise the budget or index fewer "
                      f"vectors")


def _choose_ivfpq(n: int, dim: int, budget: int | None) -> IndexSpec:
    refined = _ivfpq_spec(n, dim, "flat")
    if _fits(refined, n, dim, budget):
        return _with_reason(refined, "PQ candidates are re-scored exactly against the stored "
                                     "vectors, which fit the budget (remove is not supported)",
                            n, dim)
    plain = _ivfpq_spec(n, dim, None)
    if not _fits(plain, n, dim, budget):
        raise _too_big(plain, n, dim, budget)
    return _with_reason(plain, f"full vectors do not fit the {format_bytes(budget)} budget, so "
                               "scores come from 8-bit PQ codes without a refine stage and recall "
                               "drops (recall@100 0.73-0.86 where IVF-Flat reaches 0.97-0.99 on "
                               "the corpus_scale benchmark)", n, dim)


def choose_index(n_vectors: int, dim: int, memory_budget_bytes: int | str | None = None,
                 kind: str = "auto") -> IndexSpec:
    """Pick the index kind and parameters for ``n_vectors`` embeddings of width ``dim``.

    ``auto`` chooses for latency: exact flat while it answers in ~1 ms (n x dim <=
    :data:`FLAT_MAX_FLOATS`) and fits the budget; else IVF-Flat when the full vectors fit;
    otherwise IVF-PQ (a flat refine stage only if it fits, else recall drops). HNSW only when
    asked. ``nprobe`` here is a default: an index build tunes it to a measured recall
    (``recall_check``). The result is already fitted to ``n_vectors`` (see
    :func:`fit_spec_to_data`).

    Args:
        n_vectors: how many vectors the index will hold (>= 0).
        dim: embedding width D.
        memory_budget_bytes: bytes (or a string such as "4G") for the index; None = unlimited.
        kind: "auto" | "flat" | "ivf" | "ivfpq" | "hnsw".

    Returns:
        IndexSpec with a one-sentence ``reason``.

    Raises:
        ValueError: an unknown kind, bad sizes, or when even the smallest choice exceeds the
            budget (names the estimate and the budget).
    """
    budget = parse_bytes(memory_budget_bytes)
    if kind not in ("auto", *KINDS):
        raise InputError(f"unknown index kind {kind!r}; expected 'auto' or one of {KINDS}")
    if n_vectors < 0 or dim < 1:
        raise ValueError(f"need n_vectors >= 0 and dim >= 1, got {n_vectors} and {dim}")
    if kind == "auto":
        spec = _choose_auto(n_vectors, dim, budget)
    elif kind == "ivfpq":
        spec = _choose_ivfpq(n_vectors, dim, budget)
    else:
        spec = {"flat": IndexSpec("flat"), "ivf": _ivf_spec(n_vectors), "hnsw": _hnsw_spec()}[kind]
        if not _fits(spec, n_vectors, dim, budget):
            raise _too_big(spec, n_vectors, dim, budget)
        spec = _with_reason(spec, "requested explicitly", n_vectors, dim)
    return fit_spec_to_data(spec, n_vectors)


def _choose_auto(n: int, dim: int, budget: int | None) -> IndexSpec:
    flat = IndexSpec("flat")
    if flat_is_fast(n, dim) and _fits(flat, n, dim, budget):
        return _with_reason(flat, f"small enough (vectors x width <= {FLAT_MAX_FLOATS:,}) for "
                                  "brute force in ~1 ms per query, within the budget", n, dim)
    ivf = _ivf_spec(n)
    if _fits(ivf, n, dim, budget):
        why = ("brute force would take over ~1 ms per query" if not flat_is_fast(n, dim)
               else "the exact index's id map does not fit the budget")
        return _with_reason(ivf, f"full vectors fit the budget; {why}", n, dim)
    if n < MIN_POINTS_PER_CENTROID * PQ_CENTROIDS:
        raise _too_big(flat, n, dim, budget)  # too few vectors to train PQ codebooks
    return _choose_ivfpq(n, dim, budget)


def retuned(spec: IndexSpec, params: Mapping[str, Any], note: str) -> IndexSpec:
    """``spec`` with ``params`` merged in, its reason renamed to the new parameters and
    ``note`` appended (e.g. the recall a build measured)."""
    new = replace(spec, params={**spec.params, **params})
    reason = spec.reason
    if reason.startswith(_describe(spec)):
        reason = _describe(new) + reason[len(_describe(spec)):]
    return replace(new, reason=f"{reason}; {note}" if reason else f"{_describe(new)}: {note}")


def flat_is_fast(n: int, dim: int) -> bool:
    """True when exact search over ``n`` vectors of width ``dim`` takes <= ~1 ms per query on
    one thread (:data:`FLAT_MAX_FLOATS`)."""
    return n * dim <= FLAT_MAX_FLOATS


def fit_spec_to_data(spec: IndexSpec, n: int) -> IndexSpec:
    """Shrink a spec so that ``n`` vectors can train it; a tiny corpus never fails.

    IVF: nlist <= n // 39 (FAISS wants >= 39 training vectors per centroid), rounded down to a
    power of two, nprobe scaled with it; below 16 lists the index becomes flat. IVF-PQ: below
    39 * 2^nbits vectors its codebooks cannot be trained, so it becomes IVF-Flat (or flat).
    Flat and HNSW pass unchanged. The reason says what changed.

    Raises:
        ValueError: n < 0.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if spec.kind in ("flat", "hnsw"):
        return spec
    pq_minimum = MIN_POINTS_PER_CENTROID * 2 ** int(spec.params.get("nbits", 8))
    if spec.kind == "ivfpq" and n < pq_minimum:
        ivf = IndexSpec("ivf", {"nlist": spec.params["nlist"], "nprobe": spec.params["nprobe"]})
        spec = replace(ivf, reason=f"{_describe(ivf)} instead of {_describe(spec)}: only {n:,} "
                                   f"vectors, too few to train {spec.params.get('nbits', 8)}-bit "
                                   f"PQ codebooks (needs "
                                   f"{pq_minimum:,})")
    max_nlist = n // MIN_POINTS_PER_CENTROID
    if max_nlist < MIN_NLIST:
        flat = IndexSpec("flat")
        return replace(flat, reason=f"{_describe(flat)} instead of {_describe(spec)}: only {n:,} "
                                    f"vectors, too few for {MIN_NLIST} inverted lists of >= "
                                    f"{MIN_POINTS_PER_CENTROID} vectors")
    nlist = int(spec.params["nlist"])
    if nlist <= max_nlist:
        return spec
    fitted = 2 ** int(math.log2(max_nlist))
    scaled = round(int(spec.params["nprobe"]) * fitted / nlist)
    shrunk = replace(spec, params={**spec.params, "nlist": fitted,
                                   "nprobe": min(fitted, max(scaled, default_nprobe(fitted)))})
    old_name, reason = _describe(spec), spec.reason
    if reason.startswith(old_name):
        reason = _describe(shrunk) + reason[len(old_name):]
    note = (f"nlist lowered from {nlist} to {fitted} to keep >= {MIN_POINTS_PER_CENTROID} "
            f"training vectors per list")
    return replace(shrunk, reason=f"{reason}; {note}" if reason else f"{_describe(shrunk)}: {note}")


def train_sample_size(spec: IndexSpec, n: int) -> int:
    """How many of the ``n`` vectors to train on (0: the kind needs no training).

    IVF: 64 per list (at least 39); IVF-PQ: also at least 256 * 256 for the PQ codebooks (the
    most FAISS uses); never more than ``n``.
    """
    if spec.kind in ("flat", "hnsw"):
        return 0
    nlist = int(spec.params["nlist"])
    wanted = TRAIN_POINTS_PER_CENTROID * nlist
    if spec.kind == "ivfpq":
        wanted = max(wanted, 256 * 2 ** int(spec.params.get("nbits", 8)))
    return int(min(n, wanted))
