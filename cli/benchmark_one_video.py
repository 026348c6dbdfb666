"""``moment-search benchmark one-video-weight``: the video-text term's weight in a search within
one video, chosen on train folds.

Registered on the ``benchmark`` app by ``cli.benchmark``; see
``moment_search.benchmarks.one_video_weight``.
"""

from __future__ import annotations

from pathlib import Path

import typer

from .common import console, from_options, split_items, user_errors


def one_video_weight(
    out: Path = typer.Option(..., help="Report directory."),
    fold_model: list[Path] = typer.Option(..., "--fold-model", help="A search checkpoint "
                                          "trained without one fold (repeat, two or more): the "
                                          "scale is chosen on their held-out folds."),
    fold_data: list[Path] = typer.Option(..., "--fold-data", help="The fold corpus (`data "
                                         "fold`) each --fold-model holds out, in the same order."),
    data: Path = typer.Option(None, help="Corpus directory whose val split is reported."),
    model: Path = typer.Option(None, help="The search checkpoint (default: shipped)."),
    scales: str = typer.Option(None, help="Comma-separated candidate scales of the query's "
                               "video-text columns (must include 1, no change)."),
    write_model: Path = typer.Option(None, help="Write the checkpoint with the chosen scale here "
                                     "(its relevance calibration is then fitted again)."),
) -> None:
    """Choose how a search within one video weighs the video-text term (on train folds)."""
    from moment_search.benchmarks.one_video_weight import OneVideoWeightConfig, run

    with user_errors():
        report = run(from_options(OneVideoWeightConfig, out=out, data=data, model=model,
                                  scales=split_items(scales, float), write_model=write_model,
                                  fold_models=tuple(fold_model), fold_data=tuple(fold_data)))
    before, after = report["val"]["before"], report["val"]["after"]
    console.print(f"scale {report['chosen_scale']}; val single-video R1@0.5 / R1@0.7 "
                  f"{before['R1@0.5']:.1f} / {before['R1@0.7']:.1f} -> {after['R1@0.5']:.1f} / "
                  f"{after['R1@0.7']:.1f}; report written to {out}")
