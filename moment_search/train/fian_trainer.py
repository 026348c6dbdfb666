"""Train FIAN: seeded, resumable, validated every epoch, best checkpoint kept.

The loss (paper Eq. 15-18) is a pure function of tensors: the alignment loss, a BCE of each
anchor's confidence against its IoU o_j, averaged over the positive anchors (o_j > tau) and over
the negative ones separately and summed (Eq. 16); the boundary loss, smooth L1 of the predicted
offsets over the positives (Eq. 17); total = align + alpha * boundary (Eq. 18).

Output directory (as ``pln_trainer``)::

    OUT/best/        config.json + model.safetensors of the kept epoch (the model): the best
                     validation epoch, or the last with keep = "last" (``train.loop``)
    OUT/last/        the last epoch's model + state.pt (optimizer, epoch, best score): resume
    OUT/history.jsonl one line per epoch: losses and validation metrics
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..models.fian import FIAN, moments_in_seconds
from .fian_data import FIANBatch, build_fian_examples, collate_fian
from .localizer_trainer import LocalizerTrainer
from .loop import RecipeConfig

PAPER_TAU = 0.55  # "The positive threshold value tau is set to 0.55"
PAPER_ALPHA = 0.005  # alpha of Eq. 18 for Charades-STA (and TACoS)


@dataclass
class FIANTrainConfig(RecipeConfig):
    """Optimisation settings (paper Sec. 4.3, Charades-STA, unless noted), beside the
    shared :class:`RecipeConfig`."""

    epochs: int = 12  # (the paper gives none)
    batch_size: int = 64
    lr: float = 4e-4  # Adam
    weight_decay: float = 0.0  # (not in the paper)
    tau: float = PAPER_TAU
    alpha: float = PAPER_ALPHA
    # Temporal NMS at inference (the paper uses NMS but gives no threshold; 0.5 is the
    # project's default for every reranker).
    nms_threshold: float = 0.5


def _weighted_mean(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """sum(values * weights) / sum(weights); 0 when no weight is positive."""
    total = weights.sum()
    if total <= 0:
        return values.new_zeros(())
    return (values * weights).sum() / total


def fian_loss(logits: torch.Tensor, offsets: torch.Tensor, iou: torch.Tensor,
              target_offsets: torch.Tensor, tau: float = PAPER_TAU, alpha: float = PAPER_ALPHA,
              query_weights: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Eq. 15-18 over a batch; returns ``align``, ``boundary`` (unweighted by alpha), ``total``.

    N_pos and N_neg count anchors over the whole batch ("N_pos positive samples ... in total").
    With per-query weights w_b (extra pseudo-queries weigh less), every anchor of query b counts
    w_b times in both sums and both counts, so all weights 1 give the paper's loss. A batch with
    no positive anchor has no positive or boundary term (0).

    Args:
        logits: (B, A) confidence logits; cs = sigmoid(logits).
        offsets: (B, A, 2) predicted offsets, in steps.
        iou: (B, A) o_j in [0, 1].
        target_offsets: (B, A, 2) ground truth minus anchor, in steps.
        tau: the positive threshold.
        alpha: the trade-off of Eq. 18.
        query_weights: (B,) per-query weights (None: all 1).
    """
    weights = torch.ones_like(iou[:, 0]) if query_weights is None else query_weights
    per_anchor = weights[:, None].expand_as(iou)  # (B, A)
    positive = (iou > tau).to(iou.dtype)
    bce = F.binary_cross_entropy_with_logits(logits, iou, reduction="none")  # -L_j, Eq. 15
    align = (_weighted_mean(bce, per_anchor * positive)
             + _weighted_mean(bce, per_anchor * (1 - positive)))  # Eq. 16
    smooth = F.smooth_l1_loss(offsets, target_offsets, reduction="none").sum(-1)  # (B, A)
    boundary = _weighted_mean(smooth, per_anchor * positive)  # Eq. 17
    return {"align": align, "boundary": boundary, "total": align + alpha * boundary}  # Eq. 18


def batch_loss(model: FIAN, batch: FIANBatch, config: FIANTrainConfig
               ) -> dict[str, torch.Tensor]:
    """All loss terms of one batch."""
    out = model(batch.steps, batch.tokens, batch.token_mask)
    return fian_loss(out.logits, out.offsets, batch.iou, batch.offsets, config.tau,
                     config.alpha, batch.weights)


class FIANTrainer(LocalizerTrainer):
    """Trains a FIAN model (arguments as ``LocalizerTrainer``; MiniLM keeps the model's
    ``max_tokens``)."""

    model_class = FIAN
    example_builder = staticmethod(build_fian_examples)
    collater = staticmethod(collate_fian)

    def token_limit(self) -> int:
        """The model's ``max_tokens``."""
        return self.model_config.max_tokens

    def predict(self, model: FIAN, batch: FIANBatch, examples) -> list:
        """The regressed anchors of each example, in seconds."""
        query = model.encode_query(batch.tokens, batch.token_mask)
        scores, spans = model.score_encoded(batch.steps, query)  # (B, A), (B, A, 2)
        moments = [moments_in_seconds(scores[i], spans[i], e.duration, model.config.n_steps)
                   for i, e in enumerate(examples)]
        return [(m[:, 2], m[:, :2]) for m in moments]

    def loss_terms(self, batch: FIANBatch, epoch: int) -> dict[str, torch.Tensor]:
        """Eq. 18 on one batch."""
        return batch_loss(self.model, batch, self.config)
