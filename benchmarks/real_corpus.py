"""Real-corpus benchmark: build an index of a feature corpus and time queries against it.

Measures the index build (wall time, videos/s, proposals/s), then answers every query of an
annotation split one at a time, timing text encoding (TE: MiniLM + BiLSTM + phi_s) and search
(CML: FAISS inner products + per-video NMS) separately, and in batches of 32. Before timing, it
checks that the index's top hit equals brute-force search over the stored proposals.

    moment-search benchmark real-corpus --data ../shared/data/charades-sta-clip \\
        --split val --out reports/real_corpus
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.corpus_dir import open_corpus
from ..indexer.build import BuildConfig, build_index
from ..search.searcher import Searcher
from .report import machine_info, machine_markdown, markdown_table, write_report


@dataclass
class RealCorpusConfig:
    """One run; ``moment-search benchmark real-corpus`` builds it from its options."""

    data: Path  # corpus directory (features + annotations)
    out: Path  # report directory
    split: str = "val"  # the split whose queries are timed
    k: int = 10  # moments per query
    index_kind: str = "flat"  # flat | hnsw (its top hits are checked against brute force)


def percentiles(values: list[float]) -> dict[str, float]:
    """p50 and p95 of a list of milliseconds."""
    return {"p50_ms": float(np.percentile(values, 50)), "p95_ms": float(np.percentile(values, 95))}


def every_stored_vector(index) -> tuple[np.ndarray, np.ndarray]:
    """Every vector of an id-mapped index (flat, HNSW) and its id, by reconstruction (a GPU
    index is read back through a CPU copy)."""
    import faiss

    from ..indexer.faiss_index import to_cpu

    index = to_cpu(index)
    if not hasattr(index, "id_map"):
        raise ValueError("the brute-force check needs a flat or HNSW (id-mapped) index")
    inner = faiss.downcast_index(index.index)
    return inner.reconstruct_n(0, inner.ntotal), faiss.vector_to_array(index.id_map)


def check_against_brute_force(searcher: Searcher, texts: list[str]) -> int:
    """Top-1 proposal of the search vs an explicit scan of every stored vector; agreements."""
    vectors, ids = every_stored_vector(searcher.index.faiss)
    agree = 0
    for text in texts:
        best = int(ids[np.argmax(vectors @ searcher.encoder.encode([text])[0])])
        agree += int(searcher.search(text, k=1, nms=1.0)[0].proposal_id == best)
    return agree


def time_queries(searcher: Searcher, texts: list[str], k: int) -> dict:
    """TE and CML per query (one at a time), and per query in batches of 32."""
    searcher.search(texts[0], k=k)  # warm-up: first MiniLM call, FAISS pages
    te, cml = [], []
    for text in texts:
        searcher.search(text, k=k)
        te.append(searcher.timings.encode_ms)
        cml.append(searcher.timings.search_ms + searcher.timings.post_ms)
    batched = []
    for start in range(0, len(texts) - 31, 32):
        begin = time.perf_counter()
        searcher.search_many(texts[start:start + 32], k=k)
        batched.append(1000 * (time.perf_counter() - begin) / 32)
    return {"TE": percentiles(te), "CML": percentiles(cml),
            "ALL": percentiles([a + b for a, b in zip(te, cml, strict=True)]),
            "batch32_per_query": percentiles(batched) if batched else None}


def run(config: RealCorpusConfig) -> dict:
    """Build, verify, time; write ``real_corpus.json`` and ``real_corpus.md``."""
    data, split, k = config.data, config.split, config.k
    corpus, _ = open_corpus(data, split=split)
    texts = [q.text for q in corpus.queries]
    with tempfile.TemporaryDirectory() as tmp:
        begin = time.perf_counter()
        report = build_index(data, Path(tmp) / "index",
                             config=BuildConfig(index_kind=config.index_kind))
        build_s = time.perf_counter() - begin
        searcher = Searcher.open(Path(tmp) / "index")
        checked = texts[:50]
        agree = check_against_brute_force(searcher, checked)
        timings = time_queries(searcher, texts, k)
    result = {"data": str(data), "split": split, "videos": report.n_videos,
              "proposals": report.n_proposals, "index": report.index_spec,
              "build_s": build_s, "videos_per_s": report.n_videos / build_s,
              "proposals_per_s": report.n_proposals / build_s, "queries": len(texts), "k": k,
              "top1_agrees_with_brute_force": f"{agree}/{len(checked)}", **timings,
              "machine": machine_info()}
    write_report(config.out, "real_corpus", result, markdown(result))
    return result


def markdown(result: dict) -> str:
    """The build line and the latency table."""
    rows = [{"step": name, **result[name]} for name in ("TE", "CML", "ALL")]
    if result["batch32_per_query"]:
        rows.append({"step": "batch of 32, per query", **result["batch32_per_query"]})
    return "\n\n".join([
        f"Index build: {result['videos']} videos, {result['proposals']:,} proposals in "
        f"{result['build_s']:.1f} s ({result['videos_per_s']:.0f} videos/s, "
        f"{result['proposals_per_s']:,.0f} proposals/s); {result['index']}.",
        f"Queries: the {result['queries']} sentences of the {result['split']} split, k = "
        f"{result['k']}; index top-1 = brute-force top-1 for "
        f"{result['top1_agrees_with_brute_force']} checked queries.",
        markdown_table(rows, ["step", "p50_ms", "p95_ms"]),
        machine_markdown(result["machine"]),
    ])
