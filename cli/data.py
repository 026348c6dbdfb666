"""``moment-search data ...``: look at a corpus or an annotation file."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from moment_search.data.corpus import Corpus
from moment_search.data.corpus_dir import open_corpus
from moment_search.data.readers import read_annotations
from moment_search.data.stats import corpus_stats

from .common import console, print_json, user_errors

app = typer.Typer(help="Inspect corpora and annotation files.", no_args_is_help=True)


def load_for_stats(path: Path, split: str | None) -> Corpus:
    """A corpus directory (with its features) or a single annotation file."""
    if path.is_dir():
        corpus, _ = open_corpus(path, split=split)
        return corpus
    return read_annotations(path)


@app.command()
def stats(
    path: Path = typer.Argument(..., help="A corpus directory or one annotation file."),
    split: str = typer.Option(None, help="Only this split of a corpus directory (e.g. val)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """Counts, video durations, moment lengths and query lengths."""
    with user_errors():
        summary = corpus_stats(load_for_stats(path, split))
    if as_json:
        print_json(summary)
        return
    console.print(f"[bold]{path}[/]: {summary['videos']} videos, {summary['queries']} queries, "
                  f"{summary['windows']} ground-truth windows")
    table = Table(title="distributions")
    table.add_column("quantity")
    keys = ["mean", "p0", "p10", "p25", "p50", "p75", "p90", "p100"]
    for key in keys:
        table.add_column(key, justify="right")
    for name in ("duration_s", "moment_s", "moment_fraction", "query_words"):
        values = summary[name]
        table.add_row(name, *(f"{values[k]:.2f}" if k in values else "-" for k in keys))
    console.print(table)


@app.command()
def fold(
    data: Path = typer.Argument(..., help="A corpus directory with a train.jsonl."),
    fold: str = typer.Option(..., help="K/N: fold K of N (video-disjoint, as train --fold)."),
    out: Path = typer.Option(..., help="The new corpus directory (must not exist)."),
    split: str = typer.Option(None, help="The split that is cut into folds (default: train)."),
) -> None:
    """Write a corpus directory whose train/val splits are the training part and fold K of
    SPLIT, so any command can run on a cross-validation fold (features are linked)."""
    from moment_search.train.folds import parse_fold, write_fold_corpus

    with user_errors():
        path = write_fold_corpus(data, parse_fold(fold), out,
                                 **({} if split is None else {"split": split}))
    console.print(f"fold {fold} of {data} written to {path}")
