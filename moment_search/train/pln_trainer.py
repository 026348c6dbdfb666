"""Train PLN: seeded, resumable, validated every epoch, best checkpoint kept.

The loss (paper Eq. 6-8) is a pure function of tensors: a BCE per stage over that stage's
proposals against soft IoU labels (tau = 0.5), summed with weights lambda_t.

Output directory (as ``fvmr_trainer``)::

    OUT/best/        config.json + model.safetensors of the kept epoch (the model): the best
                     validation epoch, or the last with keep = "last" (``train.loop``)
    OUT/last/        the last epoch's model + state.pt (optimizer, epoch, best score): resume
    OUT/history.jsonl one line per epoch: losses and validation metrics
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import InputError
from ..geometry.proposals import proposal_spans
from ..models.pln import PLN, PLNConfig
from .batching import MAX_TOKENS, TokenSource
from .localizer_trainer import LocalizerTrainer
from .loop import RecipeConfig
from .losses import soft_bce
from .pln_data import PAPER_TAU, PLNBatch, PLNExample, build_pln_examples, collate_pln

# lambda_t of Eq. 8 by number of stages (paper Sec. IV-A3); one stage is plain 2D-TAN.
PAPER_STAGE_WEIGHTS = {1: (1.0,), 2: (1.0, 1.5), 3: (1.0, 1.3, 1.5), 4: (1.0, 1.2, 1.5, 2.0)}


@dataclass
class PLNTrainConfig(RecipeConfig):
    """Optimisation settings (paper Sec. IV-A3 unless noted), beside the
    shared :class:`RecipeConfig`."""

    epochs: int = 50  # "The maximum number of epochs is 50"
    batch_size: int = 32
    lr: float = 1e-4  # Adam
    weight_decay: float = 0.0  # (not in the paper)
    tau: float = PAPER_TAU  # IoU threshold of the soft labels, Eq. 7
    stage_weights: tuple[float, ...] | None = None  # lambda_t; None: PAPER_STAGE_WEIGHTS[T]
    strategy: int = 1  # inference strategy for validation (paper: 1, the last stage)
    nms_threshold: float = 0.45  # Charades-STA (paper, after 2D-TAN); 0.4 TACoS, 0.5 ActivityNet


def resolve_stage_weights(weights: Sequence[float] | None, n_stages: int) -> tuple[float, ...]:
    """The lambda_t to use: ``weights`` if given (one per stage), else the paper's.

    Raises:
        InputError: when ``weights`` has the wrong length, or None is given for a stage count
            the paper has no weights for (more than 4).
    """
    if weights is None:
        if n_stages not in PAPER_STAGE_WEIGHTS:
            raise InputError(f"the paper gives no loss weights for {n_stages} stages; pass "
                             f"stage_weights with {n_stages} values")
        return PAPER_STAGE_WEIGHTS[n_stages]
    if len(weights) != n_stages:
        raise InputError(f"stage_weights {tuple(weights)} must have one value per stage "
                         f"({n_stages})")
    return tuple(float(w) for w in weights)


def stage_bce(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor,
              query_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Eq. 6: BCE of sigmoid(logits) against soft labels over the V^t proposal cells, mean over B.

    Args:
        logits: (B, N, N) relevance logits of one stage.
        labels: (B, N, N) soft IoU labels in [0, 1].
        mask: (N, N) bool, True on the stage's proposal cells.
        query_weights: (B,) per-query loss weights (None: all 1).
    """
    return soft_bce(logits[:, mask], labels[:, mask], query_weights)  # (B, V^t) each


def pln_loss(logits: Sequence[torch.Tensor], labels: Sequence[torch.Tensor],
             masks: Sequence[torch.Tensor], weights: Sequence[float],
             query_weights: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Eq. 8: sum_t lambda_t L_t. Returns each unweighted ``bce_t<t>`` (1-based) and ``total``."""
    terms = {f"bce_t{t + 1}": stage_bce(x, y, m, query_weights)
             for t, (x, y, m) in enumerate(zip(logits, labels, masks, strict=True))}
    terms["total"] = sum(w * term for w, term in zip(weights, terms.values(), strict=True))
    return terms


def batch_loss(model: PLN, batch: PLNBatch, weights: Sequence[float]) -> dict[str, torch.Tensor]:
    """All loss terms of one batch."""
    out = model(batch.clips, batch.tokens, batch.token_mask)
    return pln_loss(out.logits, batch.labels, out.masks, weights, batch.weights)


class PLNTrainer(LocalizerTrainer):
    """Trains a PLN model (arguments as ``LocalizerTrainer``, plus ``max_tokens``: word-piece
    tokens kept per query).

    Raises:
        InputError: stage weights that do not match the model's stages.
    """

    model_class = PLN
    collater = staticmethod(collate_pln)

    def __init__(self, data_dir: str | Path, out_dir: str | Path, model_config: PLNConfig,
                 train_config: PLNTrainConfig, train_split: str = "train",
                 val_split: str = "val", feature_rate: float | None = None,
                 max_tokens: int = MAX_TOKENS, encoder: TokenSource | None = None,
                 charades_dir: str | Path | None = None):
        self.weights = resolve_stage_weights(train_config.stage_weights,
                                             len(model_config.stage_clips))
        self.max_tokens = max_tokens
        super().__init__(data_dir, out_dir, model_config, train_config, train_split, val_split,
                         feature_rate, encoder, charades_dir)

    def data_options(self) -> dict:
        """The proposal-scoring strategy is stored with the checkpoint."""
        return {"strategy": self.config.strategy}

    def build_examples(self, corpus, store, encoder, weights) -> list[PLNExample]:
        """One example per query (clips, tokens, per-stage soft labels)."""
        return build_pln_examples(corpus, store, self.model_config.stage_clips, encoder,
                                  self.config.tau, weights)

    def predict(self, model: PLN, batch: PLNBatch, examples) -> list:
        """Every 2D-map proposal of each example, scored with the configured strategy."""
        scores = model.score_proposals(batch.clips, batch.tokens, batch.token_mask,
                                       self.config.strategy).numpy()  # (B, P)
        return [(row, proposal_spans(model.final_clips, e.duration))
                for row, e in zip(scores, examples, strict=True)]

    def loss_terms(self, batch: PLNBatch, epoch: int) -> dict[str, torch.Tensor]:
        """The weighted per-stage BCE of one batch (Eq. 8)."""
        return batch_loss(self.model, batch, self.weights)
