"""Corpus statistics: counts; distributions of durations, moment lengths, query lengths."""

from __future__ import annotations

import numpy as np

from .corpus import Corpus

PERCENTILES = (0, 10, 25, 50, 75, 90, 100)


def describe(values: np.ndarray) -> dict[str, float]:
    """Mean and percentiles (p0 = min, p100 = max) of a 1-D array; empty -> {}."""
    if values.size == 0:
        return {}
    summary = {"mean": float(values.mean())}
    for p, v in zip(PERCENTILES, np.percentile(values, PERCENTILES), strict=True):
        summary[f"p{p}"] = float(v)
    return summary


def corpus_stats(corpus: Corpus) -> dict[str, object]:
    """Counts and distributions of a corpus.

    Returns:
        ``{"videos", "queries", "windows", "duration_s", "moment_s", "moment_fraction",
        "query_words"}``: counts, then :func:`describe` summaries (seconds; fraction of the video).
    """
    durations = np.array([v.duration for v in corpus], dtype=np.float64)
    lengths, fractions = [], []
    for query in corpus.queries:
        duration = corpus.videos[query.video_id].duration if query.video_id in corpus.videos else 0
        for start, end in query.windows:
            lengths.append(end - start)
            if duration > 0:
                fractions.append((end - start) / duration)
    words = np.array([len(q.text.split()) for q in corpus.queries], dtype=np.float64)
    return {
        "videos": len(corpus),
        "queries": len(corpus.queries),
        "windows": len(lengths),
        "duration_s": describe(durations),
        "moment_s": describe(np.array(lengths)),
        "moment_fraction": describe(np.array(fractions)),
        "query_words": describe(words),
    }
