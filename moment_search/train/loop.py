"""The epoch loop every trainer shares: AdamW, train, validate, keep best/ and last/, resume.

A trainer subclasses :class:`EpochTrainer` and provides ``model_class``, ``self.settings`` (stored
with each checkpoint), ``epoch_batches(epoch)``, ``loss_terms(batch, epoch)`` and ``validate()``
(which scores ``self.eval_model``).

The recipe knobs every trainer's config carries (it extends :class:`RecipeConfig`):

* ``ema_decay`` (0: off): an exponential moving average of the weights, updated after every
  step (``torch.optim.swa_utils``; buffers such as BatchNorm statistics are the live model's);
  the average is what is validated and saved.
* ``smooth_epochs`` (1: off): the best epoch is picked on the trailing mean of this many
  validation scores, so one lucky epoch of a noisy curve is not what ships.
* ``patience`` (0: off): stop when the smoothed score has not improved for this many epochs.
* ``keep`` ("best"): what OUT/best holds. "best" is the best smoothed validation epoch; "last"
  is the last epoch of the schedule, a rule fixed before training, so the validation split
  only measures and chooses nothing (validation still runs and is logged every epoch).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from ..errors import InputError

KEEP_RULES = ("best", "last")


@dataclass
class RecipeConfig:
    """The training settings every trainer's config shares (see above, ``train.extras`` and
    ``train.folds``); each trainer's config adds its own. The defaults switch every knob off."""

    select_metric: str = "R1@0.5+R1@0.7"  # validation score that picks the best epoch
    seed: int = 0
    threads: int | None = None  # torch CPU threads (None: torch's default)
    extras: tuple[str, ...] = ()  # --extra specs, e.g. ("charades-actions:0.5",)
    ema_decay: float = 0.0  # weight average per step (0: off)
    smooth_epochs: int = 1  # best epoch on the trailing mean of this many val scores
    patience: int = 0  # stop after this many epochs without smoothed improvement (0: off)
    fold: str | None = None  # "K/N": train on the other folds of the train split, validate on K
    keep: str = "best"  # OUT/best: "best" validation epoch, or the "last" epoch (no selection)

    def __post_init__(self) -> None:
        check_keep(self.keep, self.patience)


def check_keep(keep: str, patience: int) -> None:
    """Raises InputError: a rule other than "best" or "last", or "last" with early stopping
    (``patience`` would let validation choose where the schedule ends)."""
    if keep not in KEEP_RULES:
        raise InputError(f"keep = {keep!r}: expected one of {KEEP_RULES}", parameter="keep")
    if keep == "last" and patience:
        raise InputError(f"keep = 'last' with patience = {patience}: early stopping would let "
                         f"validation choose the last epoch; set patience to 0", parameter="keep")


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def selection_score(metrics: dict[str, float], select_metric: str) -> float:
    """Sum of the named metrics (e.g. ``"R1@0.5+R1@0.7"``)."""
    return float(sum(metrics[name] for name in select_metric.split("+")))


def trailing_means(scores: list[float], smooth: int) -> list[float]:
    """The smoothed curve: entry i is the mean of scores i - smooth + 1 .. i (fewer at first)."""
    return [float(np.mean(scores[max(0, i + 1 - smooth):i + 1])) for i in range(len(scores))]


def epochs_since_best(scores: list[float], smooth: int) -> int:
    """Epochs since the best trailing mean of ``smooth`` scores (0 for no scores)."""
    means = trailing_means(scores, smooth)
    return len(means) - 1 - int(np.argmax(means)) if means else 0


class EpochTrainer:
    """AdamW over ``self.model``; OUT/best (the kept epoch: see ``keep``), OUT/last + state.pt,
    history."""

    model_class: ClassVar[Any]
    out: Path
    config: Any  # a RecipeConfig with epochs, lr and weight_decay
    settings: dict[str, Any]
    model: torch.nn.Module

    def start(self, model: torch.nn.Module) -> None:
        """Attach a fresh model and optimizer; the run starts at epoch 0."""
        self.model = model
        self.optimizer = self.new_optimizer()
        self.ema = self.new_ema()
        self.start_epoch, self.best_score = 0, float("-inf")
        self.scores: list[float] = []

    def new_optimizer(self) -> torch.optim.AdamW:
        """AdamW (decoupled weight decay; plain Adam at weight decay 0)."""
        return torch.optim.AdamW(self.model.parameters(), lr=self.config.lr,
                                 weight_decay=self.config.weight_decay)

    def new_ema(self) -> AveragedModel | None:
        """The weight average of the model, or None when ``ema_decay`` is 0."""
        decay = self.config.ema_decay
        if not decay:
            return None
        # Buffers (BatchNorm statistics, index tables) are copied from the live model at every
        # update, not averaged: averaging them (use_buffers=True) rounds integer buffers through
        # floats, which corrupted FVMR's proposal index table at some decays.
        return AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(decay))

    @property
    def eval_model(self) -> torch.nn.Module:
        """What is validated and saved: the weight average when there is one, else the model."""
        return self.ema.module if self.ema is not None else self.model

    def epoch_batches(self, epoch: int) -> list:
        """The training batches of one epoch."""
        raise NotImplementedError

    def loss_terms(self, batch, epoch: int) -> dict[str, torch.Tensor]:
        """Named loss terms of one batch, with the sum under ``"total"``."""
        raise NotImplementedError

    def validate(self) -> dict[str, float]:
        """Validation metrics of the current model."""
        raise NotImplementedError

    def resume(self) -> bool:
        """Load OUT/last if present; returns whether training resumes from it."""
        state_path = self.out / "last" / "state.pt"
        if not state_path.is_file():
            return False
        self.model = self.model_class.from_pretrained(self.out / "last")
        self.optimizer = self.new_optimizer()
        self.ema = self.new_ema()
        state = torch.load(state_path, weights_only=True)
        self.optimizer.load_state_dict(state["optimizer"])
        if self.ema is not None and "ema" in state:
            self.ema.load_state_dict(state["ema"])
        stored_rule = state.get("keep", "best")
        if stored_rule != self.config.keep:
            raise InputError(f"{self.out}: the run was started with keep = {stored_rule!r}; "
                             f"resume it with the same rule (given: {self.config.keep!r})",
                             parameter="keep")
        self.start_epoch, self.best_score = int(state["epoch"]) + 1, float(state["best_score"])
        self.scores = [float(x) for x in state.get("scores", [])]
        return True

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One pass over the training batches; returns mean loss terms."""
        self.model.train()
        sums: dict[str, float] = {}
        batches = self.epoch_batches(epoch)
        for batch in tqdm(batches, desc=f"epoch {epoch + 1}/{self.config.epochs}", leave=False):
            terms = self.loss_terms(batch, epoch)
            self.optimizer.zero_grad()
            terms["total"].backward()
            self.optimizer.step()
            if self.ema is not None:
                self.ema.update_parameters(self.model)
            for name, value in terms.items():
                sums[name] = sums.get(name, 0.0) + float(value.detach())
        return {name: total / len(batches) for name, total in sums.items()}

    def fit(self, progress=print) -> dict[str, float]:
        """Train to ``config.epochs``; returns the validation metrics of the epoch OUT/best holds
        (of this run's epochs: empty when a resumed run had none left)."""
        best = {}
        keep_last = self.config.keep == "last"
        self.out.mkdir(parents=True, exist_ok=True)
        smooth = max(1, int(self.config.smooth_epochs))
        patience = int(self.config.patience)
        since_best = epochs_since_best(self.scores, smooth)  # > 0 only after a resume
        for epoch in range(self.start_epoch, self.config.epochs):
            losses = self.train_epoch(epoch)
            metrics = self.validate()
            self.scores.append(selection_score(metrics, self.config.select_metric))
            score = trailing_means(self.scores, smooth)[-1]  # the smoothed curve's last point
            since_best += 1
            if score > self.best_score:
                self.best_score, since_best = score, 0
            kept = since_best == 0 or keep_last
            if kept:
                best = metrics
                self.eval_model.save_pretrained(self.out / "best", extra=self.settings)
            self.save_last(epoch)
            record = {"epoch": epoch + 1, "loss": losses, "val": metrics, "smoothed": score,
                      "best": self.best_score, "kept": kept}
            with open(self.out / "history.jsonl", "a") as handle:
                handle.write(json.dumps(record) + "\n")
            shown = [*self.config.select_metric.split("+"), "mIoU"]
            values = "  ".join(f"{name} {metrics[name]:.2f}" for name in shown if name in metrics)
            progress(f"epoch {epoch + 1}: loss {losses['total']:.4f}  {values}  "
                     f"smoothed {score:.2f}")
            if patience and since_best >= patience:
                progress(f"stopping: no smoothed improvement for {patience} epochs")
                break
        return best

    def save_last(self, epoch: int) -> None:
        """OUT/last: the model and the optimizer state after ``epoch`` (atomic)."""
        self.model.save_pretrained(self.out / "last", extra=self.settings)
        state = {"optimizer": self.optimizer.state_dict(), "epoch": epoch,
                 "best_score": self.best_score, "scores": self.scores, "keep": self.config.keep}
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
        tmp = self.out / "last" / "state.pt.tmp"
        torch.save(state, tmp)
        tmp.replace(self.out / "last" / "state.pt")
