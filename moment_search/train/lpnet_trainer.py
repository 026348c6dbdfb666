"""Train LPNet (paper Sec. 3.5, 4.3): seeded, resumable, validated every epoch.

One Adam over every parameter minimises L_IoU + L_KL + lambda L_reg. The paper trains the
proposal boxes with L_IoU and the rest of the network with L (Eq. 12); the model enters the
boxes into the rating layer detached and L_IoU depends on nothing but the boxes, so the sum
routes each gradient where the paper says (the official code runs two optimizers for the same
split). Paper: Adam, lr 1e-4, lambda 100, 100 epochs with early stopping.

Output directory (as ``fian_trainer``)::

    OUT/best/        config.json + model.safetensors of the kept epoch (the model): the best
                     validation epoch, or the last with keep = "last" (``train.loop``)
    OUT/last/        the last epoch's model + state.pt (optimizer, epoch, best score): resume
    OUT/init/        the model before its first step (where the learnable proposals started;
                     ``benchmark lpnet-proposals --before OUT/init``)
    OUT/history.jsonl one line per epoch: losses and validation metrics
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..models.lpnet import LPNet
from .localizer_trainer import LocalizerTrainer
from .loop import RecipeConfig
from .lpnet_data import LPNetBatch, build_lpnet_examples, collate_lpnet
from .lpnet_losses import (
    boundary_kl_loss,
    matching_regression_loss,
    proposal_iou_loss,
    proposal_window_iou,
)


@dataclass
class LPNetTrainConfig(RecipeConfig):
    """Optimisation settings (paper Sec. 4.3 unless noted), beside the
    shared :class:`RecipeConfig`."""

    epochs: int = 30  # (paper: 100 with early stopping; fewer for CPU runs, pick on val)
    batch_size: int = 32  # (not in the paper)
    lr: float = 1e-4  # Adam (paper: 1e-4)
    weight_decay: float = 0.0  # (not in the paper)
    reg_weight: float = 100.0  # lambda of Eq. 12 (paper: 100)
    kl_weight: float = 1.0  # weight of L_KL (paper: 1; 0 is the no-boundary-loss ablation)
    iou_weight: float = 1.0  # weight of L_IoU (0 freezes the proposals: the fixed ablation)
    nms_threshold: float = 0.5  # temporal NMS of the ranked proposals (not in the paper)


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


class LPNetTrainer(LocalizerTrainer):
    """Trains an LPNet model (arguments as ``LocalizerTrainer``)."""

    model_class = LPNet
    example_builder = staticmethod(build_lpnet_examples)
    collater = staticmethod(collate_lpnet)

    def predict(self, model: LPNet, batch: LPNetBatch, examples) -> list:
        """The rated learned proposals of each example, in seconds."""
        query = model.encode_query(batch.tokens, batch.token_mask)
        scores, spans = model.score_encoded(batch.clips, query)  # (B, k), (k, 2)
        moments = [model.moments(scores[i], spans, e.duration) for i, e in enumerate(examples)]
        return [(m[:, 2], m[:, :2]) for m in moments]

    def loss_terms(self, batch: LPNetBatch, epoch: int) -> dict[str, torch.Tensor]:
        """Eq. 7 + Eq. 12 on one batch."""
        return lpnet_loss(self.model, batch, self.config)

    def fit(self, progress=print) -> dict[str, float]:
        """Keep the untrained model in OUT/init (a fresh run only), then train."""
        if self.start_epoch == 0:
            self.model.save_pretrained(self.out / "init", extra=self.settings)
        return super().fit(progress)
