"""``moment-search evaluate ...``: score prediction files, or run a model on a split."""

from __future__ import annotations

from pathlib import Path

import typer

from moment_search.data.readers import read_annotations
from moment_search.eval.predictions import score_predictions
from moment_search.eval.runner import evaluate_model
from moment_search.registry import list_localizers

from .common import console, metric_table, print_json, user_errors

MODEL_NAMES = ", ".join(list_localizers())

app = typer.Typer(help="Score predictions; evaluate models.", no_args_is_help=True)


@app.command()
def score(
    predictions: Path = typer.Argument(
        ..., help="Predictions: JSONL (single-video or corpus) or a TVR submission .json."),
    ground_truth: Path = typer.Argument(..., help="Annotation file with the queries."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Score a prediction file against ground truth (the metric follows the file's kind).

    Single-video predictions get R@{1,5} at IoU {0.1,0.3,0.5,0.7}, mIoU and moment_detr's
    mAP@0.5, mAP@0.75 and mAP (average over IoU 0.5:0.05:0.95, top 10 per query); corpus
    predictions (JSONL or TVR's VCMR .json) get R@{1,5,10,100} at IoU {0.5,0.7}. Query ids
    match by value and type (7 is not "7").
    """
    with user_errors():
        metrics = score_predictions(predictions, read_annotations(ground_truth).queries)
    if as_json:
        print_json(metrics)
    else:
        console.print(metric_table(f"{predictions}", metrics))


@app.command()
def model(
    name: str = typer.Argument(..., help=f"Model name: {MODEL_NAMES}."),
    data: Path = typer.Option(..., help="Corpus directory with <split>.jsonl and features/."),
    split: str = typer.Option("val", help="Annotation split to answer."),
    model_dir: Path = typer.Option(None, "--model", help="Checkpoint dir (default: shipped)."),
    predictions: Path = typer.Option(None, help="Write predictions here (JSONL)."),
    control: str = typer.Option(None, help="shuffled-video | shuffled-query (controls)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Run model NAME on every query of a split; print R@n, IoU=m, mIoU, mAP and timings."""
    with user_errors():
        result = evaluate_model(name, data, split, model_dir, predictions, control=control)
    if as_json:
        print_json({"model": result.model, "split": result.split, "metrics": result.metrics,
                    "timings": result.timings,
                    "predictions": None if result.predictions_path is None
                    else str(result.predictions_path)})
        return
    console.print(metric_table(f"{result.model} on {data} [{split}]", result.metrics))
    console.print(metric_table("timings (ms)", result.timings))
    if result.predictions_path is not None:
        console.print(f"predictions written to {result.predictions_path}")
