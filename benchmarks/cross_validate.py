"""k-fold cross-validation of any ``moment-search train`` command (video-disjoint folds).

Runs the training command once per fold with ``--fold K/N`` (train on the train split less fold
K, validate on fold K; see ``train.folds``), then reports, per metric, the mean and the spread
(sample standard deviation) over folds of the best epoch's validation metrics, and the best
epochs themselves. Settings are chosen on these means, not on the validation split.

    python -m moment_search.benchmarks.cross_validate --folds 5 --out runs/cv-video-text -- \\
        video-text --data ../shared/data/charades-sta-clip --feature-rate 1.0
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError, UnavailableError
from .report import markdown_table, mean_and_sd, write_report


@dataclass
class CrossValidateConfig:
    """One run; :func:`main` builds it from the command line."""

    train_argv: list[str]  # a train subcommand and its options (no --out, --fold)
    out: Path  # fold checkpoints and the report
    folds: int = 5  # video-disjoint folds


def best_epoch(history: Path) -> dict:
    """The record of the epoch OUT/best holds: the last one marked ``kept`` (``--keep last``
    marks every epoch), else, for histories without the mark, the best smoothed score."""
    records = [json.loads(line) for line in history.read_text().splitlines() if line.strip()]
    if not records:
        raise DataError(f"{history}: no epochs recorded")
    kept = [r for r in records if r.get("kept")]
    if kept:
        return kept[-1]
    return max(records, key=lambda r: r.get("smoothed", r["best"]))


def summarise(bests: list[dict]) -> list[dict]:
    """One row per metric: mean and sample standard deviation over folds."""
    names = [k for k in bests[0]["val"] if isinstance(bests[0]["val"][k], (int, float))]
    rows = []
    for name in names:
        values = [b["val"][name] for b in bests]
        mean, spread = mean_and_sd(values)
        rows.append({"metric": name, "mean": mean, "std": spread,
                     "folds": ", ".join(f"{v:.2f}" for v in values)})
    return rows


def train_command() -> list[str]:
    """The ``moment-search`` program beside this interpreter, else on PATH.

    Raises:
        UnavailableError: neither is there (the package is not installed with its script).
    """
    beside = Path(sys.executable).with_name("moment-search")
    program = str(beside) if beside.is_file() else shutil.which("moment-search")
    if program is None:
        raise UnavailableError(f"no moment-search program beside {sys.executable} or on PATH; "
                               f"install the package (pip install -e .)")
    return [program, "train"]


def run(config: CrossValidateConfig) -> dict:
    """Train every fold with the ``moment-search train`` program (skipping folds already
    finished in ``config.out``) and write the summary.

    Raises:
        RuntimeError: a fold's training exited with an error (its output went to the console).
    """
    out, folds, train_argv = Path(config.out), config.folds, list(config.train_argv)
    bests = []
    for k in range(folds):
        fold_dir = out / f"fold{k}"
        if not (fold_dir / "best").is_dir():
            command = [*train_command(), *train_argv, "--fold", f"{k}/{folds}", "--out",
                       str(fold_dir)]
            code = subprocess.run(command, check=False).returncode
            if code:
                raise RuntimeError(f"fold {k}: training exited with {code}")
        bests.append(best_epoch(fold_dir / "history.jsonl"))
    report = {"command": ["moment-search", "train", *train_argv], "folds": folds,
              "best_epochs": [b["epoch"] for b in bests], "summary": summarise(bests)}
    write_report(out, "cv", report, markdown(report))
    return report


def markdown(report: dict) -> str:
    """The summary table with the command and the best epochs."""
    return "\n\n".join([
        f"`{' '.join(report['command'])}`, {report['folds']} folds, best epochs "
        f"{report['best_epochs']}:",
        markdown_table(report["summary"], ["metric", "mean", "std", "folds"]),
    ])


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--folds", type=int, default=CrossValidateConfig.folds)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("train_argv", nargs=argparse.REMAINDER,
                        help="-- then a train subcommand and its options (no --out, --fold)")
    args = parser.parse_args(argv)
    train_argv = [a for a in args.train_argv if a != "--"]
    print(markdown(run(CrossValidateConfig(train_argv, args.out, args.folds))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
