"""``moment-search benchmark per-video-cv``: the default per-video cap of a corpus search, chosen
on train folds.

Registered on the ``benchmark`` app by ``cli.benchmark``; see
``moment_search.benchmarks.per_video_cv``.
"""

from __future__ import annotations

from pathlib import Path

import typer

from .common import console, from_options, named_paths, split_items, user_errors


def parse_cap(text: str) -> int | None:
    """``"none"`` -> None (no cap); ``"2"`` -> 2."""
    return None if text.strip().lower() == "none" else int(text)


def per_video_cv(
    out: Path = typer.Option(..., help="Report directory."),
    fold_data: list[Path] = typer.Option(..., "--fold-data", help="A fold corpus (`data fold`; "
                                         "repeat, two or more)."),
    search: list[Path] = typer.Option(..., "--search", help="The search checkpoint trained "
                                      "without each fold, in the same order."),
    caps: str = typer.Option(None, help="Comma-separated candidate caps; `none` is no cap."),
    rerank: list[str] = typer.Option(None, "--rerank", help="NAME=DIR0,DIR1: a reranker "
                                     "trained without each fold, reported beside (repeatable)."),
) -> None:
    """Choose how many moments of one video a corpus search keeps (on train folds)."""
    from moment_search.benchmarks.per_video_cv import PerVideoCVConfig, cap_label, run

    with user_errors():
        report = run(from_options(PerVideoCVConfig, out=out, fold_data=tuple(fold_data),
                                  search=tuple(search), caps=split_items(caps, parse_cap),
                                  rerankers=named_paths(rerank, "rerank")))
    console.print(f"cap {cap_label(report['chosen_cap'])}; report written to {out}")
