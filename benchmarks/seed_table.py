"""Single-video accuracy over several training seeds: mean and spread, with the controls.

Each ``--model LABEL=LOCALIZER:DIR[,DIR...]`` names one recipe and its checkpoints (one per
seed). Every checkpoint answers every query of the split with the real pairing and with the two
controls (``shuffled-video``: each query on another video's features; ``shuffled-query``: each
video with another video's sentence); the report gives, per recipe and pairing, the mean and the
sample standard deviation over the seeds, and every seed's own figure.

    python -m moment_search.benchmarks.seed_table --data ../shared/data/charades-sta-clip \\
        --model "fvmr=fvmr:runs/fvmr-s0/best,runs/fvmr-s1/best,runs/fvmr-s2/best" \\
        --out reports/accuracy/fvmr_seeds
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..eval.runner import evaluate_model
from .report import markdown_table, mean_and_sd, write_report

METRICS = ["R1@0.3", "R1@0.5", "R1@0.7", "R5@0.3", "R5@0.5", "R5@0.7", "mIoU"]
PAIRINGS = (None, "shuffled-video", "shuffled-query")


@dataclass
class SeedTableConfig:
    """One run; :func:`main` builds it from the command line."""

    data: Path  # corpus directory (features + annotations)
    out: Path  # report directory
    models: list[str]  # one recipe each: LABEL=LOCALIZER:DIR[,DIR...] (a checkpoint per seed)
    split: str = "val"  # the split evaluated
    controls: bool = True  # also the shuffled-video and shuffled-query pairings


def parse_model(text: str) -> tuple[str, str, list[Path]]:
    """``LABEL=LOCALIZER:DIR[,DIR...]`` -> (label, localizer, dirs); ValueError when malformed."""
    label, sep, rest = text.partition("=")
    localizer, sep2, dirs = rest.partition(":")
    if not (sep and sep2 and label and localizer and dirs):
        raise InputError(f"--model expects LABEL=LOCALIZER:DIR[,DIR...], got {text!r}")
    return label, localizer, [Path(d) for d in dirs.split(",") if d]


def recipe_rows(label: str, localizer: str, dirs: list[Path], data: Path, split: str,
                controls: bool) -> list[dict]:
    """One row per pairing: mean, spread and per-seed values of every metric."""
    rows = []
    for pairing in PAIRINGS if controls else (None,):
        runs = [evaluate_model(localizer, data, split, d, control=pairing).metrics for d in dirs]
        row = {"recipe": label, "pairing": pairing or "real", "seeds": len(runs)}
        for name in METRICS:
            values = [r[name] for r in runs]
            row[name], row[f"{name} sd"] = mean_and_sd(values)
            row[f"{name} seeds"] = values
        rows.append(row)
    return rows


def run(config: SeedTableConfig) -> dict:
    """Every recipe; writes ``seeds.json`` and ``seeds.md`` into ``config.out``."""
    data, split = Path(config.data), config.split
    rows, sources = [], {}
    for text in config.models:
        label, localizer, dirs = parse_model(text)
        sources[label] = {"localizer": localizer, "checkpoints": [str(d) for d in dirs]}
        rows += recipe_rows(label, localizer, dirs, data, split, config.controls)
    report = {"data": str(data), "split": split, "recipes": sources, "rows": rows}
    write_report(config.out, "seeds", report, markdown(report))
    return report


def markdown(report: dict) -> str:
    """Mean ± sd per metric (percent)."""
    table = [{"recipe": r["recipe"], "pairing": r["pairing"], "seeds": r["seeds"],
              **{m: f"{r[m]:.1f} ± {r[m + ' sd']:.1f}" for m in METRICS}}
             for r in report["rows"]]
    return (f"Single-video accuracy on {report['split']} (percent, mean ± sample sd over seeds):"
            "\n\n" + markdown_table(table, ["recipe", "pairing", "seeds", *METRICS]))


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--split", default=SeedTableConfig.split)
    parser.add_argument("--model", action="append", required=True,
                        help="LABEL=LOCALIZER:DIR[,DIR...]")
    parser.add_argument("--no-controls", action="store_true")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    config = SeedTableConfig(args.data, args.out, args.model, args.split, not args.no_controls)
    print(markdown(run(config)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
