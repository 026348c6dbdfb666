"""Single-video table: every model answers each query in its own video, one step at a time.

TE, CML, NMS and ALL (their sum) are milliseconds per query per video, median and p95 over the
queries of the split after a warm-up (see ``eval.stepwise``); accuracy is scored on the
predictions of that very timed pass, so the timed code is the scored code. Before the pass, the
first answers are checked for being finite windows inside their video.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...data.corpus_dir import open_corpus
from ...errors import InputError
from ...eval.runner import load_localizer
from ...eval.stepwise import localize_stepwise
from ...metrics import single_video_metrics
from ..report import progress

K = 10  # windows kept per query (R@5 needs 5)


def require_stepwise(name: str, localizer) -> None:
    """ValueError unless ``localizer`` can be timed step by step."""
    if not all(hasattr(localizer, a) for a in ("prepare", "encode_query", "score_video")):
        raise InputError(f"model {name!r} cannot be timed step by step: it has no prepare / "
                         f"encode_query / score_video (see moment_search.eval.stepwise)")


def check_answers(name: str, predictions: dict[str, np.ndarray], durations: dict[str, float]
                  ) -> None:
    """RuntimeError naming the query whose windows are not finite, ordered spans in its video."""
    for qid, windows in predictions.items():
        ok = (len(windows) > 0 and np.isfinite(windows).all()
              and (windows[:, 0] >= -1e-6).all() and (windows[:, 0] < windows[:, 1]).all()
              and (windows[:, 1] <= durations[qid] + 1e-3).all())
        if not ok:
            raise RuntimeError(f"{name}: query {qid} got malformed windows {windows[:3]}; "
                               f"refusing to time a broken model")


def model_row(name: str, model_dir: Path | None, data: Path, split: str, device: str,
              warmup: int) -> dict:
    """Load, check, time and score one model; one table row."""
    progress(f"single video: {name}")
    localizer = load_localizer(name, data, model_dir, device)
    require_stepwise(name, localizer)
    corpus, store = open_corpus(data, split=split,
                                feature_rate=getattr(localizer, "feature_rate", None))
    durations = {q.qid: corpus.video(q.video_id).duration for q in corpus.queries}
    sample = corpus.queries[:warmup + 1]
    check_answers(name, localize_stepwise(localizer, sample, corpus, store, K, 0)[0], durations)
    predictions, times = localize_stepwise(localizer, corpus.queries, corpus, store, K, warmup)
    check_answers(name, predictions, durations)
    return {"model": name, "checkpoint": str(model_dir) if model_dir else "shipped",
            "queries": len(corpus.queries), **times.summary(),
            **single_video_metrics(predictions, corpus.queries)}


def single_video_rows(data: Path, split: str, models: dict[str, Path | None], device: str,
                      warmup: int) -> list[dict]:
    """The prior, then every model, in order."""
    return [model_row(name, model_dir, data, split, device, warmup)
            for name, model_dir in {"prior": None, **models}.items()]
