"""Train FVMR: seeded, resumable, validated every epoch, best checkpoint kept.

Output directory::

    OUT/best/        config.json + model.safetensors of the kept epoch (the model): the best
                     validation epoch, or the last with keep = "last" (``train.loop``)
    OUT/last/        the last epoch's model + state.pt (optimizer, epoch, best score): --resume
    OUT/history.jsonl one line per epoch: losses and validation metrics
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..data.corpus import Corpus
from ..data.features import FeatureStore
from ..geometry.proposals import proposal_spans
from ..metrics import single_video_metrics
from ..models.fvmr import FVMR, FVMRConfig
from ..search.localize import rank_moments
from ..text.role_tree import RoleTreeParser
from ..text.tokens import TokenEncoder
from .batching import MAX_TOKENS, TEXT_MODEL
from .data import Batch, Example, build_examples, collate, video_batches
from .extras import default_charades_dir, parse_extra, with_extras
from .folds import parse_fold, training_corpora
from .loop import EpochTrainer, RecipeConfig, seed_everything
from .losses import cross_video, distillation, fvmr_loss
from .teacher_maps import target_logits


@dataclass
class TrainConfig(RecipeConfig):
    """Optimisation settings (paper Sec. 4.1 unless noted), beside the shared
    :class:`RecipeConfig`."""

    epochs: int = 20
    batch_size: int = 32
    lr: float = 2e-4  # Adam
    weight_decay: float = 0.0
    distill_weight: float = 3.0  # lambda of Eq. 10
    temperature: float = 1.0  # T of Eq. 9
    warmup_epochs: int = 8  # epochs without L_dis
    teacher: bool = True  # False: FVMR w/o SD (no teacher branch, no L_dis)
    cross_video_weight: float = 0.0  # > 0 adds the in-batch cross-video term (not in the paper)
    o_min: float = 0.3  # soft-label thresholds (paper)
    o_max: float = 0.7
    video_batches: bool = False  # batches of whole videos: each video encoded once per batch
    # Cross-modal teachers (train.teacher_maps; not in the paper): .npz files of DRN's / FIAN's
    # maps over the proposals, distilled into p with Eq. 9 beside the role-tree teacher. Several
    # files are one target (their mean map).
    teacher_maps: tuple[str, ...] = ()
    map_weight: float = 3.0  # weight of that term; Eq. 10's lambda, not tuned


def epoch_batches(examples: list[Example], batch_size: int, seed: int, epoch: int,
                  by_video: bool = False) -> list[Batch]:
    """Shuffled batches for one epoch; the order depends only on (seed, epoch).

    ``by_video``: batches of whole videos (see ``train.data.video_batches``).
    """
    generator = torch.Generator().manual_seed(seed + epoch)
    if by_video:
        return [collate(chunk) for chunk in video_batches(examples, batch_size, generator)]
    order = torch.randperm(len(examples), generator=generator)
    chunks = [order[i:i + batch_size] for i in range(0, len(examples), batch_size)]
    return [collate([examples[int(j)] for j in chunk]) for chunk in chunks]


def batch_loss(model: FVMR, batch: Batch, config: TrainConfig, epoch: int
               ) -> dict[str, torch.Tensor]:
    """All loss terms of one batch (Eq. 10, plus the optional cross-video term)."""
    out = model(batch.clips, batch.tokens, batch.token_mask,
                batch.tree if config.teacher else None, query_video=batch.query_video)
    distill = config.distill_weight if epoch >= config.warmup_epochs else 0.0
    terms = fvmr_loss(out.p, out.q, batch.labels, distill, config.temperature, batch.weights)
    # From the first epoch: the warm-up exists for the role-tree teacher, which trains beside
    # the student; these teachers are trained already.
    if batch.teacher is not None and config.map_weight > 0:
        # distillation() softens both sides by T; the maps' target is already sharpened to the
        # labels' entropy (train.teacher_maps), so it is scaled by T to stay that target
        terms["teacher_maps"] = config.map_weight * distillation(
            out.p, batch.teacher * config.temperature, config.temperature, batch.weights)
        terms["total"] = terms["total"] + terms["teacher_maps"]
    if config.cross_video_weight > 0 and batch.video_groups.unique().numel() > 1:
        term = cross_video(out.moments, out.queries, batch.video_groups)
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
        p = model(batch.clips, batch.tokens, batch.token_mask,
                  query_video=batch.query_video).p.numpy()  # (B, P)
        for example, scores in zip(chunk, p, strict=True):
            spans = proposal_spans(model.config.n_clips, example.duration)
            predictions[example.qid] = rank_moments(scores, spans, k)
    queries = [q for q in corpus.queries if q.qid in predictions]
    return single_video_metrics(predictions, queries)


class FVMRTrainer(EpochTrainer):
    """Trains an FVMR model on the train split of a corpus, validating on another split."""

    model_class = FVMR

    def __init__(self, data_dir: str | Path, out_dir: str | Path, model_config: FVMRConfig,
                 train_config: TrainConfig, train_split: str = "train", val_split: str = "val",
                 feature_rate: float | None = None, max_tokens: int = MAX_TOKENS,
                 charades_dir: str | Path | None = None):
        self.out = Path(out_dir)
        self.model_config = model_config
        self.config = train_config
        self.settings = {"text_model": TEXT_MODEL,
                         "max_tokens": max_tokens, "feature_rate": feature_rate,
                         "data": str(data_dir), "train_split": train_split,
                         "train_config": asdict(train_config)}
        if train_config.threads:
            torch.set_num_threads(train_config.threads)
        seed_everything(train_config.seed)
        encoder = TokenEncoder(max_length=max_tokens)
        parser = RoleTreeParser()
        specs = [parse_extra(text) for text in train_config.extras]
        self.charades_dir = Path(charades_dir or default_charades_dir(data_dir))
        train, val, store = training_corpora(data_dir, train_split, val_split, feature_rate,
                                             parse_fold(train_config.fold))
        self.train_corpus, weights = with_extras(train, specs, self.charades_dir)
        self.train_examples = self._build(self.train_corpus, store, encoder, parser, weights)
        self._attach_teachers(self.train_examples)
        self.val_corpus = val
        self.val_examples = self._build(val, store, encoder, parser, {})
        self.start(FVMR(model_config))

    def _build(self, corpus: Corpus, store: FeatureStore, encoder, parser, weights
               ) -> list[Example]:
        return build_examples(corpus, store, self.model_config.n_clips, encoder, parser,
                              self.config.o_min, self.config.o_max, weights)

    def _attach_teachers(self, examples: list[Example]) -> None:
        """Give every training example its cross-modal teachers' target (if any are named)."""
        if not self.config.teacher_maps:
            return
        logits, temperatures = target_logits(self.config.teacher_maps, self.model_config.n_clips,
                                             {e.qid: e.labels.numpy() for e in examples},
                                             {e.qid: e.duration for e in examples})
        self.settings["teacher_temperatures"] = temperatures
        for example in examples:
            example.teacher = torch.from_numpy(logits[example.qid])

    def epoch_batches(self, epoch: int) -> list[Batch]:
        """Shuffled training batches of one epoch."""
        return epoch_batches(self.train_examples, self.config.batch_size, self.config.seed, epoch,
                             self.config.video_batches)

    def loss_terms(self, batch: Batch, epoch: int) -> dict[str, torch.Tensor]:
        """Eq. 10 (+ the cross-video term) on one batch."""
        return batch_loss(self.model, batch, self.config, epoch)

    def validate(self) -> dict[str, float]:
        """Single-video metrics of the fast path on the validation split."""
        return validate(self.eval_model, self.val_examples, self.val_corpus)
