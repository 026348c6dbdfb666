"""The corpus terms' weights (beta, gamma) chosen by cross-validation on train folds.

For each fold corpus (``moment-search data fold``: the fold is its val split), an FVMR and a
video-text checkpoint trained on that fold's training part are composed over the (beta, gamma)
grid and searched with the real indexer and ``Searcher`` (``benchmark corpus-eval`` on the fold);
the setting with the best mean over folds of ``metric`` is chosen. The val split is not read.

    moment-search benchmark corpus-cv --fold-data runs/folds/f0 --fold-data runs/folds/f1 \\
        --fvmr runs/cv_f0/best --fvmr runs/cv_f1/best \\
        --video-text runs/vt_f0/best --video-text runs/vt_f1/best --out reports/corpus_cv
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..train.folds import check_fold_checkpoint
from ..train.loop import selection_score
from .corpus_eval import CorpusEvalConfig
from .corpus_eval import run as corpus_eval
from .report import machine_info, markdown_table, write_report

SHOWN = ("R1@0.5", "R10@0.5", "R100@0.5", "R1@0.7", "R10@0.7", "R100@0.7")


@dataclass
class CorpusCVConfig:
    """One run; ``moment-search benchmark corpus-cv`` builds it from its options."""

    out: Path  # report directory (each fold's corpus-eval report under fold<i>/)
    fold_data: tuple[Path, ...]  # fold corpus directories
    fvmr: tuple[Path, ...]  # an FVMR checkpoint trained on each fold's training part
    video_text: tuple[Path, ...]  # a video-text checkpoint trained on each fold's training part
    video_weights: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0)  # beta values
    hub_weights: tuple[float, ...] = (0.0, 0.5, 1.0)  # gamma values
    hub_bank: int = CorpusEvalConfig.hub_bank  # bank sentences, from each fold's training part
    metric: str = "R10@0.5+R10@0.7"  # what the folds choose by

    def check(self) -> None:
        """Raises InputError: no folds, or not one FVMR and one video-text model per fold."""
        n = len(self.fold_data)
        if not n or len(self.fvmr) != n or len(self.video_text) != n:
            raise InputError(f"give one --fvmr and one --video-text per --fold-data; got "
                             f"{n} folds, {len(self.fvmr)} FVMR, {len(self.video_text)} "
                             f"video-text checkpoints")


def run(config: CorpusCVConfig) -> dict:
    """Every fold's grid, the mean per setting, the choice; writes ``corpus_cv.json``/``.md``."""
    config.check()
    for data, fvmr, video in zip(config.fold_data, config.fvmr, config.video_text, strict=True):
        check_fold_checkpoint(data, fvmr)
        check_fold_checkpoint(data, video)
    folds = []
    for i, (data, fvmr, video) in enumerate(zip(config.fold_data, config.fvmr,
                                                config.video_text, strict=True)):
        report = corpus_eval(CorpusEvalConfig(
            data=data, out=Path(config.out) / f"fold{i}", split="val", fvmr=fvmr,
            video_text=video, video_weights=config.video_weights,
            hub_weights=config.hub_weights, hub_bank=config.hub_bank))
        folds.append({r["setting"]: r for r in report["rows"] if "beta" in r})
    rows = []
    for setting, first in folds[0].items():
        per_fold = [fold[setting] for fold in folds]
        row = {"setting": setting, "beta": first["beta"], "gamma": first["gamma"],
               "score": statistics.fmean(selection_score(r, config.metric) for r in per_fold)}
        row.update({name: statistics.fmean(r[name] for r in per_fold) for name in SHOWN})
        rows.append(row)
    chosen = max(rows, key=lambda r: r["score"])
    report = {"fold_data": [str(p) for p in config.fold_data],
              "fvmr": [str(p) for p in config.fvmr],
              "video_text": [str(p) for p in config.video_text], "metric": config.metric,
              "rows": rows, "chosen": {"beta": chosen["beta"], "gamma": chosen["gamma"]},
              "machine": machine_info()}
    write_report(config.out, "corpus_cv", report, markdown(report))
    return report


def markdown(report: dict) -> str:
    """The mean table and the choice."""
    chosen = report["chosen"]
    return "\n".join([
        f"Corpus search on {len(report['fold_data'])} video-disjoint folds of train (percent, "
        f"mean over folds; each fold's own report is in fold<i>/). The rule, fixed before "
        f"the runs: the (beta, gamma) with the best mean {report['metric']}.",
        "",
        markdown_table(report["rows"], ["setting", "score", *SHOWN]),
        "",
        f"Chosen: **beta={chosen['beta']} gamma={chosen['gamma']}**.",
        "",
    ])
