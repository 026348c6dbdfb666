"""Train DRN in the paper's three steps (Sec. 3.6): seeded, resumable, validated every epoch.

1. location + matching: every parameter but the IoU head's, Eq. 5 + Eq. 6, lr ``lr``
   (paper: 1e-3);
2. IoU head: only the IoU regression head, Eq. 7, lr ``iou_lr`` (paper: the first lr / 100);
3. joint fine-tune: every parameter, Eq. 5 + 6 + 7, lr ``finetune_lr`` (paper: 1e-6).

Each step starts a fresh Adam (the official code runs each as its own job). While step 1 runs
the IoU head is untrained, so epochs of step 1 are validated (and, if best, saved) with the
matching score alone (``use_iou_score`` False); later ones with m_t x u_t. The best epoch over
all steps is what ships. The epochs of each step are ``stage_epochs`` (the paper gives none for
Charades; the official script runs step 1 for 10 epochs).

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
from ..models.drn import DRN, DRNConfig, decode_boxes
from ..search.localize import rank_moments
from .drn_data import DRNBatch, DRNExample, build_drn_examples, collate_drn
from .drn_losses import iou_head_loss, location_loss, matching_loss
from .loop import EpochTrainer
from .pln_data import TokenSource
from .reranker_data import load_reranker_data

IOU_HEAD_PREFIX = "heads.iou."  # the parameters step 2 trains


@dataclass
class DRNTrainConfig:
    """Optimisation settings (paper Sec. 4.2 unless noted)."""

    stage_epochs: tuple[int, int, int] = (10, 3, 2)  # epochs of steps 1, 2, 3 (not in the paper)
    batch_size: int = 32
    lr: float = 1e-3  # step 1 (Adam)
    iou_lr: float = 1e-5  # step 2: "decay it by a factor of 100"
    finetune_lr: float = 1e-6  # step 3
    weight_decay: float = 0.0  # (not in the paper)
    min_overlap: float = 0.0  # Eq. 7 trains on boxes with IoU > this (see drn_losses)
    nms_threshold: float = 0.6  # temporal NMS at inference (official fcos_nms_thr)
    select_metric: str = "R1@0.5+R1@0.7"  # validation score that picks the best epoch
    seed: int = 0
    threads: int | None = None  # torch CPU threads (None: torch's default)
    # The recipe (see train.loop, train.extras, train.folds); defaults reproduce the paper's.
    extras: tuple[str, ...] = ()  # --extra specs, e.g. ("charades-actions:0.5",)
    ema_decay: float = 0.0
    smooth_epochs: int = 1
    patience: int = 0
    fold: str | None = None

    def __post_init__(self) -> None:
        self.stage_epochs = tuple(int(n) for n in self.stage_epochs)
        if len(self.stage_epochs) != 3 or min(self.stage_epochs) < 0 \
                or self.stage_epochs[0] < 1:
            raise ValueError(f"stage_epochs must be three counts, the first >= 1, "
                             f"got {self.stage_epochs}")

    @property
    def epochs(self) -> int:
        """All epochs of the three steps."""
        return sum(self.stage_epochs)

    def stage_at(self, epoch: int) -> int:
        """The step (1, 2 or 3) that 0-based ``epoch`` belongs to."""
        first, second, _ = self.stage_epochs
        return 1 if epoch < first else 2 if epoch < first + second else 3

    def stage_lr(self, stage: int) -> float:
        """The learning rate of a step."""
        return (self.lr, self.iou_lr, self.finetune_lr)[stage - 1]


def drn_loss(model: DRN, batch: DRNBatch, stage: int, min_overlap: float = 0.0
             ) -> dict[str, torch.Tensor]:
    """Eq. 5-7 on one batch: ``match``, ``location``, ``iou`` and their ``total`` for a step
    (step 1: match + location; step 2: iou; step 3: all three)."""
    out = model(batch.segments, batch.tokens, batch.token_mask)
    terms = {"match": matching_loss(out.logits, batch.labels, batch.weights),  # Eq. 6
             "location": location_loss(out.distances, batch.distances, batch.labels,
                                       batch.weights)}  # Eq. 5
    boxes = decode_boxes(model.centres, out.distances, model.config.n_segments)
    terms["iou"] = iou_head_loss(out.iou_logits, boxes, batch.windows, batch.window_mask,
                                 batch.weights, min_overlap)  # Eq. 7
    parts = {1: ("match", "location"), 2: ("iou",), 3: ("match", "location", "iou")}[stage]
    terms["total"] = sum(terms[name] for name in parts)
    return terms


def set_stage(model: DRN, stage: int) -> None:
    """Which parameters train in a step, and whether the final score uses u_t."""
    for name, parameter in model.named_parameters():
        is_iou = name.startswith(IOU_HEAD_PREFIX)
        parameter.requires_grad_(stage == 3 or is_iou == (stage == 2))
    model.config.use_iou_score = stage > 1


def epoch_batches(examples: list[DRNExample], batch_size: int, seed: int, epoch: int
                  ) -> list[DRNBatch]:
    """Shuffled batches for one epoch; the order depends only on (seed, epoch)."""
    order = torch.randperm(len(examples), generator=torch.Generator().manual_seed(seed + epoch))
    chunks = [order[i:i + batch_size] for i in range(0, len(examples), batch_size)]
    return [collate_drn([examples[int(j)] for j in chunk]) for chunk in chunks]


@torch.inference_mode()
def validate(model: DRN, examples: list[DRNExample], corpus: Corpus, nms_threshold: float = 0.6,
             k: int = 5, batch_size: int = 128) -> dict[str, float]:
    """Single-video R@n, IoU=m and mIoU of DRN's candidates + NMS on ``examples``."""
    model.eval()
    predictions = {}
    for start in range(0, len(examples), batch_size):
        chunk = examples[start:start + batch_size]
        batch = collate_drn(chunk)
        query = model.encode_query(batch.tokens, batch.token_mask)
        matching, scores, boxes = model.score_encoded(batch.segments, query)
        for i, example in enumerate(chunk):
            moments = model.candidates(matching[i], scores[i], boxes[i], example.duration)
            predictions[example.qid] = rank_moments(moments[:, 2], moments[:, :2], k,
                                                    nms_threshold)
    queries = [q for q in corpus.queries if q.qid in predictions]
    return single_video_metrics(predictions, queries)


class DRNTrainer(EpochTrainer):
    """Trains a DRN model on the train split of a corpus, validating on another split.

    Args:
        data_dir: a corpus directory (see ``data.corpus_dir.open_corpus``).
        out_dir: where best/, last/ and history.jsonl go.
        model_config, train_config: the model and optimisation settings.
        train_split, val_split: annotation splits.
        feature_rate: features per second for videos whose manifest gives none.
        encoder: a token encoder to reuse; None loads MiniLM (``TokenEncoder``).
        charades_dir: the Charades annotations for ``--extra`` (default: beside the data).
    """

    model_class = DRN

    def __init__(self, data_dir: str | Path, out_dir: str | Path, model_config: DRNConfig,
                 train_config: DRNTrainConfig, train_split: str = "train",
                 val_split: str = "val", feature_rate: float | None = None,
                 encoder: TokenSource | None = None,
                 charades_dir: str | Path | None = None):
        self.out = Path(out_dir)
        self.config = train_config
        data = load_reranker_data(data_dir, train_config, feature_rate, 32,
                                  encoder, charades_dir, train_split, val_split)
        self.settings, self.train_corpus, self.val_corpus = data.settings, data.train, data.val
        self.train_examples = build_drn_examples(data.train, data.store, model_config,
                                                 data.encoder, data.train_weights)
        self.val_examples = build_drn_examples(data.val, data.store, model_config, data.encoder)
        self.stage = 1
        self.start(DRN(model_config))

    def new_optimizer(self) -> torch.optim.AdamW:
        """A fresh Adam over the parameters the current step trains, at its learning rate."""
        set_stage(self.model, self.stage)
        trained = [p for p in self.model.parameters() if p.requires_grad]
        return torch.optim.AdamW(trained, lr=self.config.stage_lr(self.stage),
                                 weight_decay=self.config.weight_decay)

    def enter_stage(self, stage: int) -> None:
        """Switch the model (and its average) to a step and start its optimizer."""
        self.stage = stage
        if self.ema is not None:
            set_stage(self.ema.module, stage)
        self.optimizer = self.new_optimizer()

    def resume(self) -> bool:
        """Load OUT/last in the step of its epoch; the next epoch switches step if it must."""
        state_path = self.out / "last" / "state.pt"
        if state_path.is_file():
            epoch = int(torch.load(state_path, weights_only=True)["epoch"])
            self.stage = self.config.stage_at(epoch)
        resumed = super().resume()  # its new_optimizer() sets the model's step
        if resumed:
            if self.ema is not None:
                set_stage(self.ema.module, self.stage)
        return resumed

    def epoch_batches(self, epoch: int) -> list[DRNBatch]:
        """Shuffled training batches of one epoch (entering the epoch's step first)."""
        stage = self.config.stage_at(epoch)
        if stage != self.stage:
            self.enter_stage(stage)
        return epoch_batches(self.train_examples, self.config.batch_size, self.config.seed, epoch)

    def loss_terms(self, batch: DRNBatch, epoch: int) -> dict[str, torch.Tensor]:
        """The step's loss on one batch."""
        return drn_loss(self.model, batch, self.stage, self.config.min_overlap)

    def validate(self) -> dict[str, float]:
        """Single-video metrics on the validation split."""
        return validate(self.eval_model, self.val_examples, self.val_corpus,
                        self.config.nms_threshold)
