"""The epoch loop every trainer shares: Adam, train, validate, keep best/ and last/, resume.

A trainer subclasses :class:`EpochTrainer` and provides ``model_class``, ``self.settings`` (stored
with each checkpoint), ``epoch_batches(epoch)``, ``loss_terms(batch, epoch)`` and ``validate()``.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from tqdm import tqdm


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def selection_score(metrics: dict[str, float], select_metric: str) -> float:
    """Sum of the named metrics (e.g. ``"R1@0.5+R1@0.7"``)."""
    return float(sum(metrics[name] for name in select_metric.split("+")))


class EpochTrainer:
    """Adam over ``self.model``; OUT/best (best validation epoch), OUT/last + state.pt, history."""

    model_class: ClassVar[Any]
    out: Path
    config: Any  # has epochs, lr, weight_decay, select_metric
    settings: dict[str, Any]
    model: torch.nn.Module

    def start(self, model: torch.nn.Module) -> None:
        """Attach a fresh model and optimizer; the run starts at epoch 0."""
        self.model = model
        self.optimizer = self.new_optimizer()
        self.start_epoch, self.best_score = 0, float("-inf")

    def new_optimizer(self) -> torch.optim.Adam:
        """Adam with the configured learning rate and weight decay."""
        return torch.optim.Adam(self.model.parameters(), lr=self.config.lr,
                                weight_decay=self.config.weight_decay)

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
        state = torch.load(state_path, weights_only=True)
        self.optimizer.load_state_dict(state["optimizer"])
        self.start_epoch, self.best_score = int(state["epoch"]) + 1, float(state["best_score"])
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
            for name, value in terms.items():
                sums[name] = sums.get(name, 0.0) + float(value.detach())
        return {name: total / len(batches) for name, total in sums.items()}

    def fit(self, progress=print) -> dict[str, float]:
        """Train to ``config.epochs``; returns the best validation metrics of this run."""
        best = {}
        self.out.mkdir(parents=True, exist_ok=True)
        for epoch in range(self.start_epoch, self.config.epochs):
            losses = self.train_epoch(epoch)
            metrics = self.validate()
            score = selection_score(metrics, self.config.select_metric)
            if score > self.best_score:
                self.best_score, best = score, metrics
                self.model.save_pretrained(self.out / "best", extra=self.settings)
            self.save_last(epoch)
            record = {"epoch": epoch + 1, "loss": losses, "val": metrics, "best": self.best_score}
            with open(self.out / "history.jsonl", "a") as handle:
                handle.write(json.dumps(record) + "\n")
            progress(f"epoch {epoch + 1}: loss {losses['total']:.4f}  "
                     f"R1@0.5 {metrics['R1@0.5']:.2f}  R1@0.7 {metrics['R1@0.7']:.2f}  "
                     f"mIoU {metrics['mIoU']:.2f}")
        return best

    def save_last(self, epoch: int) -> None:
        """OUT/last: the model and the optimizer state after ``epoch`` (atomic)."""
        self.model.save_pretrained(self.out / "last", extra=self.settings)
        state = {"optimizer": self.optimizer.state_dict(), "epoch": epoch,
                 "best_score": self.best_score}
        tmp = self.out / "last" / "state.pt.tmp"
        torch.save(state, tmp)
        tmp.replace(self.out / "last" / "state.pt")
