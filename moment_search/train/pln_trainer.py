"""Train PLN: seeded, resumable, validated every epoch, best checkpoint kept.

The loss (paper Eq. 6-8) is a pure function of tensors: a BCE per stage over that stage's
proposals against soft IoU labels (tau = 0.5), summed with weights lambda_t.

Output directory (as ``fvmr_trainer``)::

    OUT/best/        config.json + model.safetensors of the best validation epoch (the model)
    OUT/last/        the last epoch's model + state.pt (optimizer, epoch, best score): resume
    OUT/history.jsonl one line per epoch: losses and validation metrics
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ..data.corpus import Corpus
from ..eval.metrics import single_video_metrics
from ..geometry.proposals import proposal_spans
from ..models.pln import PLN, PLNConfig
from ..search.localize import rank_moments
from .loop import EpochTrainer
from .losses import soft_bce
from .pln_data import PAPER_TAU, PLNBatch, PLNExample, TokenSource, build_pln_examples, collate_pln
from .reranker_data import load_reranker_data

# lambda_t of Eq. 8 by number of stages (paper Sec. IV-A3); one stage is plain 2D-TAN.
PAPER_STAGE_WEIGHTS = {1: (1.0,), 2: (1.0, 1.5), 3: (1.0, 1.3, 1.5), 4: (1.0, 1.2, 1.5, 2.0)}


@dataclass
class PLNTrainConfig:
    """Optimisation settings (paper Sec. IV-A3 unless noted)."""

    epochs: int = 50  # "The maximum number of epochs is 50"
    batch_size: int = 32
    lr: float = 1e-4  # Adam
    weight_decay: float = 0.0  # (not in the paper)
    tau: float = PAPER_TAU  # IoU threshold of the soft labels, Eq. 7
    stage_weights: tuple[float, ...] | None = None  # lambda_t; None: PAPER_STAGE_WEIGHTS[T]
    strategy: int = 1  # inference strategy for validation (paper: 1, the last stage)
    nms_threshold: float = 0.45  # Charades-STA (paper, after 2D-TAN); 0.4 TACoS, 0.5 ActivityNet
    select_metric: str = "R1@0.5+R1@0.7"  # validation score that picks the best epoch
    seed: int = 0
    threads: int | None = None  # torch CPU threads (None: torch's default)
    # The recipe (see train.loop, train.extras, train.folds); defaults reproduce the paper's.
    extras: tuple[str, ...] = ()  # --extra specs, e.g. ("charades-actions:0.5",)
    ema_decay: float = 0.0
    smooth_epochs: int = 1
    patience: int = 0
    fold: str | None = None


def resolve_stage_weights(weights: Sequence[float] | None, n_stages: int) -> tuple[float, ...]:
    """The lambda_t to use: ``weights`` if given (one per stage), else the paper's.

    Raises:
        ValueError: when ``weights`` has the wrong length, or None is given for a stage count
            the paper has no weights for (more than 4).
    """
    if weights is None:
        if n_stages not in PAPER_STAGE_WEIGHTS:
            raise ValueError(f"the paper gives no loss weights for {n_stages} stages; pass "
                             f"stage_weights with {n_stages} values")
        return PAPER_STAGE_WEIGHTS[n_stages]
    if len(weights) != n_stages:
        raise ValueError(f"stage_weights {tuple(weights)} must have one value per stage "
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


def epoch_batches(examples: list[PLNExample], batch_size: int, seed: int, epoch: int
                  ) -> list[PLNBatch]:
    """Shuffled batches for one epoch; the order depends only on (seed, epoch)."""
    order = torch.randperm(len(examples), generator=torch.Generator().manual_seed(seed + epoch))
    chunks = [order[i:i + batch_size] for i in range(0, len(examples), batch_size)]
    return [collate_pln([examples[int(j)] for j in chunk]) for chunk in chunks]


@torch.inference_mode()
def validate(model: PLN, examples: list[PLNExample], corpus: Corpus, strategy: int = 1,
             nms_threshold: float = 0.45, k: int = 5, batch_size: int = 128) -> dict[str, float]:
    """Single-video R@n, IoU=m and mIoU of ``score_proposals`` + NMS on ``examples``."""
    model.eval()
    predictions = {}
    for start in range(0, len(examples), batch_size):
        chunk = examples[start:start + batch_size]
        batch = collate_pln(chunk)
        scores = model.score_proposals(batch.clips, batch.tokens, batch.token_mask,
                                       strategy).numpy()  # (B, P)
        for example, row in zip(chunk, scores, strict=True):
            spans = proposal_spans(model.final_clips, example.duration)
            predictions[example.qid] = rank_moments(row, spans, k, nms_threshold)
    queries = [q for q in corpus.queries if q.qid in predictions]
    return single_video_metrics(predictions, queries)


class PLNTrainer(EpochTrainer):
    """Trains a PLN model on the train split of a corpus, validating on another split.

    Args:
        data_dir: a corpus directory (see ``data.corpus_dir.open_corpus``).
        out_dir: where best/, last/ and history.jsonl go.
        model_config, train_config: the model and optimisation settings.
        train_split, val_split: annotation splits.
        feature_rate: features per second for videos whose manifest gives none.
        max_tokens: word-piece tokens kept per query.
        encoder: a token encoder to reuse; None loads MiniLM (``TokenEncoder``).

    Raises:
        ValueError: stage weights that do not match the model's stages.
    """

    model_class = PLN

    def __init__(self, data_dir: str | Path, out_dir: str | Path, model_config: PLNConfig,
                 train_config: PLNTrainConfig, train_split: str = "train",
                 val_split: str = "val", feature_rate: float | None = None,
                 max_tokens: int = 32, encoder: TokenSource | None = None,
                 charades_dir: str | Path | None = None):
        self.out = Path(out_dir)
        self.model_config = model_config
        self.config = train_config
        self.weights = resolve_stage_weights(train_config.stage_weights,
                                             len(model_config.stage_clips))
        data = load_reranker_data(data_dir, train_config, feature_rate, max_tokens,
                                  encoder, charades_dir, train_split, val_split,
                                  strategy=train_config.strategy)
        self.settings, self.train_corpus, self.val_corpus = data.settings, data.train, data.val
        self.train_examples = self._build(data.train, data.store, data.encoder,
                                          data.train_weights)
        self.val_examples = self._build(data.val, data.store, data.encoder, {})
        self.start(PLN(model_config))

    def _build(self, corpus, store, encoder, weights) -> list[PLNExample]:
        return build_pln_examples(corpus, store, self.model_config.stage_clips, encoder,
                                  self.config.tau, weights)

    def epoch_batches(self, epoch: int) -> list[PLNBatch]:
        """Shuffled training batches of one epoch."""
        return epoch_batches(self.train_examples, self.config.batch_size, self.config.seed, epoch)

    def loss_terms(self, batch: PLNBatch, epoch: int) -> dict[str, torch.Tensor]:
        """The weighted per-stage BCE of one batch (Eq. 8)."""
        return batch_loss(self.model, batch, self.weights)

    def validate(self) -> dict[str, float]:
        """Single-video metrics on the validation split with the configured strategy."""
        return validate(self.eval_model, self.val_examples, self.val_corpus,
                        self.config.strategy, self.config.nms_threshold)
