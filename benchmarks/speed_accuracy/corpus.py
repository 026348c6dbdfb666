"""Corpus table: three ways to answer a query over every video of the split.

* the FVMR index alone (exact flat index of the split's videos, built in a temporary directory);
* the cascade: the index, then a reranker on the top M videos, fused (``search.cascade``);
* the scan: a cross-modal model on every video (:mod:`.brute_force`).

All answer the same queries with k = 100 moments and are scored with the TVR convention (a hit
needs the right video and IoU >= m). Latency is the wall time of one query end to end (the text
encoding included), median and p95 after a warm-up. Before timing: the index's top-1 must equal an
exact scan of its stored vectors for every query; the cascade with fusion weight 0 must give each
reranked moment exactly the reranker's own probability; the scan's chunked scoring must equal
one-video scoring.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from ...data.corpus import Query
from ...data.corpus_dir import open_corpus
from ...eval.metrics import corpus_metrics
from ...indexer.build import BuildConfig, build_index
from ...search.searcher import Searcher
from ..real_corpus import check_against_brute_force
from ..report import progress
from . import brute_force
from .presets import Preset

K = 100  # moments per query (R@100)
INDEX_CHECKS = 20  # queries whose index top-1 is compared with an exact scan


def sample_queries(queries: list[Query], count: int | None, seed: int = 0) -> list[Query]:
    """``count`` queries drawn without replacement (seeded), in split order; all when None."""
    if count is None or count >= len(queries):
        return list(queries)
    chosen = np.sort(np.random.default_rng(seed).choice(len(queries), count, replace=False))
    return [queries[i] for i in chosen]


def latency_summary(values: list[float]) -> dict[str, float]:
    """Median, p95 and mean of per-query milliseconds."""
    return {"ms_p50": float(np.median(values)), "ms_p95": float(np.percentile(values, 95)),
            "ms_mean": float(np.mean(values))}


def as_tuples(moments) -> list[tuple[str, float, float, float]]:
    """Search moments -> ``(video_id, start_s, end_s, score)`` for ``corpus_metrics``."""
    return [(m.video_id, m.start_s, m.end_s, m.score) for m in moments]


def time_search(searcher: Searcher, queries: list[Query], warmup: int, **options
                ) -> tuple[dict, list[float], dict[str, float]]:
    """Predictions, per-query wall ms, and the median of each search step."""
    k = min(K, searcher.n_proposals)
    for query in queries[:warmup]:
        searcher.search(query.text, k=k, **options)
    predictions, wall, steps = {}, [], {}
    for query in queries:
        start = time.perf_counter()
        moments = searcher.search(query.text, k=k, **options)
        wall.append(1000 * (time.perf_counter() - start))
        predictions[query.qid] = as_tuples(moments)
        t = searcher.timings
        for name, value in {"TE": t.encode_ms, "index": t.search_ms, "post": t.post_ms,
                            **{k.removesuffix("_ms"): v for k, v in t.extra.items()}}.items():
            steps.setdefault(name, []).append(value)
    return predictions, wall, {f"{k}_ms_median": float(np.median(v)) for k, v in steps.items()}


def check_index(searcher: Searcher, queries: list[Query]) -> str:
    """RuntimeError unless the index's top-1 equals an exact scan for every checked query."""
    texts = [q.text for q in queries[:INDEX_CHECKS]]
    agree = check_against_brute_force(searcher, texts)
    if agree != len(texts):
        raise RuntimeError(f"index top-1 equals the exact scan for only {agree}/{len(texts)} "
                           f"queries; refusing to time a wrong index")
    return f"index top-1 = exact scan of its stored vectors for {agree}/{len(texts)} queries"


def check_cascade(searcher: Searcher, name: str, query: Query, videos: dict) -> str:
    """With fusion weight 0, every reranked moment's score must be the reranker's probability
    for that window when it scores the video alone."""
    moments = searcher.search(query.text, k=min(10, searcher.n_proposals), rerank=name,
                              rerank_videos=3, rerank_weight=0.0)
    reranker, worst = searcher.rerankers[name], 0.0
    for moment in (m for m in moments if m.stage != "fvmr"):
        own = reranker.score_videos(query.text, [videos[moment.video_id]])[0]
        row = np.argmin(np.abs(own[:, 0] - moment.start_s) + np.abs(own[:, 1] - moment.end_s))
        worst = max(worst, abs(float(own[row, 2]) - moment.score))
    if worst > 1e-4:
        raise RuntimeError(f"cascade with {name} at weight 0 differs from {name} alone by "
                           f"{worst:.2e}; refusing to time it")
    return f"cascade ({name}, weight 0) = {name} alone on its videos (max diff {worst:.1e})"


def row(strategy: str, label: str, videos_scored: int, queries: list[Query], predictions: dict,
        wall: list[float], steps: dict, **extra) -> dict:
    """One corpus-table row."""
    progress(f"corpus: {label}: {np.median(wall):.1f} ms/query p50")
    return {"strategy": strategy, "label": label, "videos_scored_per_query": videos_scored,
            "queries": len(queries), **latency_summary(wall), **steps, **extra,
            **corpus_metrics(predictions, queries)}


def index_rows(searcher: Searcher, queries: list[Query], rerankers: dict, preset: Preset,
               videos: dict, checks: list[str]) -> list[dict]:
    """The index alone, then each reranker on the top M videos for every M of the preset."""
    checks.append(check_index(searcher, queries))
    rows = [row("index", "FVMR index", 0, queries,
                *time_search(searcher, queries, preset.warmup))]
    for name, model_dir in rerankers.items():
        searcher.add_reranker(name, model_dir)
        checks.append(check_cascade(searcher, name, queries[0], videos))
        for m in preset.rerank_videos:
            options = {"rerank": name, "rerank_videos": m, "rerank_weight": preset.rerank_weight}
            rows.append(row("cascade", f"FVMR index + {name} on top {m} videos", m, queries,
                            *time_search(searcher, queries, preset.warmup, **options),
                            reranker=name, M=m, weight=preset.rerank_weight))
    return rows


def scan_row(name: str, reranker, queries: list[Query], videos: list, warmup: int,
             checks: list[str]) -> dict:
    """The cross-modal model ``name`` scanning every video for every query."""
    worst = brute_force.check_chunking(reranker, queries[0].text, videos)
    checks.append(f"{name} scan: chunked = one-video scoring (max diff {worst:.1e})")
    for query in queries[:warmup]:
        brute_force.scan(reranker, query.text, videos, K)
    predictions, wall, steps = {}, [], {}
    for query in queries:
        start = time.perf_counter()
        moments, ms = brute_force.scan(reranker, query.text, videos, K)
        wall.append(1000 * (time.perf_counter() - start))
        predictions[query.qid] = moments
        for step, value in ms.items():
            steps.setdefault(step, []).append(value)
    return row("scan", f"{name} on every video (brute force)", len(videos), queries,
               predictions, wall, {f"{k}_ms_median": float(np.median(v))
                                   for k, v in steps.items()}, reranker=name)


def corpus_rows(data: Path, split: str, fvmr_dir: Path | None, rerankers: dict[str, Path | None],
                preset: Preset, device: str) -> tuple[list[dict], list[str], dict]:
    """Every corpus row, the checks passed, and what the corpus was."""
    # videos without a manifest rate are read at each reranker's training rate
    corpus, store = open_corpus(data, split=split)
    queries = sample_queries(corpus.queries, preset.corpus_queries)
    videos = brute_force.load_videos(corpus, store)
    checks: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        build_index(data, Path(tmp) / "index", fvmr_dir,
                    BuildConfig(split=split, index_kind="flat", device=device))
        searcher = Searcher.open(Path(tmp) / "index", device=device)
        rows = index_rows(searcher, queries, rerankers, preset,
                          {v.video_id: v for v in videos}, checks)
        for name in rerankers:
            rows.append(scan_row(name, searcher.rerankers[name], queries, videos,
                                 preset.warmup, checks))
        about = {"videos": len(corpus.videos), "proposals": searcher.n_proposals,
                 "queries": len(queries), "of_queries": len(corpus.queries),
                 "k": min(K, searcher.n_proposals)}
        searcher.catalog.close()
    return rows, checks, about
