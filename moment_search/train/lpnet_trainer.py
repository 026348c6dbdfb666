"""Train LPNet (paper Sec. 3.5, 4.3): seeded, resumable, validated every epoch.

One Adam over every parameter minimises L_IoU + L_KL + lambda L_reg. The paper trains the
proposal boxes with L_IoU and the rest of the network with L (Eq. 12); the model enters the
boxes into the rating layer detached and L_IoU depends on nothing but the boxes, so the sum
routes each gradient where the paper says (the official code runs two optimizers for the same
split). Paper: Adam, lr 1e-4, lambda 100, 100 epochs with early stopping.

Output directory (as ``fian_trainer``)::

    OUT/best/        config.json + model.safetensors of the best validation epoch (the model)
    OUT/last/        the last epoch's model + state.pt (optimizer, epoch, best score): resume
    OUT/history.jsonl one line per epoch: losses and validation metrics
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..data.corpus import Corpus
from ..eval.metrics import single_video_metrics
from ..models.lpnet import LPNet, LPNetConfig
from ..search.localize import rank_moments
from .loop import EpochTrainer
from .lpnet_data import LPNetBatch, LPNetExample, build_lpnet_examples, collate_lpnet
from .lpnet_losses import (
    boundary_kl_loss,
    matching_regression_loss,
    proposal_iou_loss,
    proposal_window_iou,
)
from .pln_data import TokenSource
from .reranker_data import load_reranker_data


@dataclass
class LPNetTrainConfig:
    """Optimisation settings (paper Sec. 4.3 unless noted)."""

    epochs: int = 30  # (paper: 100 with early stopping; fewer for CPU runs, pick on val)
    batch_size: int = 32  # (not in the paper)
    lr: float = 1e-4  # Adam (paper: 1e-4)
    weight_decay: float = 0.0  # (not in the paper)
    reg_weight: float = 100.0  # lambda of Eq. 12 (paper: 100)
    kl_weight: float = 1.0  # weight of L_KL (paper: 1; 0 is the no-boundary-loss ablation)
    iou_weight: float = 1.0  # weight of L_IoU (0 freezes the proposals: the fixed ablation)
    nms_threshold: float = 0.5  # temporal NMS of the ranked proposals (not in the paper)
    select_metric: str = "R1@0.5+R1@0.7"  # validation score that picks the best epoch
    seed: int = 0
    threads: int | None = None  # torch CPU threads (None: torch's default)
    # The recipe (see train.loop, train.extras, train.folds); defaults reproduce the paper's.
    extras: tuple[str, ...] = ()  # --extra specs, e.g. ("charades-actions:0.5",)
    ema_decay: float = 0.0
    smooth_epochs: int = 1
    patience: int = 0
    fold: str | None = None


def lpnet_loss(model: LPNet, batch: LPNetBatch, config: LPNetTrainConfig
               ) -> dict[str, torch.Tensor]:
    """Eq. 7, 10, 11 on one batch: ``iou``, ``reg``, ``kl`` and ``total`` = iou_weight x iou +
    kl_weight x kl + reg_weight x reg (Eq. 12 plus the proposals' own loss)."""
    out = model(batch.clips, batch.tokens, batch.token_mask)
    targets = proposal_window_iou(out.spans.detach(), batch.windows, batch.window_mask)
    terms = {"iou": proposal_iou_loss(out.spans, batch.windows, batch.window_mask,
                                      batch.weights),  # Eq. 7
             "reg": matching_regression_loss(out.logits, targets, batch.weights),  # Eq. 10
             "kl": boundary_kl_loss(out.start_logits, out.end_logits, batch.start_labels,
                                    batch.end_labels, batch.weights)}  # Eq. 11
    terms["total"] = (config.iou_weight * terms["iou"] + config.kl_weight * terms["kl"]
                      + config.reg_weight * terms["reg"])  # Eq. 12
    return terms


def epoch_batches(examples: list[LPNetExample], batch_size: int, seed: int, epoch: int
                  ) -> list[LPNetBatch]:
    """Shuffled batches for one epoch; the order depends only on (seed, epoch)."""
    order = torch.randperm(len(examples), generator=torch.Generator().manual_seed(seed + epoch))
    chunks = [order[i:i + batch_size] for i in range(0, len(examples), batch_size)]
    return [collate_lpnet([examples[int(j)] for j in chunk]) for chunk in chunks]


@torch.inference_mode()
def validate(model: LPNet, examples: list[LPNetExample], corpus: Corpus,
             nms_threshold: float = 0.5, k: int = 5, batch_size: int = 128) -> dict[str, float]:
    """Single-video R@n, IoU=m and mIoU of the rated proposals + NMS on ``examples``."""
    model.eval()
    predictions = {}
    for start in range(0, len(examples), batch_size):
        chunk = examples[start:start + batch_size]
        batch = collate_lpnet(chunk)
        query = model.encode_query(batch.tokens, batch.token_mask)
        scores, spans = model.score_encoded(batch.clips, query)  # (B, k), (k, 2)
        for i, example in enumerate(chunk):
            moments = model.moments(scores[i], spans, example.duration)
            predictions[example.qid] = rank_moments(moments[:, 2], moments[:, :2], k,
                                                    nms_threshold)
    queries = [q for q in corpus.queries if q.qid in predictions]
    return single_video_metrics(predictions, queries)


class LPNetTrainer(EpochTrainer):
    """Trains an LPNet model on the train split of a corpus, validating on another split.

    Args:
        data_dir: a corpus directory (see ``data.corpus_dir.open_corpus``).
        out_dir: where best/, last/ and history.jsonl go.
        model_config, train_config: the model and optimisation settings.
        train_split, val_split: annotation splits.
        feature_rate: features per second for videos whose manifest gives none.
        encoder: a token encoder to reuse; None loads MiniLM (``TokenEncoder``).
        charades_dir: the Charades annotations for ``--extra`` (default: beside the data).
    """

    model_class = LPNet

    def __init__(self, data_dir: str | Path, out_dir: str | Path, model_config: LPNetConfig,
                 train_config: LPNetTrainConfig, train_split: str = "train",
                 val_split: str = "val", feature_rate: float | None = None,
                 encoder: TokenSource | None = None,
                 charades_dir: str | Path | None = None):
        self.out = Path(out_dir)
        self.config = train_config
        data = load_reranker_data(data_dir, train_config, feature_rate, 32,
                                  encoder, charades_dir, train_split, val_split)
        self.settings, self.train_corpus, self.val_corpus = data.settings, data.train, data.val
        self.train_examples = build_lpnet_examples(data.train, data.store, model_config,
                                                   data.encoder, data.train_weights)
        self.val_examples = build_lpnet_examples(data.val, data.store, model_config,
                                                 data.encoder)
        self.start(LPNet(model_config))

    def epoch_batches(self, epoch: int) -> list[LPNetBatch]:
        """Shuffled training batches of one epoch."""
        return epoch_batches(self.train_examples, self.config.batch_size, self.config.seed, epoch)

    def loss_terms(self, batch: LPNetBatch, epoch: int) -> dict[str, torch.Tensor]:
        """Eq. 7 + Eq. 12 on one batch."""
        return lpnet_loss(self.model, batch, self.config)

    def validate(self) -> dict[str, float]:
        """Single-video metrics on the validation split."""
        return validate(self.eval_model, self.val_examples, self.val_corpus,
                        self.config.nms_threshold)
