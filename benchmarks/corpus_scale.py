"""Corpus-scale benchmark of the FAISS index kinds: build time, size, latency and recall vs n.

For each corpus size (10^4 .. 10^7 proposal embeddings, D = 128) and each index kind (flat, ivf,
ivfpq, hnsw, built by ``moment_search.indexer.faiss_index`` with its default parameters), it
measures: build time (train + add), serialized bytes per vector, recall@10 / recall@100 against
exact search, then single-query and batch-of-32 latency (p50 / p95, per query), with the threads
FAISS used. Recall is checked first (the exact flat index must score 1.0) and stored next to the
timings. IVF and HNSW also get a sweep of recall vs nprobe / efSearch: the indexer's defaults were
picked from it.

The embeddings are synthetic but clustered like proposal embeddings: a two-level Gaussian mixture
on the unit sphere (topics -> videos -> the ~136 overlapping proposals of each video, ids
contiguous per video), queries drawn near unseen videos of the same topics. Uniform noise would
make every ANN look worse than on real embeddings. Data is generated block by block from seeds,
so nothing of size n is held besides the index itself.

Run: ``python -m moment_search.benchmarks.corpus_scale --preset small --out bench/``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..indexer import faiss_index as fi
from . import report

__all__ = ["PRESETS", "ScaleConfig", "SyntheticEmbeddings", "build_measured", "exact_topk",
           "latency_ms", "main", "recall_at", "run"]

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


@dataclass(frozen=True)
class SyntheticEmbeddings:
    """Clustered unit-norm embeddings: topics -> videos -> proposals, generated per block.

    Attributes (spreads are the norm of the Gaussian offset added before normalising):
        dim: embedding width D.
        n_topics: mixture components; topic frequencies fall off as 1/sqrt(rank).
        per_video: proposals per video (a 16-clip 2D map has 136 cells); ids contiguous per video.
        video_spread: a video's centre around its topic (1.0: cosine ~0.7).
        proposal_spread: a proposal around its video centre (0.35: cosine ~0.94).
        query_spread: a query around an unseen video of its topic.
        videos_per_block: generation unit (a block is seeded by ``(seed, block number)``).
        seed: everything derives from it.
    """

    dim: int = 128
    n_topics: int = 1024
    per_video: int = 136
    video_spread: float = 1.0
    proposal_spread: float = 0.35
    query_spread: float = 0.5
    videos_per_block: int = 256
    seed: int = 0

    @property
    def block_size(self) -> int:
        """Vectors per generated block."""
        return self.videos_per_block * self.per_video

    def _topics(self) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([self.seed, 0])
        centres = _unit(rng.standard_normal((self.n_topics, self.dim), dtype=np.float32))
        weights = 1.0 / np.sqrt(np.arange(1, self.n_topics + 1))
        return centres, weights / weights.sum()

    def _video_centres(self, rng: np.random.Generator, count: int) -> np.ndarray:
        centres, weights = self._topics()
        topics = rng.choice(self.n_topics, size=count, p=weights)
        noise = rng.standard_normal((count, self.dim), dtype=np.float32)
        return _unit(centres[topics] + self.video_spread / np.sqrt(self.dim) * noise)

    def block(self, number: int) -> np.ndarray:
        """Block ``number``: (block_size, D) float32 unit vectors, ids from number*block_size."""
        rng = np.random.default_rng([self.seed, 1, number])
        videos = np.repeat(self._video_centres(rng, self.videos_per_block), self.per_video, 0)
        noise = rng.standard_normal(videos.shape, dtype=np.float32)
        return _unit(videos + self.proposal_spread / np.sqrt(self.dim) * noise)

    def blocks(self, n: int) -> Iterator[tuple[int, np.ndarray]]:
        """``(first_id, vectors)`` covering ids ``0 .. n-1`` in order."""
        for number in range(-(-n // self.block_size)):
            first = number * self.block_size
            yield first, self.block(number)[: n - first]

    def queries(self, count: int) -> np.ndarray:
        """(count, D) float32 unit query embeddings, independent of the corpus blocks."""
        rng = np.random.default_rng([self.seed, 2])
        noise = rng.standard_normal((count, self.dim), dtype=np.float32)
        return _unit(self._video_centres(rng, count) + self.query_spread / np.sqrt(self.dim)
                     * noise)


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@dataclass
class ScaleConfig:
    """One benchmark run.

    Attributes:
        preset: name recorded in the report.
        sizes: corpus sizes (vectors).
        kinds: index kinds to build.
        n_queries: queries with exact ground truth (recall and batch latency).
        n_single: single-query latency samples (the first n_single queries).
        batch: batch size of the batched latency.
        memory_budget: estimated index + working memory above which a (size, kind) is skipped.
        sweep: also measure recall vs nprobe (IVF kinds) and efSearch (HNSW).
        threads: FAISS OpenMP threads (None: FAISS's default, all cores).
        data: the synthetic embedding generator.
    """

    preset: str = "small"
    sizes: tuple[int, ...] = PRESETS["small"]
    kinds: tuple[str, ...] = KINDS
    n_queries: int = 500
    n_single: int = 200
    batch: int = 32
    memory_budget: str = "12G"
    sweep: bool = True
    threads: int | None = None
    data: SyntheticEmbeddings = field(default_factory=SyntheticEmbeddings)


# ---------------------------------------------------------------------------------------------
# Ground truth and recall
# ---------------------------------------------------------------------------------------------


def _merge_topk(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise top ``k`` (descending) of (Q, M) scores and their ids."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    top_scores = np.take_along_axis(scores, part, 1)
    order = np.argsort(-top_scores, axis=1, kind="stable")
    return np.take_along_axis(top_scores, order, 1), np.take_along_axis(
        np.take_along_axis(ids, part, 1), order, 1)


def exact_topk(blocks, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force top-``k`` inner products in numpy (independent of FAISS).

    Args:
        blocks: iterable of ``(first_id, (b, D) float32)`` covering the corpus.
        queries: (Q, D) float32.
        k: neighbours kept.

    Returns:
        scores (Q, k) float32 and ids (Q, k) int64, best first.
    """
    best_scores = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    best_ids = np.zeros((len(queries), 0), dtype=np.int64)
    for first, vectors in blocks:
        scores = queries @ vectors.T  # (Q, b)
        ids = np.broadcast_to(np.arange(first, first + len(vectors)), scores.shape)
        best_scores, best_ids = _merge_topk(np.hstack([best_scores, scores]),
                                            np.hstack([best_ids, ids]), k)
    return best_scores, best_ids


def recall_at(found: np.ndarray, truth: np.ndarray, k: int) -> float:
    """Mean over queries of |found[:k] ∩ truth[:k]| / k for (Q, >=k) id arrays."""
    hits = [len(np.intersect1d(f[:k], t[:k])) for f, t in zip(found, truth, strict=True)]
    return float(np.mean(hits) / k)


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


def measure(kind: str, n: int, queries, truth, cfg: ScaleConfig, out_dir: Path) -> dict:
    """Build one index and measure it: recall first, then latency. Returns one result row."""
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
    row.update(_recall(index, queries, truth))  # verify before timing
    if spec.kind == "flat" and row["recall_at_100"] < 0.999:
        raise RuntimeError(f"exact flat search disagrees with numpy brute force at n={n} "
                           f"(recall@100 {row['recall_at_100']:.4f}); the benchmark is broken")
    row["meets_target"] = row["recall_at_100"] >= RECALL_TARGET
    single = latency_ms(index, queries[: cfg.n_single], 1)
    batched = latency_ms(index, queries, cfg.batch)
    row.update(single_p50_ms=float(np.percentile(single, 50)),
               single_p95_ms=float(np.percentile(single, 95)),
               batch_p50_ms=float(np.percentile(batched, 50)),
               batch_p95_ms=float(np.percentile(batched, 95)))
    if cfg.sweep:
        row["sweep"] = _sweep(index, spec.kind, spec.params, queries, truth, cfg.batch)
    return row


# ---------------------------------------------------------------------------------------------
# The run and its report
# ---------------------------------------------------------------------------------------------


def run(preset: str = "small", out_dir: str | os.PathLike = "benchmark-results",
        sizes: Sequence[int] | None = None, kinds: Sequence[str] = KINDS,
        n_queries: int = 500, n_single: int = 200, memory_budget: str = "12G",
        sweep: bool = True, seed: int = 0, threads: int | None = None) -> dict:
    """Run the benchmark and write corpus_scale.json, corpus_scale.md, latency_vs_size.png.

    Args:
        preset: "small" (10^4..10^5, ~1 min on 2 cores), "medium" (..10^6), "large" (..10^7).
        out_dir: where the three files go (created).
        sizes: override the preset's corpus sizes.
        kinds: index kinds, from "flat", "ivf", "ivfpq", "hnsw".
        n_queries: queries with exact ground truth; n_single: single-query latency samples.
        memory_budget: e.g. "12G": (size, kind) pairs estimated above it are skipped, saying why.
        sweep: measure recall vs nprobe / efSearch too.
        seed: data seed.
        threads: FAISS OpenMP threads (None: all cores). On a machine shared with other jobs,
            1 thread avoids OpenMP barrier stalls that otherwise dominate small timings.

    Returns:
        the report dict (what corpus_scale.json holds).

    Raises:
        ValueError: unknown preset or kind, or fewer queries than one batch.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; expected one of {sorted(PRESETS)}")
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ValueError(f"unknown index kind(s) {unknown}; expected some of {KINDS}")
    cfg = ScaleConfig(preset, tuple(int(s) for s in (sizes or PRESETS[preset])), tuple(kinds),
                      n_queries, min(n_single, n_queries), 32, memory_budget, sweep, threads,
                      SyntheticEmbeddings(seed=seed))
    if cfg.n_queries < cfg.batch:
        raise ValueError(f"n_queries must be >= the batch size {cfg.batch}, got {n_queries}")
    fi.parse_bytes(memory_budget)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with fi.omp_threads(cfg.threads):
        machine = report.machine_info()
        started = time.perf_counter()
        queries = cfg.data.queries(cfg.n_queries)
        rows = []
        for n in cfg.sizes:
            truth = exact_topk(cfg.data.blocks(n), queries, K)[1]
            rows += [measure(kind, n, queries, truth, cfg, out) for kind in cfg.kinds]
        result = _report_dict(cfg, rows, machine, time.perf_counter() - started)
    write_outputs(result, out)
    return result


def _report_dict(cfg: ScaleConfig, rows: list[dict], machine: dict, elapsed_s: float) -> dict:
    machine = {**machine, "load_average_1m_at_end": os.getloadavg()[0]}
    return {"benchmark": "corpus_scale", "preset": cfg.preset, "config": asdict(cfg),
            "data_description": _data_description(cfg.data), "recall_target": RECALL_TARGET,
            "k": K, "machine": machine, "results": rows,
            "defaults_check": _defaults_check(rows), "elapsed_s": elapsed_s}


def _data_description(data: SyntheticEmbeddings) -> str:
    return (f"Synthetic clustered embeddings, not uniform noise: D={data.dim}, a two-level "
            f"Gaussian mixture on the unit sphere ({data.n_topics} topics with 1/sqrt(rank) "
            f"frequencies -> videos at spread {data.video_spread} -> {data.per_video} proposals "
            f"per video at spread {data.proposal_spread}, ids contiguous per video); queries lie "
            f"near unseen videos of the same topics (spread {data.query_spread}). Inner-product "
            f"search; ground truth by numpy brute force.")


def _defaults_check(rows: list[dict]) -> list[dict]:
    """Per measured IVF/HNSW index: the smallest swept value reaching the recall target."""
    checks = []
    for row in rows:
        sweep = row.get("sweep") or []
        if not sweep:
            continue
        enough = [s["value"] for s in sweep if s["recall_at_100"] >= RECALL_TARGET]
        param = sweep[0]["param"]
        checks.append({"n": row["n"], "kind": row["kind"], "param": param,
                       "default": row["params"].get(param), "nlist": row["params"].get("nlist"),
                       "smallest_meeting_target": min(enough) if enough else None,
                       "best_recall_at_100": max(s["recall_at_100"] for s in sweep)})
    return checks


RESULT_COLUMNS = ("n", "kind", "built_kind", "build_s", "bytes_per_vector", "recall_at_10",
                  "recall_at_100", "single_p50_ms", "single_p95_ms", "batch_p50_ms",
                  "batch_p95_ms", "threads")
RESULT_HEADERS = ("n", "kind", "built as", "build s", "bytes/vec", "R@10", "R@100",
                  "1-query p50 ms", "1-query p95 ms", "batch-32 p50 ms/q", "batch-32 p95 ms/q",
                  "threads")


def to_markdown(result: dict) -> str:
    """The human-readable report: data, machine, the main table, sweeps, skips."""
    ok = [r for r in result["results"] if r["status"] == "ok"]
    skipped = [r for r in result["results"] if r["status"] != "ok"]
    parts = [f"# Corpus-scale FAISS benchmark ({result['preset']} preset)", "",
             result["data_description"], "", report.machine_markdown(result["machine"]), "",
             f"Recall is measured against exact search on {result['config']['n_queries']} "
             f"queries before any timing; k = {result['k']}. Latency is per query (batch "
             f"latency = batch time / 32). Build = train + add, data generation excluded.", "",
             report.markdown_table(ok, RESULT_COLUMNS, RESULT_HEADERS), ""]
    parts += ["## Parameters used (the indexer's choice and its reason)", "",
              report.markdown_table(ok, ("n", "kind", "built_kind", "params", "reason"),
                                    ("n", "kind", "built as", "params", "reason")), ""]
    sweeps = [{"n": r["n"], "kind": r["kind"], **s} for r in ok for s in r.get("sweep", [])]
    if sweeps:
        parts += ["## Recall vs nprobe / efSearch", "", report.markdown_table(
            sweeps, ("n", "kind", "param", "value", "recall_at_10", "recall_at_100",
                     "per_query_ms"), ("n", "kind", "param", "value", "R@10", "R@100",
                                       "batch-32 ms/q")), ""]
        parts += ["Smallest swept value reaching recall@100 >= "
                  f"{result['recall_target']} vs the indexer's default:", "",
                  report.markdown_table(result["defaults_check"], (
                      "n", "kind", "nlist", "param", "default", "smallest_meeting_target",
                      "best_recall_at_100")), ""]
    if skipped:
        parts += ["## Skipped", ""] + [f"- n={r['n']:,} {r['kind']}: {r['skip_reason']}"
                                       for r in skipped] + [""]
    parts.append(f"Total run time {result['elapsed_s']:.0f} s.")
    return "\n".join(parts)


def plot_latency(result: dict, path: Path) -> Path:
    """latency_vs_size.png: p50 latency vs corpus size, one line per kind, log-log."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    ok = [r for r in result["results"] if r["status"] == "ok"]
    for axis, column, title in ((axes[0], "single_p50_ms", "single query"),
                                (axes[1], "batch_p50_ms", "batch of 32 (per query)")):
        for kind in dict.fromkeys(r["kind"] for r in ok):
            points = sorted((r["n"], r[column]) for r in ok if r["kind"] == kind)
            axis.plot(*zip(*points, strict=True), marker="o", label=kind)
        axis.set(xscale="log", yscale="log", xlabel="vectors in the index",
                 title=f"p50 latency, {title}")
        axis.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("milliseconds per query")
    if ok:
        axes[0].legend()
    figure.suptitle(f"FAISS search latency vs corpus size (D=128, k={result['k']}, "
                    f"FAISS threads={result['machine']['faiss_threads']})")
    try:
        return report.save_figure(figure, path)
    finally:
        plt.close(figure)


def write_outputs(result: dict, out_dir: Path) -> dict[str, Path]:
    """Write corpus_scale.json, corpus_scale.md and latency_vs_size.png into ``out_dir``."""
    return {"json": report.write_json(out_dir / "corpus_scale.json", result),
            "markdown": report.write_markdown(out_dir / "corpus_scale.md", to_markdown(result)),
            "plot": plot_latency(result, out_dir / "latency_vs_size.png")}


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m moment_search.benchmarks.corpus_scale --preset small``."""
    parser = argparse.ArgumentParser(prog="corpus_scale", description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="small")
    parser.add_argument("--out", default="benchmark-results", help="output directory")
    parser.add_argument("--sizes", help="comma-separated corpus sizes overriding the preset")
    parser.add_argument("--kinds", default=",".join(KINDS), help="comma-separated index kinds")
    parser.add_argument("--queries", type=int, default=500, help="queries with ground truth")
    parser.add_argument("--single", type=int, default=200, help="single-query latency samples")
    parser.add_argument("--budget", default="12G", help="memory budget, e.g. 12G")
    parser.add_argument("--no-sweep", action="store_true", help="skip the nprobe/efSearch sweep")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, help="FAISS threads (default: all cores)")
    args = parser.parse_args(argv)
    sizes = [int(float(s)) for s in args.sizes.split(",")] if args.sizes else None
    result = run(args.preset, args.out, sizes, tuple(args.kinds.split(",")), args.queries,
                 args.single, args.budget, not args.no_sweep, args.seed, args.threads)
    print(to_markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
