"""A reranker's cascade fusion weight w chosen by cross-validation on train folds.

For each fold corpus (``moment-search data fold``: the fold is its val split), a search
checkpoint and a reranker checkpoint, both trained without the fold, answer the fold's sentences
over the fold's videos with the real indexer and ``Searcher``: the index alone, then the cascade
(the reranker on the top ``videos`` videos, fused ``w * p + (1 - w) * logit(r)``: ``rerank.fuse``)
for each w.
The rule, fixed before the runs: the w with the best mean over folds of ``metric``. The val split
is not read: every corpus must be a different fold of one cut of a train split, and every
checkpoint is checked against its fold before any is evaluated. ``--write-model`` copies the
reranker trained on all of train (``--model``, e.g. the shipped one) with the chosen w stored as
its ``fusion_weight``, the cascade's default for it.

    moment-search benchmark cascade-cv --reranker drn --fold-data runs/folds/f0 \\
        --fold-data runs/folds/f1 --search runs/fold-priors/fold-0 \\
        --search runs/fold-priors/fold-1 \\
        --fold-model runs/drn-f0/best --fold-model runs/drn-f1/best \\
        --model runs/drn/best --write-model runs/drn-w --out reports/drn_cascade_cv
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..search.localize import CORPUS_PER_VIDEO
from ..search.searcher import SearchOptions
from ..train.folds import check_fold_checkpoint, check_fold_corpora, trained_fold
from ..train.loop import selection_score
from ..train.ship import write_shipped
from .corpus_cv import CorpusCVConfig
from .fvmr_eval import CORPUS_COLUMNS, corpus_rows
from .report import machine_info, markdown_table, progress, write_report

INDEX_ALONE = "index alone"


@dataclass
class CascadeCVConfig:
    """One run; ``moment-search benchmark cascade-cv`` builds it from its options."""

    out: Path  # report directory
    reranker: str  # the reranker's registry name
    fold_data: tuple[Path, ...]  # fold corpus directories
    search: tuple[Path, ...]  # a search checkpoint trained without each fold
    fold_models: tuple[Path, ...]  # a reranker checkpoint trained without each fold
    weights: tuple[float, ...] = (0.1, 0.25, 0.5, 0.75, 0.9, 1.0)  # candidate w (the fast path's)
    videos: int = SearchOptions.rerank_videos  # M: videos the reranker rescores
    metric: str = CorpusCVConfig.metric  # what the folds choose by
    model: Path | None = None  # the reranker trained on all of train (for write_model)
    write_model: Path | None = None  # write ``model`` with the chosen w stored here

    def __post_init__(self) -> None:
        n = len(self.fold_data)
        if n < 2 or len(self.search) != n or len(self.fold_models) != n:
            raise InputError(f"give one --search and one --fold-model per --fold-data, two "
                             f"folds or more; got {n} folds, {len(self.search)} search and "
                             f"{len(self.fold_models)} reranker checkpoints",
                             parameter="fold_data")
        if not self.weights or any(not 0.0 <= w <= 1.0 for w in self.weights):
            raise InputError(f"weights must be one or more numbers in [0, 1], got "
                             f"{self.weights}", parameter="weights")
        if self.write_model is not None and self.model is None:
            raise InputError("--write-model needs --model (the reranker trained on all of train)",
                             parameter="write_model")


def check_inputs(config: CascadeCVConfig) -> None:
    """Everything that can be checked before any index is built.

    Raises:
        InputError: not a reranker's name, corpora that are not different folds of one train
            split, a fold checkpoint trained on its fold, or a ``--model`` that was itself
            trained on a fold.
        DataError: a checkpoint that is missing or of another model (``read_config``).
    """
    from ..registry import model_class, reranker_class

    reranker_class(config.reranker)
    checkpoint = model_class(config.reranker)
    check_fold_corpora(config.fold_data)
    for data, search, reranker in zip(config.fold_data, config.search, config.fold_models,
                                      strict=True):
        checkpoint.read_config(reranker)
        check_fold_checkpoint(data, search)
        check_fold_checkpoint(data, reranker)
    if config.model is not None:
        checkpoint.read_config(config.model)
        fold = trained_fold(config.model)
        if fold is not None:
            raise InputError(f"{config.model}: trained with --fold {fold}; --model is the "
                             f"reranker trained on all of train", parameter="model")


def run(config: CascadeCVConfig) -> dict:
    """Every fold's rows, the mean per w, the choice; writes ``cascade_cv.json``/``.md``."""
    check_inputs(config)
    per_fold = []
    for i, (data, search, reranker) in enumerate(zip(config.fold_data, config.search,
                                                     config.fold_models, strict=True)):
        progress(f"fold {i + 1}/{len(config.fold_data)}")
        found = corpus_rows("search", search, Path(data), "val", {config.reranker: reranker},
                            (config.videos,), config.weights)
        per_fold.append([{"setting": label(r.get("rerank_weight")), "w": r.get("rerank_weight"),
                          "score": selection_score(r, config.metric), **r} for r in found])
    means = [mean_row([fold[k] for fold in per_fold]) for k in range(len(per_fold[0]))]
    chosen = max((m for m in means if m["w"] is not None), key=lambda m: m["score"])
    report = {"reranker": config.reranker, "videos": config.videos, "metric": config.metric,
              "per_video": CORPUS_PER_VIDEO,  # the searcher's default cap these runs had
              "fold_data": [str(p) for p in config.fold_data],
              "search": [str(p) for p in config.search],
              "fold_models": [str(p) for p in config.fold_models],
              "model": str(config.model) if config.model else None,
              "folds": per_fold, "rows": means, "chosen_weight": chosen["w"],
              "machine": machine_info()}
    write_report(config.out, "cascade_cv", report, markdown(report))
    if config.write_model:
        write_shipped(Path(config.model), Path(config.write_model), chosen["w"])
    return report


def label(weight: float | None) -> str:
    """The setting's name in the tables."""
    return INDEX_ALONE if weight is None else f"w = {weight:g}"


def mean_row(rows: list[dict], keep: tuple[str, ...] = ("setting", "w")) -> dict:
    """One setting's mean over folds of the score and every corpus column, with each fold's
    score beside it and the fields ``keep`` of its first fold."""
    return {**{name: rows[0][name] for name in keep},
            "score": statistics.fmean(r["score"] for r in rows),
            **{f"fold {i} score": r["score"] for i, r in enumerate(rows)},
            **{name: statistics.fmean(r[name] for r in rows) for name in CORPUS_COLUMNS}}


def markdown(report: dict) -> str:
    """The mean table (each fold's score beside it) and the choice."""
    folds = [f"fold {i} score" for i in range(len(report["fold_data"]))]
    return "\n".join([
        f"# Cascade fusion weight of {report['reranker']}, chosen on train folds",
        "",
        f"Corpus search on {len(report['fold_data'])} video-disjoint folds of train (percent, "
        f"mean over folds): each fold's sentences over its own videos, the search and "
        f"{report['reranker']} checkpoints trained without the fold, {report['reranker']} on "
        f"the top {report['videos']} videos. The rule, fixed before the runs: the w (weight of "
        f"the fast path) with the best mean {report['metric']} (score).",
        "",
        markdown_table(report["rows"], ["setting", "score", *folds, *CORPUS_COLUMNS]),
        "",
        f"Chosen: **w = {report['chosen_weight']:g}**.",
        "",
    ])
