"""Which teachers FVMR distils from, chosen by cross-validation; every choice measured on val.

Each ``--config LABEL=FOLD_RUN,FOLD_RUN|VAL_RUN[,VAL_RUN]`` is one teacher setting (e.g. none,
drn, fian, drn+fian; see ``train.teacher_maps``): checkpoints trained with ``--fold K/N`` on the
train split (one per ``--fold-data`` corpus, in that order; make them with ``moment-search data
fold``), and checkpoints trained on the whole train split (one per seed). The rule, fixed before
any run: the setting with the best mean over folds of ``metric`` (single-video, the fast path's
inner product) is chosen; the val figures are measured once per setting and choose nothing.

    moment-search benchmark teachers --data ../shared/data/charades-sta-clip \\
        --fold-data runs/folds/f0 --fold-data runs/folds/f1 \\
        --config "none=runs/cv_t0_f0/best,runs/cv_t0_f1/best|runs/fvmr_t0_s0/best" \\
        --config "drn+fian=runs/cv_t2_f0/best,runs/cv_t2_f1/best|runs/fvmr_t2_s0/best" \\
        --out reports/teachers
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..eval.runner import evaluate_model
from ..train.folds import check_fold_checkpoint
from ..train.loop import selection_score
from .report import machine_info, markdown_table, mean_and_sd, write_report

SHOWN = ("R1@0.5", "R1@0.7", "mIoU")


@dataclass
class TeachersConfig:
    """One run; ``moment-search benchmark teachers`` builds it from its options."""

    out: Path  # report directory
    configs: tuple[str, ...]  # LABEL=FOLD_RUN,...|VAL_RUN,...
    fold_data: tuple[Path, ...]  # fold corpus directories (their val split is the fold)
    data: Path = Path("../shared/data/charades-sta-clip")  # whose val split is reported
    split: str = "val"
    metric: str = "R1@0.5+R1@0.7"  # what the folds choose by

    def check(self) -> None:
        """Raises InputError: no settings, no folds, a setting without a run per fold, or a
        fold run trained on the fold it would be scored on (``train.folds``)."""
        if not self.configs or not self.fold_data:
            raise InputError("give at least one --config and one --fold-data")
        for text in self.configs:
            _, folds, _ = parse_config(text)
            if len(folds) != len(self.fold_data):
                raise InputError(f"--config {text!r}: {len(folds)} fold runs for "
                                 f"{len(self.fold_data)} --fold-data corpora")
            for data, run in zip(self.fold_data, folds, strict=True):
                check_fold_checkpoint(data, run)


def parse_config(text: str) -> tuple[str, list[Path], list[Path]]:
    """``LABEL=F1,F2|V1,V2`` -> (label, fold runs, val runs).

    Raises:
        InputError: not of that form.
    """
    label, sep, rest = text.partition("=")
    folds, bar, vals = rest.partition("|")
    fold_runs = [Path(p) for p in folds.split(",") if p]
    val_runs = [Path(p) for p in vals.split(",") if p]
    if not (sep and bar and label and fold_runs and val_runs):
        raise InputError(f"--config expects LABEL=FOLD_RUN[,...]|VAL_RUN[,...], got {text!r}")
    return label, fold_runs, val_runs


def setting_row(text: str, config: TeachersConfig) -> dict:
    """Fold and val figures of one teacher setting."""
    label, fold_runs, val_runs = parse_config(text)
    folds = [evaluate_model("fvmr", data, "val", run).metrics
             for data, run in zip(config.fold_data, fold_runs, strict=True)]
    vals = [evaluate_model("fvmr", config.data, config.split, run).metrics for run in val_runs]
    row = {"setting": label, "fold_runs": [str(p) for p in fold_runs],
           "val_runs": [str(p) for p in val_runs], "folds": folds, "val": vals,
           "fold_score": statistics.fmean(selection_score(m, config.metric) for m in folds)}
    for name in SHOWN:
        row[f"fold {name}"] = statistics.fmean(m[name] for m in folds)
        row[f"val {name}"], row[f"val {name} sd"] = mean_and_sd([m[name] for m in vals])
    return row


def run(config: TeachersConfig) -> dict:
    """Evaluate every setting, apply the rule, write ``teachers.json`` and ``teachers.md``."""
    config.check()
    rows = [setting_row(text, config) for text in config.configs]
    chosen = max(rows, key=lambda r: r["fold_score"])["setting"]
    report = {"data": str(config.data), "split": config.split, "metric": config.metric,
              "fold_data": [str(p) for p in config.fold_data], "settings": rows,
              "chosen": chosen, "machine": machine_info()}
    write_report(config.out, "teachers", report, markdown(report))
    return report


def markdown(report: dict) -> str:
    """The report as Markdown."""
    rows = []
    for row in report["settings"]:
        shown = {"setting": row["setting"] + (" (chosen)" if row["setting"] == report["chosen"]
                                              else ""),
                 "fold score": row["fold_score"], "val runs": len(row["val_runs"])}
        for name in SHOWN:
            shown[f"fold {name}"] = row[f"fold {name}"]
            shown[f"val {name}"] = (f"{row[f'val {name}']:.1f} ± {row[f'val {name} sd']:.1f}"
                                    if len(row["val_runs"]) > 1 else row[f"val {name}"])
        rows.append(shown)
    columns = ["setting", "fold score", *[f"fold {n}" for n in SHOWN], "val runs",
               *[f"val {n}" for n in SHOWN]]
    return "\n".join([
        f"Teachers of FVMR's common space: single-video accuracy of the fast path (percent). "
        f"Fold figures: mean over {len(report['fold_data'])} video-disjoint folds of the train "
        f"split; val: the {report['split']} split, mean ± sample sd over seeds where there are "
        f"several. The rule, fixed before training: the setting with the best mean fold "
        f"{report['metric']} is chosen; val chooses nothing.",
        "",
        markdown_table(rows, columns),
        "",
        f"Chosen: **{report['chosen']}**.",
        "",
    ])
