"""Corpus table: three ways to answer a query over every video of the split.

* the FVMR index alone (exact flat index of the split's videos, built in a temporary directory);
* the cascade: the index, then a reranker on the top M videos, fused (``search.cascade``);
* the scan: a cross-modal model on every video (:mod:`.brute_force`).

All answer the same queries with k = 100 moments and are scored with the TVR convention (a hit
needs the right video and IoU >= m). Latency is the wall time of one query end to end (the text
encoding included), median and p95 after a warm-up; the sentence caches are emptied before each
timed pass. Before timing: the index's stored vectors must be the model's moment embeddings and
its top-1 an exact scan of them; the cascade's reranked moments must carry the reranker's own
probability at fusion weight 0 and FVMR's at weight 1 (both recomputed apart, windows matched
exactly); the scan's chunked scoring must equal one-video scoring.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from ...data.corpus import Query, Video
from ...data.corpus_dir import open_corpus
from ...eval.stepwise import timed_pass
from ...indexer.build import BuildConfig, build_index
from ...metrics import corpus_metrics
from ...search.cascade import candidate_videos, rerank_video
from ...search.rerank import RerankVideo, fast_scores_for, log_odds
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

    def answer(query: Query):
        moments = searcher.search(query.text, k=k, **options)
        t = searcher.timings
        return as_tuples(moments), {"TE": t.encode_ms, "index": t.search_ms, "post": t.post_ms,
                                    **{e.removesuffix("_ms"): v for e, v in t.extra.items()}}

    outputs, wall, steps = timed_pass(answer, queries[:warmup], queries)
    return dict(zip([q.qid for q in queries], outputs, strict=True)), wall, medians(steps)


def medians(steps: dict[str, list[float]]) -> dict[str, float]:
    """``<step>_ms_median`` of each step's per-query milliseconds."""
    return {f"{step}_ms_median": float(np.median(v)) for step, v in steps.items()}


def fresh_embeddings(searcher: Searcher, video: RerankVideo) -> np.ndarray:
    """(P, D) moment embeddings of a video computed now by the index's model."""
    meta = Video(video.video_id, video.duration, None, video.feature_rate)
    return searcher.moment_encoder().embed_video(video.features, meta)


def check_index(searcher: Searcher, queries: list[Query], video_ids: list[str]) -> str:
    """RuntimeError unless the stored vectors are the model's moment embeddings of their videos
    and the index's top-1 equals an exact scan of them for every checked query."""
    worst = 0.0
    for record in (searcher.catalog.video(vid) for vid in video_ids[:INDEX_CHECKS]):
        stored = searcher.index.stored_vectors(record.first_id, record.n_proposals)
        fresh = fresh_embeddings(searcher, rerank_video(record))
        worst = max(worst, float(np.abs(stored - fresh).max()))
    texts = [q.text for q in queries[:INDEX_CHECKS]]
    agree = check_against_brute_force(searcher, texts)
    if worst > 1e-4 or agree != len(texts):
        raise RuntimeError(f"index check failed: stored vectors differ from the model's by "
                           f"{worst:.2e}; top-1 = exact scan for {agree}/{len(texts)} queries")
    return (f"index: stored vectors = the model's moment embeddings (max diff {worst:.1e}, "
            f"{INDEX_CHECKS} videos); top-1 = exact scan for {agree}/{len(texts)} queries")


def expected_score(searcher: Searcher, name: str, text: str, embedded: np.ndarray, moment,
                   weight: float) -> float | None:
    """A reranked moment's fused score computed apart: at weight 0 the log-odds of the reranker
    alone on the video (its moment with the same span; None when it has none), at weight 1 FVMR's
    score from fresh moment embeddings, of the proposal that overlaps the moment best (the
    cascade's rule, ``rerank.fast_scores_for``: the same cell for a reranker on FVMR's grid such
    as PLN, the nearest cell for one with its own windows such as FIAN)."""
    video = candidate_videos(searcher, [moment.video_id])[0]
    span = np.array([[moment.start_s, moment.end_s]])
    if weight == 0.0:
        scored = searcher.rerankers[name].score_videos(text, [video])[0]
        match = np.flatnonzero(np.abs(scored[:, :2] - span).max(1) < 1e-4)
        return float(log_odds(scored[match[0], 2])) if len(match) else None
    logits = fresh_embeddings(searcher, video) @ embedded
    spans = searcher.moment_encoder().spans(video.duration)
    return float(fast_scores_for(span, spans, logits)[0])


def cascade_gap(searcher: Searcher, name: str, query: Query, weight: float
                ) -> tuple[float, int]:
    """Largest difference between each reranked moment's fused score and its expected value
    (:func:`expected_score`) at ``weight`` 0 or 1, and how many moments were checked."""
    moments = searcher.search(query.text, k=min(10, searcher.n_proposals), rerank=name,
                              rerank_videos=3, rerank_weight=weight)
    embedded = searcher.encoder.encode([query.text])[0]
    worst, checked = 0.0, 0
    for moment in (m for m in moments if m.stage != "fvmr"):
        expected = expected_score(searcher, name, query.text, embedded, moment, weight)
        if expected is None:
            return np.inf, checked
        worst = max(worst, abs(expected - moment.score))
        checked += 1
    return worst, checked


def check_cascade(searcher: Searcher, name: str, query: Query) -> str:
    """At fusion weight 0 the cascade's moments carry the reranker's own probabilities, at weight
    1 the fast path's (both recomputed apart); RuntimeError otherwise or if nothing was checked."""
    gaps = {w: cascade_gap(searcher, name, query, w) for w in (0.0, 1.0)}
    if any(gap > 1e-4 or checked == 0 for gap, checked in gaps.values()):
        raise RuntimeError(f"cascade with {name} does not give the expected scores "
                           f"(weight: (max diff, moments checked) = {gaps}); refusing to time it")
    return (f"cascade ({name}): weight 0 = {name} alone (max diff {gaps[0.0][0]:.1e}), weight 1 "
            f"= FVMR recomputed (max diff {gaps[1.0][0]:.1e})")


def row(strategy: str, label: str, videos_scored: int, queries: list[Query], predictions: dict,
        wall: list[float], steps: dict, **extra) -> dict:
    """One corpus-table row."""
    progress(f"corpus: {label}: {np.median(wall):.1f} ms/query p50")
    return {"strategy": strategy, "label": label, "videos_scored_per_query": videos_scored,
            "queries": len(queries), **latency_summary(wall), **steps, **extra,
            **corpus_metrics(predictions, queries)}


def index_rows(searcher: Searcher, queries: list[Query], rerankers: dict, preset: Preset,
               checks: list[str]) -> list[dict]:
    """The index alone, then each reranker on the top M videos for every M of the preset."""
    rows = [row("index", "FVMR index", 0, queries,
                *time_search(searcher, queries, preset.warmup))]
    for name, model_dir in rerankers.items():
        searcher.add_reranker(name, model_dir)
        checks.append(check_cascade(searcher, name, queries[0]))
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
    outputs, wall, steps = timed_pass(
        lambda query: brute_force.scan(reranker, query.text, videos, K), queries[:warmup],
        queries)
    predictions = dict(zip([q.qid for q in queries], outputs, strict=True))
    return row("scan", f"{name} on every video (brute force)", len(videos), queries,
               predictions, wall, medians(steps), reranker=name)


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
        checks.append(check_index(searcher, queries, list(corpus.videos)))
        rows = index_rows(searcher, queries, rerankers, preset, checks)
        for name in rerankers:
            rows.append(scan_row(name, searcher.rerankers[name], queries, videos,
                                 preset.warmup, checks))
        about = {"videos": len(corpus.videos), "proposals": searcher.n_proposals,
                 "queries": len(queries), "of_queries": len(corpus.queries),
                 "k": min(K, searcher.n_proposals)}
        searcher.catalog.close()
    return rows, checks, about
