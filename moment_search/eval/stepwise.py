"""Single-video localization step by step, every step timed per query: TE, CML and NMS.

A *stepwise* model answers one query in one video in three steps, as the FVMR paper's Table 1
splits the cost:

* ``prepare(corpus, store, video_ids)``: offline, per video, not timed (FVMR embeds the moments
  of every video here, as its indexer does; PLN loads the raw features into memory);
* ``encode_query(text)``: TE, the text encoding, once per query;
* ``score_video(query, video_id)``: CML, the cross-modal scoring of every proposal of one video,
  a (P, 3) ``[start_s, end_s, score]`` array;

then NMS + top k (shared code, :func:`rank_moments`) ranks the scores with the model's
``nms_threshold``. Every model of the speed-accuracy report is timed by this one loop, so their
columns are comparable. The first ``warmup`` queries run once untimed before the timed pass
(first calls load kernels), then every sentence cache is emptied so that TE is what a query never
seen before costs.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ..data.corpus import Corpus, Query
from ..data.features import FeatureStore
from ..search.localize import rank_moments

STEPS = ("TE", "CML", "NMS")


def clear_token_caches() -> None:
    """Empty every TokenEncoder's sentence cache (none exists unless its module is imported, and
    importing it would import torch for nothing)."""
    tokens = sys.modules.get("moment_search.text.tokens")
    if tokens is not None:
        tokens.clear_all_caches()


class StepwiseModel(Protocol):
    """A single-video localizer split into timed steps (see the module docstring)."""

    nms_threshold: float

    def prepare(self, corpus: Corpus, store: FeatureStore, video_ids: list[str]) -> None:
        """Offline per-video work for ``video_ids`` (not timed)."""
        ...

    def encode_query(self, text: str) -> Any:
        """TE: the query's text encoding, in whatever form :meth:`score_video` takes."""
        ...

    def score_video(self, query: Any, video_id: str) -> np.ndarray:
        """CML: (P, 3) ``[start_s, end_s, score]`` over every proposal of one prepared video."""
        ...


@dataclass
class StepTimes:
    """Milliseconds per query of each step (one value per timed query)."""

    steps: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STEPS})

    def totals(self) -> list[float]:
        """ALL per query: TE + CML + NMS, what one query on one video costs end to end."""
        return [sum(parts) for parts in zip(*self.steps.values(), strict=True)]

    def summary(self) -> dict[str, float]:
        """``<step>_ms_median`` and ``<step>_ms_p95`` for TE, CML, NMS and ALL."""
        out = {}
        for step, values in {**self.steps, "ALL": self.totals()}.items():
            if values:
                out[f"{step}_ms_median"] = float(np.median(values))
                out[f"{step}_ms_p95"] = float(np.percentile(values, 95))
        return out


def synchronize() -> None:
    """Wait for queued CUDA work so that wall-clock step times include it (no-op on the CPU;
    torch is not imported for models that never loaded it)."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


class Stopwatch:
    """Milliseconds of consecutive steps: ``lap(name)`` closes the step that began at the
    previous lap (or at creation), after waiting for queued CUDA work."""

    def __init__(self):
        self.ms: dict[str, float] = {}
        self._start = time.perf_counter()

    def lap(self, step: str) -> None:
        """Record the step that just ended."""
        synchronize()
        now = time.perf_counter()
        self.ms[step] = 1000 * (now - self._start)
        self._start = now


Answer = Callable[[Any], tuple[Any, dict[str, float]]]  # item -> (output, {step: ms})


def timed_pass(answer: Answer, warmup: Sequence, timed: Sequence
               ) -> tuple[list, list[float], dict[str, list[float]]]:
    """Run ``answer`` untimed on ``warmup``, then on each of ``timed`` with the sentence caches
    emptied first (every item pays its text encoding, as a query never seen before does).

    Returns:
        the outputs of the timed items, their wall milliseconds, and each step's milliseconds
        as ``answer`` reported them.
    """
    for item in warmup:
        answer(item)
    clear_token_caches()
    outputs, wall, steps = [], [], {}
    for item in timed:
        start = time.perf_counter()
        output, step_ms = answer(item)
        wall.append(1000 * (time.perf_counter() - start))
        outputs.append(output)
        for step, value in step_ms.items():
            steps.setdefault(step, []).append(value)
    return outputs, wall, steps


def _answer(model: StepwiseModel, query: Query, k: int) -> tuple[np.ndarray, dict[str, float]]:
    watch = Stopwatch()
    encoded = model.encode_query(query.text)
    watch.lap("TE")
    scored = model.score_video(encoded, query.video_id)
    watch.lap("CML")
    ranked = rank_moments(scored[:, 2], scored[:, :2], k, model.nms_threshold)
    watch.lap("NMS")
    return ranked, watch.ms


def localize_stepwise(model: StepwiseModel, queries: list[Query], corpus: Corpus,
                      store: FeatureStore, k: int, warmup: int = 3
                      ) -> tuple[dict[str, np.ndarray], StepTimes]:
    """Answer every query in its own video, timing each step.

    Returns:
        ``qid -> (K, 3) [start_s, end_s, score]`` best first, and the per-query step times.
    """
    model.prepare(corpus, store, list(dict.fromkeys(q.video_id for q in queries)))
    ranked, _, steps = timed_pass(lambda query: _answer(model, query, k), queries[:warmup],
                                  queries)
    times = StepTimes({step: steps.get(step, []) for step in STEPS})
    return dict(zip([q.qid for q in queries], ranked, strict=True)), times


class StepwiseLocalizer:
    """Mixin: ``localize`` (the :class:`~moment_search.eval.runner.Localizer` call) through
    :func:`localize_stepwise`, leaving the step summary in ``timings``."""

    timings: dict[str, float]

    def localize(self, queries: list[Query], corpus: Corpus, store: FeatureStore, k: int
                 ) -> dict[str, np.ndarray]:
        """``qid -> (K, 3) [start_s, end_s, score]`` for each query in its own video."""
        predictions, times = localize_stepwise(self, queries, corpus, store, k)
        self.timings = times.summary()
        return predictions

