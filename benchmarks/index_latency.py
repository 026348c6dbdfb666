"""Flat vs the ``auto`` index on the real 1,000-video index: FAISS latency on one thread, recall.

Builds the Charades-STA corpus twice with the shipped model (``--index flat`` and ``auto``), then
searches both the way the searcher does (``store.search(query, k, published params)``), one query
per call on one FAISS thread, with held-out sentences (the build's recall check uses the val split;
these are train sentences). Verifies first: the flat index is the exact reference, and auto's
recall@100 / @200 against it must reach the target it recorded. Reports build time, FAISS search
p50 / p95 and recall@100 / @200.

    python -m moment_search.benchmarks.index_latency --data ../shared/data/charades-sta-clip \\
        --out reports/index_latency
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..indexer import faiss_index as fi
from ..indexer.build import BuildConfig, build_index
from .report import machine_info, machine_markdown, markdown_table, progress, write_report


@dataclass
class LatencyConfig:
    """One run of the benchmark."""

    data: Path  # the corpus directory (features + train/val jsonl)
    out: Path  # where index_latency.json / .md go
    split: str = "train"  # the sentences searched (held out from the build's val check)
    queries: int = 300  # how many of them (seeded sample)
    k: int = 200  # proposals per query: default_candidates(10), what a default search fetches
    threads: int = 1  # FAISS OpenMP threads while timing
    seed: int = 0


def split_sentences(data: Path, split: str, count: int, seed: int) -> list[str]:
    """A seeded sample of ``count`` distinct sentences of ``data/<split>.jsonl``."""
    with open(data / f"{split}.jsonl", encoding="utf-8") as handle:
        texts = list(dict.fromkeys(json.loads(line)["query"] for line in handle))
    picks = np.random.default_rng(seed).choice(len(texts), min(count, len(texts)), False)
    return [texts[i] for i in sorted(picks)]


def timed_build(data: Path, out: Path, kind: str) -> tuple[float, str]:
    """Seconds of a full ``index build`` of ``kind`` and the chosen index's reason."""
    progress(f"building {kind} into {out}")
    start = time.perf_counter()
    report = build_index(data, out, config=BuildConfig(index_kind=kind, device="cpu"))
    return time.perf_counter() - start, report.index_spec


def search_latency(searcher, queries: np.ndarray, k: int) -> np.ndarray:
    """Milliseconds of each one-query FAISS search, with the index's published params."""
    searcher.index.search(queries[:1], k, searcher.params)
    times = []
    for query in queries:
        start = time.perf_counter()
        searcher.index.search(query[None], k, searcher.params)
        times.append(1000 * (time.perf_counter() - start))
    return np.array(times)


def recall_at(found: np.ndarray, truth: np.ndarray, k: int) -> float:
    """Mean |found top-k & truth top-k| / k."""
    from faiss.contrib.evaluation import knn_intersection_measure

    return float(knn_intersection_measure(found[:, :k], truth[:, :k]))


def measure(config: LatencyConfig, index_dirs: dict[str, Path]) -> list[dict]:
    """One row per index: params, recall vs flat, p50 / p95 (verified before timing)."""
    from ..search.searcher import Searcher

    searchers = {kind: Searcher.open(path, device="cpu") for kind, path in index_dirs.items()}
    sentences = split_sentences(config.data, config.split, config.queries, config.seed)
    queries = searchers["flat"].encoder.encode(sentences)  # (Q, D)
    truth = searchers["flat"].index.search(queries, config.k, searchers["flat"].params)[1]
    rows = []
    for kind, searcher in searchers.items():
        found = searcher.index.search(queries, config.k, searcher.params)[1]
        recall = {k: recall_at(found, truth, k) for k in (100, 200)}
        target = searcher.params.get("recall_target")
        if target is not None and min(recall.values()) < target - 0.01:
            raise AssertionError(f"{kind}: recall {recall} on {config.split} sentences is "
                                 f"below the recorded target {target}")
        with fi.omp_threads(config.threads):
            times = search_latency(searcher, queries, config.k)
        params = {k: v for k, v in searcher.params.items()
                  if k not in ("file", "file_sha256", "file_quick", "shards")}
        rows.append({"index": kind, "kind": searcher.catalog.info().index_type,
                     "params": params, "recall_at_100": recall[100], "recall_at_200": recall[200],
                     "p50_ms": float(np.median(times)), "p95_ms": float(np.percentile(times, 95))})
    return rows


def run(config: LatencyConfig) -> dict:
    """Build flat and auto, measure both, write the report; returns its data."""
    scratch = Path(tempfile.mkdtemp(prefix="moment-search-index-latency-"))
    try:
        dirs = {kind: scratch / kind for kind in ("flat", "auto")}
        builds = {kind: timed_build(config.data, path, kind) for kind, path in dirs.items()}
        rows = measure(config, dirs)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    for row in rows:
        row["build_s"], row["reason"] = builds[row["index"]]
    data = {"config": {**asdict(config), "data": str(config.data), "out": str(config.out)},
            "flat_max_floats": fi.FLAT_MAX_FLOATS, "rows": rows, "machine": machine_info()}
    write_report(config.out, "index_latency", data, markdown(config, data))
    return data


def markdown(config: LatencyConfig, data: dict) -> str:
    """The report text."""
    columns = ["index", "kind", "build_s", "p50_ms", "p95_ms", "recall_at_100", "recall_at_200"]
    command = ("python -m moment_search.benchmarks.index_latency --data "
               f"{config.data} --out {config.out}")
    reasons = "\n".join(f"- **{r['index']}**: {r['reason']}" for r in data["rows"])
    return (f"# Index latency: flat vs auto\n\n`{command}`\n\n"
            f"{markdown_table(data['rows'], columns)}\n\n"
            f"FAISS search only (no encoding, no NMS), k = {config.k}, one query per call, "
            f"{config.threads} FAISS thread(s), {config.queries} {config.split} sentences (the "
            f"build's recall check used val). Recall of the published search parameters "
            f"against the flat index. Build time: the whole `index build` (embedding included, "
            f"the same for both).\n\n{reasons}\n\n{machine_markdown(data['machine'])}\n")


def main(argv: list[str] | None = None) -> None:
    """``python -m moment_search.benchmarks.index_latency --data DIR --out DIR``; an option not
    given keeps the default of :class:`LatencyConfig`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     argument_default=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--split")
    parser.add_argument("--queries", type=int)
    parser.add_argument("--k", type=int)
    parser.add_argument("--threads", type=int)
    run(LatencyConfig(**vars(parser.parse_args(argv))))


if __name__ == "__main__":
    main()
