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

    OUT/best/        config.json + model.safetensors of the kept epoch (the model): the best
                     validation epoch, or the last with keep = "last" (``train.loop``)
    OUT/last/        the last epoch's model + state.pt (optimizer, epoch, best score): resume
    OUT/history.jsonl one line per epoch: losses and validation metrics
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import InputError
from ..models.drn import DRN, DRNOutput, EncodedQuery, decode_boxes
from .drn_data import DRNBatch, build_drn_examples, collate_drn
from .drn_losses import (
    cross_video_loss,
    iou_head_loss,
    location_loss,
    matching_loss,
    other_video,
)
from .localizer_trainer import LocalizerTrainer
from .loop import RecipeConfig

IOU_HEAD_PREFIX = "heads.iou."  # the parameters step 2 trains


@dataclass
class DRNTrainConfig(RecipeConfig):
    """Optimisation settings (paper Sec. 4.2 unless noted), beside the
    shared :class:`RecipeConfig`."""

    stage_epochs: tuple[int, int, int] = (10, 3, 2)  # epochs of steps 1, 2, 3 (not in the paper)
    batch_size: int = 32
    lr: float = 1e-3  # step 1 (Adam)
    iou_lr: float = 1e-5  # step 2: "decay it by a factor of 100"
    finetune_lr: float = 1e-6  # step 3
    weight_decay: float = 0.0  # (not in the paper)
    min_overlap: float = 0.0  # Eq. 7 trains on boxes with IoU > this (see drn_losses)
    nms_threshold: float = 0.6  # temporal NMS at inference (official fcos_nms_thr)
    # > 0: the cross-video term of steps 1 and 3 at this weight (drn_losses; not in the paper)
    cross_video_weight: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        self.stage_epochs = tuple(int(n) for n in self.stage_epochs)
        if len(self.stage_epochs) != 3 or min(self.stage_epochs) < 0 \
                or self.stage_epochs[0] < 1:
            raise InputError(f"stage_epochs must be three counts, the first >= 1, "
                             f"got {self.stage_epochs}")
        if self.cross_video_weight < 0:
            raise InputError(f"cross_video_weight must be >= 0, got {self.cross_video_weight}")

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


def drn_loss(model: DRN, batch: DRNBatch, stage: int, min_overlap: float = 0.0,
             cross_video_weight: float = 0.0) -> dict[str, torch.Tensor]:
    """Eq. 5-7 on one batch: ``match``, ``location``, ``iou`` and their ``total`` for a step
    (step 1: match + location; step 2: iou; step 3: all three), plus, with a
    ``cross_video_weight`` > 0, the weighted ``cross_video`` term in steps 1 and 3."""
    out, negative = forward_pairs(model, batch, cross_video_weight > 0 and stage != 2)
    terms = {"match": matching_loss(out.logits, batch.labels, batch.weights),  # Eq. 6
             "location": location_loss(out.distances, batch.distances, batch.labels,
                                       batch.weights)}  # Eq. 5
    boxes = decode_boxes(model.centres, out.distances, model.config.n_segments)
    terms["iou"] = iou_head_loss(out.iou_logits, boxes, batch.windows, batch.window_mask,
                                 batch.weights, min_overlap)  # Eq. 7
    parts = {1: ("match", "location"), 2: ("iou",), 3: ("match", "location", "iou")}[stage]
    if negative is not None:
        terms["cross_video"] = cross_video_weight * cross_video_loss(negative, batch.labels,
                                                                     batch.weights)
        parts += ("cross_video",)
    terms["total"] = sum(terms[name] for name in parts)
    return terms


def forward_pairs(model: DRN, batch: DRNBatch, crossed: bool
                  ) -> tuple[DRNOutput, torch.Tensor | None]:
    """The real pairs' outputs and, with ``crossed``, the (B, A) matching logits of each query
    against the segments of another video of the batch (``drn_losses.other_video``): one
    forward pass over both, so that BatchNorm normalises them together, and one query encoding.
    None for the second when ``crossed`` is off or the batch holds one video."""
    partner = other_video(batch.videos.tolist()) if crossed else [-1]
    if min(partner) < 0:
        return model(batch.segments, batch.tokens, batch.token_mask), None
    query = model.encode_query(batch.tokens, batch.token_mask)
    doubled = EncodedQuery(tuple(torch.cat([level, level]) for level in query.levels))
    others = batch.segments[torch.tensor(partner, device=batch.segments.device)]
    joined = model.localize(torch.cat([batch.segments, others]), doubled)
    real = len(partner)
    out = DRNOutput(joined.logits[:real], joined.distances[:real], joined.iou_logits[:real])
    return out, joined.logits[real:]


def set_stage(model: DRN, stage: int) -> None:
    """Which parameters train in a step, and whether the final score uses u_t."""
    for name, parameter in model.named_parameters():
        is_iou = name.startswith(IOU_HEAD_PREFIX)
        parameter.requires_grad_(stage == 3 or is_iou == (stage == 2))
    model.config.use_iou_score = stage > 1


class DRNTrainer(LocalizerTrainer):
    """Trains a DRN model in its three steps (arguments as ``LocalizerTrainer``)."""

    model_class = DRN
    example_builder = staticmethod(build_drn_examples)
    collater = staticmethod(collate_drn)
    stage = 1  # the step the model and optimizer are in

    def predict(self, model: DRN, batch: DRNBatch, examples) -> list:
        """DRN's candidate boxes of each example, in seconds."""
        query = model.encode_query(batch.tokens, batch.token_mask)
        matching, scores, boxes = model.score_encoded(batch.segments, query)
        moments = [model.candidates(matching[i], scores[i], boxes[i], e.duration)
                   for i, e in enumerate(examples)]
        return [(m[:, 2], m[:, :2]) for m in moments]

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
        return super().epoch_batches(epoch)

    def loss_terms(self, batch: DRNBatch, epoch: int) -> dict[str, torch.Tensor]:
        """The step's loss on one batch."""
        return drn_loss(self.model, batch, self.stage, self.config.min_overlap,
                        self.config.cross_video_weight)
