"""Run a named localizer on every query of a split, write its predictions, score them.

Every ``moment-search evaluate model NAME`` is a name of the registry
(``registry.list_localizers``): its loader ``(data_dir, model_dir, device) -> Localizer`` builds
an object whose ``localize`` answers a batch of queries with ranked ``[start_s, end_s, score]``
windows in their own video.
A plug-in joins with ``registry.register_localizer``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from ..data.corpus import Corpus, Query
from ..data.corpus_dir import open_corpus, read_split
from ..data.features import FeatureStore
from ..data.predictions import write_single_predictions
from ..registry import list_localizers, localizer_loader
from .average_precision import single_video_report
from .controls import apply_control
from .prior import PriorBaseline
from .stepwise import StepwiseLocalizer


class Localizer(Protocol):
    """Single-video moment localization: one ranked window list per query."""

    def localize(
        self, queries: list[Query], corpus: Corpus, store: FeatureStore, k: int
    ) -> dict[str, np.ndarray]:
        """``qid -> (K, 3)`` array of ``[start_s, end_s, score]``, best first, K <= k."""
        ...


@dataclass
class EvalResult:
    """What ``evaluate model`` measured."""

    model: str
    split: str
    metrics: dict[str, float]
    timings: dict[str, float] = field(default_factory=dict)
    predictions_path: Path | None = None


def model_names() -> list[str]:
    """Every name ``evaluate model`` accepts (``registry.list_localizers``)."""
    return list_localizers()


def load_localizer(name: str, data_dir: Path, model_dir: Path | None, device: str = "cpu"
                   ) -> Localizer:
    """The localizer ``name`` with its torch model on ``device``.

    Raises:
        UnknownNameError: not a name of the registry (lists the known ones).
    """
    loader = localizer_loader(name)
    return loader(Path(data_dir), None if model_dir is None else Path(model_dir), device)


def evaluate_model(
    name: str,
    data_dir: str | Path,
    split: str = "val",
    model_dir: str | Path | None = None,
    predictions_path: str | Path | None = None,
    k: int = 10,
    control: str | None = None,
    device: str = "cpu",
) -> EvalResult:
    """Localize every query of ``split`` with model ``name`` and score it.

    Args:
        name: a registered localizer (``prior``, ``fvmr``...).
        data_dir: the corpus directory with ``<split>.jsonl`` and features.
        split: the annotation split to answer.
        model_dir: a checkpoint directory; None uses the model's default.
        predictions_path: where to write QVHighlights-style predictions, qids in the type the
            annotations wrote them (None: not written).
        k: windows kept per query.
        control: ``shuffled-video`` or ``shuffled-query`` (see ``controls``), or None.
        device: where the model runs (``auto`` | ``cpu`` | ``cuda[:N]``).

    Returns:
        An :class:`EvalResult` with R@n, IoU=m, mIoU and moment_detr's mAP@0.5, mAP@0.75 and mAP
            (percent; see ``average_precision``), ``ms_per_query`` (the whole
        run's wall time over the queries: per-video preparation and warm-up included) and the
        model's own step timings (see ``stepwise``).
    """
    localizer = load_localizer(name, Path(data_dir), model_dir, device)
    # videos are read at the feature rate the model was trained with (None: spread)
    rate = getattr(localizer, "feature_rate", None)
    corpus, store = open_corpus(data_dir, split=split, feature_rate=rate)
    corpus, store = apply_control(corpus, store, control)
    start = time.perf_counter()
    predictions = localizer.localize(corpus.queries, corpus, store, k)
    elapsed = time.perf_counter() - start
    timings = {"ms_per_query": 1000 * elapsed / max(1, len(corpus.queries))}
    timings.update(getattr(localizer, "timings", {}))
    path = None
    if predictions_path is not None:
        path = Path(predictions_path)
        write_single_predictions(path, predictions)
    metrics = single_video_report(predictions, corpus.queries)
    return EvalResult(name if control is None else f"{name} ({control})", split, metrics,
                      timings, path)


class PriorLocalizer(StepwiseLocalizer):
    """The prior baseline as a localizer: the same ranked positions for every video (no text,
    no features: TE does nothing and CML scales the positions to the video's duration)."""

    nms_threshold = 1.0  # the prior's positions are already its ranked picks

    def __init__(self, prior: PriorBaseline):
        self.prior = prior
        self.durations: dict[str, float] = {}
        self.timings: dict[str, float] = {}

    def prepare(self, corpus: Corpus, store: FeatureStore, video_ids: list[str]) -> None:
        """Remember each video's duration."""
        self.durations.update({vid: corpus.video(vid).duration for vid in video_ids})

    def encode_query(self, text: str) -> None:
        """The prior ignores the sentence."""
        return None

    def score_video(self, query: None, video_id: str) -> np.ndarray:
        """Every prior position in seconds with its frequency score, (K, 3)."""
        return self.prior.predict(self.durations[video_id], len(self.prior.scores))


def load_prior(data_dir: Path, model_dir: Path | None, device: str = "cpu") -> PriorLocalizer:
    """``prior.json`` from ``model_dir``, or the prior fitted on the train split of ``data_dir``
    (its annotations only: the train videos' features need not be there)."""
    if model_dir is not None:
        return PriorLocalizer(PriorBaseline.load(model_dir / "prior.json"))
    train = read_split(data_dir, "train")
    durations = {vid: v.duration for vid, v in train.videos.items()}
    return PriorLocalizer(PriorBaseline.fit(train.queries, durations))
