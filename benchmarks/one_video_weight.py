"""The weight of the video-text term in a search within one video (JSON + Markdown).

The search vectors' video-text term ``sqrt(beta) t . v_i`` has its weight beta chosen for
corpus search (``benchmark corpus-cv``), where it ranks videos against each other. Within one
video that job is gone and only the moments' order counts, so a search within one video
multiplies the query's video-text columns by a scale of its own
(``FVMRConfig.one_video_text_scale``, applied by ``embed.one_video``). This benchmark chooses it:

1. Choose (train only): each fold checkpoint (a search checkpoint trained without its fold, as
   for ``position-bias``) ranks its held-out fold's sentences within their own videos at every
   candidate scale. The rule: the best mean R1@0.5 + R1@0.7 over the folds; a tie goes to the
   scale nearer 1 (no change). Val chooses nothing.
2. Report val once: the checkpoint given, at scale 1 and at the chosen scale.
3. ``--write-model``: that checkpoint with the chosen scale (its config changes, so its
   relevance calibration is fitted again afterwards, as after ``position-bias``).

Single-video R1 here is the top proposal by exact scores (PyTorch fp32 encoder, no NMS, which
does not change a top 1), as ``evaluate model fvmr`` ranks.

    moment-search benchmark one-video-weight --data ../shared/data/charades-sta-clip \\
        --model runs/search-prior --fold-model runs/search-f0 --fold-data runs/folds/f0 \\
        --fold-model runs/search-f1 --fold-data runs/folds/f1 \\
        --out reports/one_video_weight --write-model runs/search-one-video
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..train.folds import check_fold_checkpoint, check_fold_corpora
from .position_bias_search import Split, embed_split, own_video_r1
from .report import machine_info, machine_markdown, markdown_table, progress, write_report

SCORE = ("R1@0.5", "R1@0.7")  # the rule's sum


@dataclass
class OneVideoWeightConfig:
    """One run; ``moment-search benchmark one-video-weight`` builds it from its options."""

    out: Path  # report directory
    data: Path = Path("../shared/data/charades-sta-clip")  # the corpus whose val is reported
    model: Path | None = None  # the search checkpoint (None: the shipped one)
    scales: tuple[float, ...] = (0.0, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0)  # candidates
    fold_models: tuple[Path, ...] = ()  # search checkpoints, each trained without one fold
    fold_data: tuple[Path, ...] = ()  # the fold corpora they hold out, in the same order
    write_model: Path | None = None  # write the checkpoint with the chosen scale here

    def __post_init__(self) -> None:
        if not self.scales or any(not 0 <= s <= 100 for s in self.scales) \
                or 1.0 not in self.scales or len(set(self.scales)) != len(self.scales):
            raise InputError(f"scales must be different numbers in [0, 100] that include 1 (no "
                             f"change), got {self.scales}", parameter="scales")
        if len(self.fold_models) != len(self.fold_data) or len(self.fold_models) < 2:
            raise InputError(f"fold models and fold corpora go in pairs, two or more: got "
                             f"{len(self.fold_models)} models and {len(self.fold_data)} corpora",
                             parameter="fold_models")

    def command(self) -> str:
        """The ``moment-search benchmark one-video-weight`` command line of this run."""
        options = ["--data", self.data, "--out", self.out,
                   "--scales", ",".join(map(str, self.scales))]
        options += ["--model", self.model] if self.model else []
        options += ["--write-model", self.write_model] if self.write_model else []
        for model, data in zip(self.fold_models, self.fold_data, strict=True):
            options += ["--fold-model", model, "--fold-data", data]
        return "moment-search benchmark one-video-weight " + " ".join(map(str, options))


def load(model_dir: Path, parameter: str = "model"):
    """``(model, extra)`` of a search checkpoint that has a video-text term.

    Raises:
        InputError: the checkpoint has none (nothing to weigh), naming ``parameter``.
    """
    from ..models.fvmr import FVMR

    model = FVMR.from_pretrained(model_dir)
    if model.video_text_columns is None:
        raise InputError(f"{model_dir} has no video-text term (an FVMR checkpoint not composed "
                         f"with 'train compose'): there is nothing to weigh",
                         parameter=parameter)
    return model, FVMR.read_config(model_dir)[1]


def rows_of(split: Split, scales: tuple[float, ...]) -> list[dict]:
    """Single-video R1 of ``split`` at each scale (one row each)."""
    rows = []
    for scale in scales:
        weights = dataclasses.replace(split.one_video, text_scale=scale)
        r1 = own_video_r1(split, weights.apply(split.queries))
        rows.append({"scale": scale, **r1, "score": sum(r1[m] for m in SCORE)})
    return rows


def fold_rows(config: OneVideoWeightConfig) -> list[dict]:
    """Every (fold, scale) row: each fold model on its held-out fold."""
    pairs = list(zip(config.fold_models, config.fold_data, strict=True))
    check_fold_corpora(config.fold_data, config.data)
    for model_dir, data in pairs:  # every pair checked before anything is embedded
        check_fold_checkpoint(data, model_dir)
    rows = []
    for fold, (model_dir, data) in enumerate(pairs):
        progress(f"held-out fold {fold + 1}/{len(config.fold_models)}")
        model, extra = load(model_dir, "fold_models")
        split = embed_split(model, data, "val", extra.get("feature_rate"))
        rows += [{"fold": fold, **row} for row in rows_of(split, config.scales)]
    return rows


def fold_means(rows: list[dict], scales: tuple[float, ...]) -> list[dict]:
    """The mean over folds of each scale's row."""
    means = []
    for scale in scales:
        mine = [r for r in rows if r["scale"] == scale]
        means.append({"scale": scale, **{k: float(np.mean([r[k] for r in mine]))
                                         for k in ("R1@0.5", "R1@0.7", "mIoU", "score")}})
    return means


def choose(means: list[dict]) -> float:
    """The rule (module docstring): best mean score, ties to the scale nearer 1 (of two as near,
    the one listed first)."""
    best = max(m["score"] for m in means)
    tied = [m["scale"] for m in means if m["score"] >= best - 1e-9]
    return min(tied, key=lambda s: abs(s - 1.0))


def run(config: OneVideoWeightConfig) -> dict:
    """Choose the scale on the folds, report val, write the checkpoint; returns the report."""
    import torch

    from ..pretrained import default_model_dir

    model_dir = config.model or default_model_dir("fvmr")
    with torch.inference_mode():
        model, extra = load(model_dir)
        folds = fold_rows(config)
        means = fold_means(folds, config.scales)
        scale = choose(means)
        progress("val")
        val = embed_split(model, config.data, "val", extra.get("feature_rate"))
        before, after = rows_of(val, (1.0, scale))
    report = {"config": {**vars(config), "command": config.command()}, "model": str(model_dir),
              "folds": folds, "fold_means": means, "chosen_scale": scale,
              "n_folds": len(config.fold_models),
              "val": {"before": before, "after": after,
                      "sentences": len(val.queries), "videos": len(val.videos)},
              "machine": machine_info()}
    write_report(config.out, "one_video_weight", report, markdown(report))
    if config.write_model:
        write_model(model, extra, scale, config)
    return report


def write_model(model, extra: dict, scale: float, config: OneVideoWeightConfig) -> None:
    """``model`` with ``one_video_text_scale = scale``, into ``config.write_model``."""
    copy = model.reconfigured(one_video_text_scale=scale)
    record = scale_record(scale, str(Path(config.out) / "one_video_weight.json"))
    copy.save_pretrained(config.write_model, extra={**extra, "one_video_weight": record})


def scale_record(scale: float, report: str) -> dict:
    """What a checkpoint stores of its one-video scale: the scale, the rule and the report."""
    return {"scale": scale, "rule": "best mean fold R1@0.5 + R1@0.7", "report": report}


def markdown(report: dict) -> str:
    """The report's Markdown."""
    columns = ["scale", "R1@0.5", "R1@0.7", "mIoU", "score"]
    val = report["val"]
    return "\n\n".join([
        "# The video-text term's weight in a search within one video",
        f"`{report['config']['command']}`",
        f"The choice, made on train only: each of {report['n_folds']} search checkpoints trained "
        "without one video-disjoint fold of train ranks that fold's sentences within their own "
        "videos, the query's video-text columns multiplied by the scale (1: as across videos). "
        "Mean over the folds (percent; score = R1@0.5 + R1@0.7):",
        markdown_table(report["fold_means"], columns),
        f"Rule: the best mean score, ties to the scale nearer 1. Chosen: "
        f"**{report['chosen_scale']}**.",
        f"Val ({val['sentences']} sentences over {val['videos']} videos), the checkpoint given "
        f"(`{report['model']}`), at scale 1 and at the chosen scale:",
        markdown_table([val["before"], val["after"]], columns),
        machine_markdown(report["machine"]),
    ]) + "\n"
