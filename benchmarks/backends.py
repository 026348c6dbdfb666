"""FAISS vs milvus-lite, side by side in one run on the same real-embedding corpus.

The shipped FVMR's proposal embeddings of the 1,000 Charades-STA videos, replicated with noise to
the requested sizes (benchmarks.speed_accuracy.scaling.ReplicatedEmbeddings); val sentences as
queries. For each size: build time, single-query latency p50/p95 (k = 100), recall@100 against
exhaustive search, and bytes on disk, for FAISS (the indexer's auto choice under a 4G budget) and
milvus-lite (HNSW and IVF_FLAT with the same parameters the indexer would give FAISS).

    python -m moment_search.benchmarks.backends --data ../shared/data/charades-sta-clip \\
        --sizes 100000,1000000 --out reports/backends
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..indexer import faiss_index as fi
from ..indexer.backends.milvus_store import MilvusStore
from ..pretrained import default_model_dir
from .corpus_scale import build_measured, exact_neighbours, recall_at
from .report import machine_info, machine_markdown, markdown_table, progress, write_report
from .speed_accuracy.scaling import ReplicatedEmbeddings, real_embeddings

K = 100
MILVUS_KINDS = {"HNSW": "hnsw", "IVF_FLAT": "ivf"}


@dataclass
class BackendsConfig:
    """One run; :func:`main` builds it from the command line."""

    data: Path  # corpus directory (features + annotations)
    out: Path  # report directory
    fvmr: Path | None = None  # FVMR checkpoint whose embeddings are indexed (None: shipped)
    split: str = "val"  # the split whose sentences are the queries
    sizes: tuple[int, ...] = (100_000, 1_000_000)  # vectors per corpus
    milvus: tuple[str, ...] = ("HNSW", "IVF_FLAT")  # milvus-lite index types, of MILVUS_KINDS
    queries: int = 200  # sentences searched (one per call)

    def command(self) -> str:
        """The ``python -m`` command line of this run (recorded in the report)."""
        options = ["--data", self.data, "--out", self.out, "--split", self.split, "--sizes",
                   ",".join(map(str, self.sizes)), "--milvus", ",".join(self.milvus),
                   "--queries", self.queries]
        options += ["--fvmr", self.fvmr] if self.fvmr else []
        return "python -m moment_search.benchmarks.backends " + " ".join(map(str, options))


def single_latency(search, queries: np.ndarray) -> np.ndarray:
    """Milliseconds of each one-query search."""
    search(queries[:1])
    times = []
    for query in queries:
        start = time.perf_counter()
        search(query[None])
        times.append(1000 * (time.perf_counter() - start))
    return np.array(times)


def faiss_row(n: int, data: ReplicatedEmbeddings, queries, truth) -> dict:
    spec = fi.fit_spec_to_data(fi.choose_index(n, data.dim, fi.parse_bytes("4G")), n)
    progress(f"faiss {spec.kind} at {n:,}")
    start = time.perf_counter()
    index, _ = build_measured(spec, n, data)
    build_s = time.perf_counter() - start
    found = fi.search(index, queries, K, spec)[1]
    times = single_latency(lambda q: fi.search(index, q, K, spec), queries)
    return {"backend": "faiss", "index": spec.kind, "params": spec.params, "build_s": build_s,
            "recall_at_100": recall_at(found, truth, K), "p50_ms": float(np.median(times)),
            "p95_ms": float(np.percentile(times, 95)),
            "bytes": int(fi.import_faiss().serialize_index(index).nbytes)}


def milvus_spec(kind: str, n: int) -> fi.IndexSpec:
    if kind == "hnsw":
        return fi.IndexSpec("hnsw", {"M": 32, "ef_construction": fi.HNSW_EF_CONSTRUCTION,
                                     "ef_search": fi.default_ef_search()})
    nlist = fi.nlist_for(n)
    return fi.IndexSpec("ivf", {"nlist": nlist, "nprobe": fi.default_nprobe(nlist)})


def milvus_row(n: int, data: ReplicatedEmbeddings, queries, truth, milvus_type: str,
               scratch: Path) -> dict:
    spec = milvus_spec(MILVUS_KINDS[milvus_type], n)
    progress(f"milvus-lite {milvus_type} at {n:,}")
    folder = Path(tempfile.mkdtemp(dir=scratch))
    start = time.perf_counter()
    store = MilvusStore.create(str(folder / "bench.db"), "bench", data.dim, spec, fresh=True)
    for first, vectors in data.blocks(n):
        ids = np.arange(first, first + len(vectors))
        store.upsert(ids, vectors, [f"v{i // data.per_video}" for i in ids],
                     np.zeros(len(ids)), np.ones(len(ids)))
    store.finish()
    found = store.search(queries, K)[1]  # the first search waits for the index to be built
    build_s = time.perf_counter() - start
    times = single_latency(lambda q: store.search(q, K), queries)
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    store.drop()
    shutil.rmtree(folder, ignore_errors=True)
    return {"backend": "milvus-lite", "index": milvus_type, "params": spec.params,
            "build_s": build_s, "recall_at_100": recall_at(found, truth, K),
            "p50_ms": float(np.median(times)), "p95_ms": float(np.percentile(times, 95)),
            "bytes": int(size)}


def run(config: BackendsConfig) -> dict:
    """Measure FAISS and every milvus-lite type at every size; writes ``backends.json`` and
    ``backends.md`` into ``config.out`` and returns the report."""
    base, queries, _, _ = real_embeddings(config.data, config.fvmr or default_model_dir("fvmr"),
                                          config.split, "cpu")
    queries = np.ascontiguousarray(queries[:config.queries], np.float32)
    data = ReplicatedEmbeddings(base)
    rows = []
    scratch = Path(tempfile.mkdtemp(prefix="moment-search-backends-"))
    try:
        for n in config.sizes:
            truth = exact_neighbours(data, n, queries, K)[1]
            rows.append({"vectors": n, **faiss_row(n, data, queries, truth)})
            for milvus_type in config.milvus:
                rows.append({"vectors": n, **milvus_row(n, data, queries, truth, milvus_type,
                                                        scratch)})
            progress(f"  {rows[-len(config.milvus) - 1:]}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    columns = ["vectors", "backend", "index", "build_s", "p50_ms", "p95_ms", "recall_at_100",
               "bytes"]
    command = config.command()
    text = (f"# FAISS vs milvus-lite\n\n`{command}`\n\n{markdown_table(rows, columns)}\n\n"
            f"{len(queries)} val sentences, k = 100, one query per call; recall against "
            f"exhaustive search.\n\n{machine_markdown(machine_info())}\n")
    report = {"command": command, "rows": rows, "machine": machine_info()}
    write_report(config.out, "backends", report, text)
    return report


def main(argv: list[str] | None = None) -> None:
    """Command line (see the module docstring); an option not given keeps the default of
    :class:`BackendsConfig`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     argument_default=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--fvmr", type=Path, help="default: the shipped model")
    parser.add_argument("--split")
    parser.add_argument("--sizes", type=lambda text: tuple(map(int, text.split(","))))
    parser.add_argument("--milvus", type=lambda text: tuple(text.split(",")))
    parser.add_argument("--queries", type=int)
    run(BackendsConfig(**vars(parser.parse_args(argv))))


if __name__ == "__main__":
    main()
