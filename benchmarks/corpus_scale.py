"""Corpus-scale benchmark of the FAISS index kinds: build time, size, latency and recall vs n.

For each corpus size (10^4 .. 10^7 proposal embeddings, D = 128) and each index kind (flat, ivf,
ivfpq, ivfpq_refine, hnsw, built by ``moment_search.indexer.faiss_index`` with its default
parameters), it measures: build time (train + add), serialized bytes per vector, recall@10 /
recall@100 against exact search, then single-query and batch-of-32 latency (p50 / p95, per
query), with the threads FAISS used. Recall is checked first and stored next to the timings:
exact neighbours come from ``faiss.contrib.exhaustive_search.knn_ground_truth`` over the generated
blocks, recall@k is ``faiss.contrib.evaluation.knn_intersection_measure``, and the flat index must
return the exact neighbours up to ties (``faiss.contrib.evaluation.check_ref_knn_with_draws``).
IVF and HNSW also get a sweep of recall vs nprobe / efSearch: the indexer's defaults were picked
from it.

The embeddings are synthetic but clustered like proposal embeddings (``synthetic_embeddings``);
nothing of size n is held besides the index itself. The report is written by
``corpus_scale_report``.

Run: ``moment-search benchmark corpus-scale --preset small --out bench/`` (or
``python -m moment_search.benchmarks.corpus_scale --preset small --out bench/``).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..indexer import faiss_index as fi
from . import report
from .corpus_scale_report import data_description, defaults_check, to_markdown, write_outputs
from .synthetic_embeddings import SyntheticEmbeddings

__all__ = ["PRESETS", "ScaleConfig", "build_measured", "exact_neighbours", "latency_ms", "main",
           "parse_size", "recall_at", "run"]

PRESETS = {
    "small": (10_000, 30_000, 100_000),
    "medium": (10_000, 100_000, 300_000, 1_000_000),
    "large": (10_000, 100_000, 1_000_000, 10_000_000),
}
# "ivfpq" is PQ-only (what the indexer picks when full vectors exceed the budget);
# "ivfpq_refine" re-scores PQ candidates against the stored vectors (an explicit --kind ivfpq).
KINDS = ("flat", "ivf", "ivfpq", "ivfpq_refine", "hnsw")
RECALL_TARGET = 0.95  # recall@100 against exact that the defaults must reach
K = 100  # neighbours searched for recall and latency


@dataclass
class ScaleConfig:
    """One benchmark run; ``moment-search benchmark corpus-scale`` and :func:`main` build it from
    their options, whose defaults are these.

    Attributes:
        out: where corpus_scale.json, corpus_scale.md and latency_vs_size.png go (created).
        preset: "small" (10^4..10^5, ~1 min on 2 cores), "medium" (..10^6), "large" (..10^7);
            recorded in the report.
        sizes: corpus sizes (vectors) overriding the preset's (None: the preset's).
        kinds: index kinds, some of ``KINDS``.
        n_queries: queries with exact ground truth (recall and batch latency).
        n_single: single-query latency samples (the first n_single queries, at most n_queries).
        batch: batch size of the batched latency.
        memory_budget: e.g. "12G": (size, kind) pairs estimated above it are skipped, saying why.
        sweep: also measure recall vs nprobe (IVF kinds) and efSearch (HNSW).
        threads: FAISS OpenMP threads (0: FAISS's default, all cores). On a machine shared with
            other jobs, 1 thread avoids OpenMP barrier stalls that otherwise dominate small
            timings.
        data: the synthetic embedding generator (its ``seed`` is the data seed).
    """

    out: Path = Path("benchmark-results")
    preset: str = "small"
    sizes: tuple[int, ...] | None = None
    kinds: tuple[str, ...] = KINDS
    n_queries: int = 500
    n_single: int = 200
    batch: int = 32
    memory_budget: str = "12G"
    sweep: bool = True
    threads: int = 1
    data: SyntheticEmbeddings = field(default_factory=SyntheticEmbeddings)

    def resolved(self) -> ScaleConfig:
        """This run checked, with the preset's sizes filled in and n_single <= n_queries.

        Raises:
            InputError: unknown preset or kind, fewer queries than one batch, or an unreadable
                memory budget.
        """
        if self.preset not in PRESETS:
            raise InputError(f"unknown preset {self.preset!r}; expected one of {sorted(PRESETS)}")
        unknown = [k for k in self.kinds if k not in KINDS]
        if unknown:
            raise InputError(f"unknown index kind(s) {unknown}; expected some of {KINDS}")
        if self.n_queries < self.batch:
            raise InputError(f"n_queries must be >= the batch size {self.batch}, "
                             f"got {self.n_queries}", parameter="n_queries")
        fi.parse_bytes(self.memory_budget)
        sizes = tuple(int(s) for s in (self.sizes or PRESETS[self.preset]))
        return replace(self, out=Path(self.out), sizes=sizes, kinds=tuple(self.kinds),
                       n_single=min(self.n_single, self.n_queries))


def parse_size(text: str) -> int:
    """A corpus size as written on a command line: ``"1e4"`` or ``"10000"`` -> 10000."""
    return int(float(text))


# ---------------------------------------------------------------------------------------------
# Ground truth and recall (faiss.contrib)
# ---------------------------------------------------------------------------------------------


def exact_neighbours(data, n: int, queries: np.ndarray, k: int = K
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` inner products of ``queries`` over the first ``n`` vectors of ``data``
    (anything with ``blocks(n)`` like :class:`SyntheticEmbeddings`), block by block.

    Returns:
        scores (Q, k) float32 and ids (Q, k) int64, best first.
    """
    from faiss.contrib.exhaustive_search import knn_ground_truth

    faiss = fi.import_faiss()
    blocks = (vectors for _, vectors in data.blocks(n))
    return knn_ground_truth(np.ascontiguousarray(queries, dtype=np.float32), blocks, k,
                            metric_type=faiss.METRIC_INNER_PRODUCT)


def recall_at(found: np.ndarray, truth: np.ndarray, k: int) -> float:
    """Mean over queries of |found[:k] ∩ truth[:k]| / k for (Q, >=k) id arrays."""
    from faiss.contrib.evaluation import knn_intersection_measure

    return float(knn_intersection_measure(found[:, :k], truth[:, :k]))


def _check_exact(index, queries: np.ndarray, truth: tuple[np.ndarray, np.ndarray], n: int
                 ) -> None:
    """The flat index must return the exact neighbours (ties in any order), or the benchmark is
    broken."""
    from faiss.contrib.evaluation import check_ref_knn_with_draws

    scores, ids = fi.search(index, queries, K)
    try:
        check_ref_knn_with_draws(*truth, scores, ids)
    except AssertionError as e:
        raise RuntimeError(f"exact flat search disagrees with exhaustive search at n={n}; "
                           f"the benchmark is broken: {e}") from e


# ---------------------------------------------------------------------------------------------
# One (size, kind) measurement
# ---------------------------------------------------------------------------------------------


def _training_sample(data: SyntheticEmbeddings, n: int, size: int, seed: int) -> np.ndarray:
    """``size`` rows of the corpus drawn uniformly without replacement (seeded)."""
    rows = np.sort(np.random.default_rng([seed, 3]).choice(n, size=size, replace=False))
    parts = [vectors[rows[(rows >= first) & (rows < first + len(vectors))] - first]
             for first, vectors in data.blocks(n)]
    return np.ascontiguousarray(np.concatenate(parts))


def build_measured(spec: fi.IndexSpec, n: int, data) -> tuple[object, dict]:
    """Train and fill an index with the first ``n`` vectors of ``data`` (anything with ``dim``,
    ``seed`` and ``blocks(n)`` like :class:`SyntheticEmbeddings`); data generation is excluded
    from the times."""
    index = fi.new_index(spec, data.dim)
    sample_size = fi.train_sample_size(spec, n)
    train_s = 0.0
    if sample_size:
        sample = _training_sample(data, n, sample_size, data.seed)
        start = time.perf_counter()
        fi.train(index, sample)
        train_s = time.perf_counter() - start
        del sample
    add_s = 0.0
    for first, vectors in _insertion_batches(spec, n, data):
        start = time.perf_counter()
        fi.add(index, vectors, np.arange(first, first + len(vectors), dtype=np.int64))
        add_s += time.perf_counter() - start
    return index, {"train_s": train_s, "add_s": add_s, "build_s": train_s + add_s,
                   "train_sample": sample_size}


def _insertion_batches(spec: fi.IndexSpec, n: int, data: SyntheticEmbeddings):
    """Blocks in id order; HNSW gets everything in one call, which FAISS inserts shuffled.

    HNSW graphs depend on insertion order: video-contiguous batches (ids contiguous per video)
    cut recall@100 at efSearch 512 from 0.95 to 0.69-0.79 at 10^5 vectors in our measurements.
    """
    if spec.kind != "hnsw":
        return data.blocks(n)
    return [(0, np.concatenate([vectors for _, vectors in data.blocks(n)]))]


def _serialized_bytes(index, out_dir: Path) -> int:
    handle, temp_name = tempfile.mkstemp(dir=out_dir, prefix=".size-probe.", suffix=".faiss")
    os.close(handle)
    try:
        fi.write_index(index, temp_name)
        return os.path.getsize(temp_name)
    finally:
        Path(temp_name).unlink(missing_ok=True)


def latency_ms(index, queries: np.ndarray, batch: int, k: int = K, **settings) -> np.ndarray:
    """Per-query milliseconds of each ``k``-NN search call over ``queries`` in chunks of
    ``batch``."""
    fi.search(index, queries[:batch], k, **settings)  # warm caches / thread pool
    times = []
    for start in range(0, len(queries) - batch + 1, batch):
        chunk = queries[start:start + batch]
        begin = time.perf_counter()
        fi.search(index, chunk, k, **settings)
        times.append(1000 * (time.perf_counter() - begin) / batch)
    return np.asarray(times)


def _recall(index, queries: np.ndarray, truth: np.ndarray, **settings) -> dict:
    """recall@10 and recall@100 of ``index`` against the (Q, K) exact ids ``truth``."""
    _, ids = fi.search(index, queries, K, **settings)
    return {"recall_at_10": recall_at(ids, truth, 10), "recall_at_100": recall_at(ids, truth, K)}


def _sweep(index, kind: str, params: dict, queries, truth, batch: int) -> list[dict]:
    """Recall and batched latency vs nprobe (IVF kinds) or efSearch (HNSW), until saturated."""
    if kind == "hnsw":
        name, values = "ef_search", [16, 32, 64, 128, 256, 512, 1024]
    elif kind in ("ivf", "ivfpq"):
        nlist = int(params["nlist"])
        name, values = "nprobe", [2**i for i in range(int(np.log2(nlist)) + 1)]
    else:
        return []
    rows, previous = [], -1.0
    for value in values:
        row = {"param": name, "value": value, **_recall(index, queries, truth, **{name: value})}
        row["per_query_ms"] = float(np.median(latency_ms(index, queries, batch, **{name: value})))
        rows.append(row)
        if row["recall_at_100"] >= 0.999 or (value >= 64 and row["recall_at_100"] - previous
                                             < 0.002):
            break
        previous = row["recall_at_100"]
    return rows


def _skip_reason(spec: fi.IndexSpec, n: int, cfg: ScaleConfig) -> str | None:
    """Why (size, kind) would not fit the memory budget, or None."""
    budget = fi.parse_bytes(cfg.memory_budget)
    index_bytes = fi.estimated_bytes(spec, n, cfg.data.dim)
    block = min(n, cfg.data.block_size)
    buffered = n if spec.kind == "hnsw" else fi.train_sample_size(spec, n) + block
    working = buffered * cfg.data.dim * 4
    if index_bytes + working <= budget:
        return None
    return (f"needs ~{fi.format_bytes(index_bytes + working)} (index ~"
            f"{fi.format_bytes(index_bytes)} + training/generation buffers) > budget "
            f"{cfg.memory_budget}")


def _spec_for(kind: str, n: int, dim: int) -> fi.IndexSpec:
    """The indexer's own choice for a requested kind: no budget, except for PQ-only "ivfpq",
    which gets exactly the budget of the plain IVF-PQ (what the indexer picks when full vectors
    do not fit)."""
    if kind != "ivfpq":
        return fi.choose_index(n, dim, None, "ivfpq" if kind == "ivfpq_refine" else kind)
    refined = fi.choose_index(n, dim, None, "ivfpq")
    if refined.kind != "ivfpq":  # too few vectors for PQ: the same fallback as ivfpq_refine
        return refined
    plain = fi.IndexSpec("ivfpq", {**refined.params, "refine": None, "k_factor": 1})
    return fi.choose_index(n, dim, fi.estimated_bytes(plain, n, dim), "ivfpq")


def measure(kind: str, n: int, queries, truth: tuple[np.ndarray, np.ndarray], cfg: ScaleConfig,
            out_dir: Path) -> dict:
    """Build one index and measure it: recall first, then latency. Returns one result row.

    ``truth``: the exact (Q, K) scores and ids of :func:`exact_neighbours`."""
    faiss = fi.import_faiss()
    spec = _spec_for(kind, n, cfg.data.dim)
    row = {"n": n, "kind": kind, "built_kind": spec.kind, "params": spec.params,
           "reason": spec.reason, "threads": faiss.omp_get_max_threads(),
           "estimated_bytes": fi.estimated_bytes(spec, n, cfg.data.dim)}
    skip = _skip_reason(spec, n, cfg)
    if skip:
        return {**row, "status": "skipped", "skip_reason": skip}
    index, times = build_measured(spec, n, cfg.data)
    row.update(times, status="ok", index_bytes=_serialized_bytes(index, out_dir))
    row["bytes_per_vector"] = row["index_bytes"] / n
    if spec.kind == "flat":
        _check_exact(index, queries, truth, n)
    row.update(_recall(index, queries, truth[1]))  # verify before timing
    row["meets_target"] = row["recall_at_100"] >= RECALL_TARGET
    single = latency_ms(index, queries[: cfg.n_single], 1)
    batched = latency_ms(index, queries, cfg.batch)
    row.update(single_p50_ms=float(np.percentile(single, 50)),
               single_p95_ms=float(np.percentile(single, 95)),
               batch_p50_ms=float(np.percentile(batched, 50)),
               batch_p95_ms=float(np.percentile(batched, 95)))
    if cfg.sweep:
        row["sweep"] = _sweep(index, spec.kind, spec.params, queries, truth[1], cfg.batch)
    return row


# ---------------------------------------------------------------------------------------------
# The run and its report
# ---------------------------------------------------------------------------------------------


def run(config: ScaleConfig) -> dict:
    """Run the benchmark and write corpus_scale.json, corpus_scale.md, latency_vs_size.png.

    Returns:
        the report dict (what corpus_scale.json holds).

    Raises:
        InputError: a bad config (see :meth:`ScaleConfig.resolved`).
    """
    cfg = config.resolved()
    cfg.out.mkdir(parents=True, exist_ok=True)
    with fi.omp_threads(cfg.threads or None):
        machine = report.machine_info()
        started = time.perf_counter()
        queries = cfg.data.queries(cfg.n_queries)
        rows = []
        for n in cfg.sizes:
            truth = exact_neighbours(cfg.data, n, queries)
            rows += [measure(kind, n, queries, truth, cfg, cfg.out) for kind in cfg.kinds]
        result = _report_dict(cfg, rows, machine, time.perf_counter() - started)
    write_outputs(result, cfg.out)
    return result


def _report_dict(cfg: ScaleConfig, rows: list[dict], machine: dict, elapsed_s: float) -> dict:
    machine = {**machine, "load_average_1m_at_end": os.getloadavg()[0]}
    config = {name: value for name, value in asdict(cfg).items() if name != "out"}
    return {"benchmark": "corpus_scale", "preset": cfg.preset, "config": config,
            "data_description": data_description(cfg.data), "recall_target": RECALL_TARGET,
            "k": K, "machine": machine, "results": rows,
            "defaults_check": defaults_check(rows, RECALL_TARGET), "elapsed_s": elapsed_s}


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m moment_search.benchmarks.corpus_scale --preset small``."""
    defaults = ScaleConfig()
    parser = argparse.ArgumentParser(prog="corpus_scale", description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default=defaults.preset)
    parser.add_argument("--out", default=str(defaults.out), help="output directory")
    parser.add_argument("--sizes", help="comma-separated corpus sizes overriding the preset")
    parser.add_argument("--kinds", default=",".join(defaults.kinds),
                        help="comma-separated index kinds")
    parser.add_argument("--queries", type=int, default=defaults.n_queries,
                        help="queries with ground truth")
    parser.add_argument("--single", type=int, default=defaults.n_single,
                        help="single-query latency samples")
    parser.add_argument("--budget", default=defaults.memory_budget, help="memory budget, e.g. 12G")
    parser.add_argument("--no-sweep", action="store_true", help="skip the nprobe/efSearch sweep")
    parser.add_argument("--seed", type=int, default=defaults.data.seed)
    parser.add_argument("--threads", type=int, default=defaults.threads,
                        help="FAISS threads (0: all cores)")
    args = parser.parse_args(argv)
    sizes = tuple(map(parse_size, args.sizes.split(","))) if args.sizes else None
    result = run(ScaleConfig(Path(args.out), args.preset, sizes,
                             tuple(args.kinds.split(",")), args.queries, args.single,
                             memory_budget=args.budget, sweep=not args.no_sweep,
                             threads=args.threads, data=SyntheticEmbeddings(seed=args.seed)))
    print(to_markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
