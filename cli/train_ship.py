"""``moment-search train ship``: a trained checkpoint written as it ships (no training).

Registered on the ``train`` app by ``cli.train``; see ``moment_search.train.ship``.
"""

from __future__ import annotations

from pathlib import Path

import typer

from .common import console, user_errors
from .train_options import check_out


def ship(
    model: Path = typer.Option(..., help="A trained checkpoint folder (e.g. runs/drn/best)."),
    out: Path = typer.Option(..., help="The folder to write."),
    cascade_report: Path = typer.Option(None, help="A `benchmark cascade-cv` JSON report: its "
                                        "chosen w is stored as the checkpoint's fusion_weight."),
    half: bool = typer.Option(True, help="Store the weights in float16 (as the shipped DRN, FIAN "
                              "and LPNet); --no-half copies them as they are."),
) -> None:
    """Write a checkpoint as it ships: float16 weights, with the cascade w its folds chose."""
    from moment_search.train.ship import ship as write_shipped

    with user_errors():
        check_out(out)
        write_shipped(model, out, cascade_report, half)
    console.print(f"{model} written to {out}")
