"""Where LPNet's learnable proposals ended up: centres x widths before and after training.

Reads two LPNet checkpoints (``--before``: the boxes a run started from, ``OUT/init`` of
``train lpnet``; ``--model``: the trained one) and, with ``--data``, the ground-truth moments of
one split. Writes ``lpnet_proposals.json`` (every box, and how well the boxes cover the ground
truth: for each moment the best IoU of any proposal, its mean and the share covered at IoU 0.5 /
0.7), ``lpnet_proposals.md`` and ``lpnet_proposals.png`` (scatter of centre vs width, the
ground-truth moments as a 2D histogram behind them).

The coverage is of the proposal boxes alone: which box the model picks for a query is a separate
question, answered by ``evaluate model lpnet``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from . import report

COVER_THRESHOLDS = (0.5, 0.7)


@dataclass
class ProposalsConfig:
    """One run; ``moment-search benchmark lpnet-proposals`` builds it from its options."""

    model: Path  # the trained LPNet checkpoint directory
    before: Path  # the checkpoint it started from (``train lpnet``'s OUT/init)
    out: Path  # report directory (JSON, Markdown, PNG)
    data: Path | None = None  # corpus whose ground-truth moments are drawn behind (None: none)
    split: str = "train"  # annotation split of ``data``


def proposal_boxes(model_dir: str | Path) -> np.ndarray:
    """The (k, 2) [start, end] boxes of an LPNet checkpoint, as fractions of a video."""
    import torch

    from moment_search.models.lpnet import LPNet

    model = LPNet.from_pretrained(model_dir)
    with torch.no_grad():
        return model.spans().double().numpy()


def ground_truth_spans(data_dir: str | Path, split: str) -> np.ndarray:
    """(N, 2) every ground-truth window of ``split`` as fractions of its video's duration."""
    from moment_search.data.corpus_dir import open_corpus

    corpus, _ = open_corpus(data_dir, split)
    spans = [(start / corpus.videos[q.video_id].duration, end / corpus.videos[q.video_id].duration)
             for q in corpus.queries for start, end in q.windows]
    if not spans:
        raise DataError(f"split {split!r} of {data_dir} has no ground-truth windows")
    return np.clip(np.asarray(spans, dtype=np.float64), 0.0, 1.0)


def coverage(boxes: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """For each ground-truth span the best IoU of any box: its mean and the share >= 0.5 / 0.7."""
    from moment_search.geometry.spans import temporal_iou

    best = temporal_iou(truth, boxes).max(axis=1)
    result = {"mean_best_iou": float(best.mean())}
    result.update({f"covered@{t}": float((best >= t).mean() * 100) for t in COVER_THRESHOLDS})
    return result


def describe(boxes: np.ndarray, truth: np.ndarray | None) -> dict:
    """Boxes as centres / widths with their summary (and coverage of ``truth`` when given)."""
    centres, widths = boxes.mean(axis=1), boxes[:, 1] - boxes[:, 0]
    result = {"centres": centres.tolist(), "widths": widths.tolist(),
              "mean_width": float(widths.mean()), "median_width": float(np.median(widths)),
              "centre_std": float(centres.std())}
    if truth is not None:
        result["coverage"] = coverage(boxes, truth)
    return result


def plot(result: dict, truth: np.ndarray | None, path: Path) -> Path:
    """Centre vs width of the boxes before (grey) and after (colour), over the ground truth."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axis = plt.subplots(figsize=(6.4, 4.8))
    if truth is not None:
        axis.hist2d(truth.mean(axis=1), truth[:, 1] - truth[:, 0], bins=30,
                    range=((0, 1), (0, 1)), cmap="Greens", alpha=0.6)
    before, after = result["before"], result["after"]
    if len(before["centres"]) == len(after["centres"]):  # the same proposals: show each move
        for x0, y0, x1, y1 in zip(before["centres"], before["widths"], after["centres"],
                                  after["widths"], strict=True):
            axis.plot((x0, x1), (y0, y1), color="tab:red", linewidth=0.6, alpha=0.5)
    for key, style in (("before", dict(color="grey", marker="x", label="before training")),
                       ("after", dict(color="tab:red", marker="o", label="after training"))):
        boxes = result[key]
        axis.scatter(boxes["centres"], boxes["widths"], s=18, **style)
    axis.set(xlim=(0, 1), ylim=(0, 1), xlabel="proposal centre (fraction of the video)",
             ylabel="proposal width (fraction of the video)",
             title="LPNet learnable proposals" + (" (green: ground truth)" if truth is not None
                                                  else ""))
    axis.legend(loc="upper right")
    try:
        return report.save_figure(figure, path)
    finally:
        plt.close(figure)


def to_markdown(result: dict) -> str:
    """The summary table of the report."""
    rows = []
    for key in ("before", "after"):
        boxes = result[key]
        row = {"boxes": key, "n": len(boxes["centres"]), "mean_width": boxes["mean_width"],
               "median_width": boxes["median_width"], "centre_std": boxes["centre_std"]}
        row.update(boxes.get("coverage", {}))
        rows.append(row)
    columns = ["boxes", "n", "mean_width", "median_width", "centre_std"]
    if "coverage" in result["after"]:
        columns += ["mean_best_iou"] + [f"covered@{t}" for t in COVER_THRESHOLDS]
    parts = ["# LPNet learnable proposals", "",
             f"Before: `{result['before_dir']}`; after: `{result['model_dir']}`.",
             (f"Coverage: for each ground-truth moment of split `{result['split']}` "
              f"({result['n_truth']} windows) the best IoU of any proposal; covered@t in percent."
              if result.get("split") else ""),
             "", report.markdown_table(rows, columns), "",
             report.machine_markdown(result["machine"])]
    return "\n".join(parts)


def run(config: ProposalsConfig) -> dict:
    """Build, write and return the report."""
    truth = ground_truth_spans(config.data, config.split) if config.data else None
    result = {"model_dir": str(config.model), "before_dir": str(config.before),
              "split": config.split if config.data else None,
              "n_truth": None if truth is None else len(truth),
              "before": describe(proposal_boxes(config.before), truth),
              "after": describe(proposal_boxes(config.model), truth),
              "machine": report.machine_info()}
    out_dir = Path(config.out)
    report.write_report(out_dir, "lpnet_proposals", result, to_markdown(result))
    plot(result, truth, out_dir / "lpnet_proposals.png")
    return result
