"""Which rerankers the ensemble averages, chosen by cross-validation on train folds.

For each fold corpus (``moment-search data fold``: the fold is its val split), each candidate
reranker's checkpoint trained without the fold scores every fold sentence in its own video, as
``evaluate model`` does. Every subset of the candidates (one member or more) is then scored as
the ensemble scores it (``search.ensemble_reranker.combine``: the mean of the members'
probabilities, equal weights) and ranked with NMS at its first member's threshold. The rule,
fixed before the runs: the subset with the best mean over folds of ``metric``. The val split is
not read: every corpus must be a different fold of one cut of a train split, and every
checkpoint is checked against its fold before any is scored. ``--write-model`` writes the
chosen ensemble with its members' shipped checkpoints (trained on all of train).

    moment-search benchmark ensemble-cv --fold-data runs/folds/f0 --fold-data runs/folds/f1 \\
        --member drn=runs/drn-f0/best,runs/drn-f1/best \\
        --member fian=runs/fian-f0/best,runs/fian-f1/best \\
        --write-model runs/ensemble --out reports/ensemble_cv
"""

from __future__ import annotations

import itertools
import statistics
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..models.ensemble import MODEL_TYPE, Ensemble, EnsembleConfig
from ..train.folds import check_fold_checkpoint, check_fold_corpora
from ..train.loop import selection_score
from .report import machine_info, markdown_table, progress, write_report

COLUMNS = ["R1@0.3", "R1@0.5", "R1@0.7", "R5@0.5", "R5@0.7", "mIoU"]


@dataclass
class EnsembleCVConfig:
    """One run; ``moment-search benchmark ensemble-cv`` builds it from its options."""

    out: Path  # report directory
    fold_data: tuple[Path, ...]  # fold corpus directories
    members: tuple[tuple[str, tuple[Path, ...]], ...]  # (reranker, a checkpoint per fold)
    metric: str = "R1@0.5+R1@0.7"  # what the folds choose by
    write_model: Path | None = None  # write the chosen ensemble (shipped members) here

    def __post_init__(self) -> None:
        names = [name for name, _ in self.members]
        if len(self.fold_data) < 2 or len(names) < 2 or len(set(names)) != len(names) \
                or MODEL_TYPE in names:
            raise InputError(f"give two folds or more and two different rerankers or more "
                             f"(not {MODEL_TYPE!r}); got {len(self.fold_data)} folds and "
                             f"members {names}", parameter="member")
        for name, checkpoints in self.members:
            if len(checkpoints) != len(self.fold_data):
                raise InputError(f"--member {name}: {len(checkpoints)} checkpoints for "
                                 f"{len(self.fold_data)} folds; give one per --fold-data, in "
                                 f"the same order", parameter="member")


def check_inputs(config: EnsembleCVConfig) -> None:
    """Everything that can be checked before any model runs.

    Raises:
        UnknownNameError: not a reranker. InputError: corpora that are not different folds of
            one train split, or a checkpoint trained on its fold. DataError: a checkpoint that
            is missing or of another model.
    """
    from ..registry import model_class, reranker_class

    check_fold_corpora(config.fold_data)
    for name, checkpoints in config.members:
        reranker_class(name)
        for data, checkpoint in zip(config.fold_data, checkpoints, strict=True):
            model_class(name).read_config(checkpoint)
            check_fold_checkpoint(data, checkpoint)


def member_scores(name: str, checkpoint: Path, data: Path) -> tuple[dict, list, float]:
    """``(qid -> (P, 3) moments, queries, NMS threshold)`` of one reranker on one fold: every
    sentence of the fold scored in its own video."""
    from ..data.corpus_dir import open_corpus
    from ..eval.reranker_localizer import load_named

    localizer = load_named(name, data, checkpoint, "cpu")
    corpus, store = open_corpus(data, split="val", feature_rate=localizer.feature_rate)
    localizer.prepare(corpus, store, sorted({q.video_id for q in corpus.queries}))
    scored = {q.qid: localizer.score_video(localizer.encode_query(q.text), q.video_id)
              for q in corpus.queries}
    return scored, corpus.queries, localizer.nms_threshold


def subset_metrics(scored: dict[str, dict], queries: list, nms: float) -> dict[str, float]:
    """Single-video metrics of the ensemble of ``scored``'s members (in order) on one fold."""
    from ..eval.average_precision import single_video_report
    from ..search.ensemble_reranker import combine
    from ..search.localize import rank_moments

    predictions = {}
    for query in queries:
        moments = combine([per_query[query.qid] for per_query in scored.values()])
        predictions[query.qid] = rank_moments(moments[:, 2], moments[:, :2], 10, nms)
    return single_video_report(predictions, queries)


def fold_rows(config: EnsembleCVConfig, fold: int) -> list[dict]:
    """One row per subset of the members on fold ``fold``."""
    data = config.fold_data[fold]
    scored, thresholds, queries = {}, {}, []
    for name, checkpoints in config.members:
        progress(f"fold {fold + 1}/{len(config.fold_data)}: {name}")
        scored[name], queries, thresholds[name] = member_scores(name, checkpoints[fold], data)
    rows = []
    for size in range(1, len(scored) + 1):
        for subset in itertools.combinations(scored, size):
            metrics = subset_metrics({n: scored[n] for n in subset}, queries,
                                     thresholds[subset[0]])
            rows.append({"setting": "+".join(subset), "members": list(subset),
                         "score": selection_score(metrics, config.metric),
                         **{c: metrics[c] for c in COLUMNS}})
    return rows


def mean_row(rows: list[dict]) -> dict:
    """One subset's mean over folds of the score and every column, each fold's score beside it."""
    return {"setting": rows[0]["setting"], "members": rows[0]["members"],
            "score": statistics.fmean(r["score"] for r in rows),
            **{f"fold {i} score": r["score"] for i, r in enumerate(rows)},
            **{c: statistics.fmean(r[c] for r in rows) for c in COLUMNS}}


def run(config: EnsembleCVConfig) -> dict:
    """Every fold's rows, the mean per subset, the choice; writes ``ensemble_cv.json``/``.md``."""
    check_inputs(config)
    per_fold = [fold_rows(config, fold) for fold in range(len(config.fold_data))]
    means = sorted((mean_row([f[k] for f in per_fold]) for k in range(len(per_fold[0]))),
                   key=lambda row: -row["score"])
    chosen = means[0]["members"]
    report = {"metric": config.metric, "fold_data": [str(p) for p in config.fold_data],
              "members": {n: [str(p) for p in c] for n, c in config.members},
              "folds": per_fold, "rows": means, "chosen": chosen, "machine": machine_info()}
    write_report(config.out, "ensemble_cv", report, markdown(report))
    if config.write_model:
        Ensemble.save(config.write_model, EnsembleConfig(tuple(chosen), (None,) * len(chosen)),
                      {"chosen_by": {"benchmark": "ensemble-cv", "metric": config.metric,
                                     "fold_data": report["fold_data"]}})
    return report


def markdown(report: dict) -> str:
    """The mean table (each fold's score beside it, best first) and the choice."""
    folds = [f"fold {i} score" for i in range(len(report["fold_data"]))]
    return "\n".join([
        "# Ensemble members, chosen on train folds",
        "",
        f"Single-video accuracy on {len(report['fold_data'])} video-disjoint folds of train "
        f"(percent, mean over folds): each fold's sentences in their own videos, every "
        f"checkpoint trained without the fold; an ensemble scores the mean of its members' "
        f"probabilities. The rule, fixed before the runs: the members with the best mean "
        f"{report['metric']} (score).",
        "",
        markdown_table(report["rows"], ["setting", "score", *folds, *COLUMNS]),
        "",
        f"Chosen: **{' + '.join(report['chosen'])}**.",
        "",
    ])
