"""What the trainers of the single-video localizers (PLN, FIAN, DRN, LPNet) share.

Data, shuffled batches and validation. A subclass names its model class, its example
builder ``(corpus, store, model_config, encoder, weights) -> examples`` and its collate function
(or overrides ``build_examples`` / ``collate``), and says how the model's output on a batch
becomes each example's scored spans in seconds (``predict``). The epoch loop, best/last and
resume are ``loop.EpochTrainer``'s.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.corpus import Corpus
from ..data.features import FeatureStore
from ..metrics import single_video_metrics
from ..search.localize import rank_moments
from .batching import MAX_TOKENS, TokenSource
from .loop import EpochTrainer
from .reranker_data import load_reranker_data

# (model, batch, examples of the batch) -> one (scores (n,), spans in seconds (n, 2)) per example
Predict = Callable[[torch.nn.Module, Any, Sequence[Any]], list[tuple[Any, Any]]]


def shuffled_batches(examples: Sequence[Any], batch_size: int, seed: int, epoch: int,
                     collate: Callable[[list[Any]], Any]) -> list[Any]:
    """Shuffled batches for one epoch; the order depends only on (seed, epoch)."""
    order = torch.randperm(len(examples), generator=torch.Generator().manual_seed(seed + epoch))
    chunks = [order[i:i + batch_size] for i in range(0, len(examples), batch_size)]
    return [collate([examples[int(j)] for j in chunk]) for chunk in chunks]


@torch.inference_mode()
def validate_localizer(model: torch.nn.Module, examples: Sequence[Any], corpus: Corpus,
                       collate: Callable[[list[Any]], Any], predict: Predict,
                       nms_threshold: float, k: int = 5, batch_size: int = 128
                       ) -> dict[str, float]:
    """Single-video R@n, IoU=m and mIoU of ``predict``'s spans + NMS on ``examples`` (each has a
    ``qid``); the queries of ``corpus`` that were predicted are the ground truth."""
    model.eval()
    predictions = {}
    for start in range(0, len(examples), batch_size):
        chunk = list(examples[start:start + batch_size])
        for example, (scores, spans) in zip(chunk, predict(model, collate(chunk), chunk),
                                            strict=True):
            predictions[example.qid] = rank_moments(np.asarray(scores), np.asarray(spans), k,
                                                    nms_threshold)
    queries = [q for q in corpus.queries if q.qid in predictions]
    return single_video_metrics(predictions, queries)


class LocalizerTrainer(EpochTrainer):
    """Trains a localizer on the train split of a corpus, validating on another split.

    Args:
        data_dir: a corpus directory (see ``data.corpus_dir.open_corpus``).
        out_dir: where best/, last/ and history.jsonl go.
        model_config, train_config: the model and optimisation settings (``train_config`` has
            batch_size, seed and nms_threshold besides what ``EpochTrainer`` reads).
        train_split, val_split: annotation splits.
        feature_rate: features per second for videos whose manifest gives none.
        encoder: a token encoder to reuse; None loads MiniLM (``TokenEncoder``).
        charades_dir: the Charades annotations for ``--extra`` (default: beside the data).
    """

    max_tokens = MAX_TOKENS  # word-piece tokens kept per query
    example_builder: Callable[..., list[Any]]  # staticmethod(build_x_examples)
    collater: Callable[[list[Any]], Any]  # staticmethod(collate_x)

    def __init__(self, data_dir: str | Path, out_dir: str | Path, model_config: Any,
                 train_config: Any, train_split: str = "train", val_split: str = "val",
                 feature_rate: float | None = None, encoder: TokenSource | None = None,
                 charades_dir: str | Path | None = None):
        self.out = Path(out_dir)
        self.model_config, self.config = model_config, train_config
        data = load_reranker_data(data_dir, train_config, feature_rate, self.token_limit(),
                                  encoder, charades_dir, train_split, val_split,
                                  **self.data_options())
        self.settings, self.train_corpus, self.val_corpus = data.settings, data.train, data.val
        self.train_examples = self.build_examples(data.train, data.store, data.encoder,
                                                  data.train_weights)
        self.val_examples = self.build_examples(data.val, data.store, data.encoder, None)
        self.start(self.model_class(model_config))

    def token_limit(self) -> int:
        """Word-piece tokens kept per query (``model_config`` is set when this is asked)."""
        return self.max_tokens

    def data_options(self) -> dict[str, Any]:
        """More settings stored with the checkpoint (``load_reranker_data``'s keywords)."""
        return {}

    def build_examples(self, corpus: Corpus, store: FeatureStore, encoder: TokenSource,
                       weights: dict[str, float] | None) -> list[Any]:
        """One example per query of ``corpus``; ``weights`` are loss weights by query id."""
        return self.example_builder(corpus, store, self.model_config, encoder, weights)

    def collate(self, examples: list[Any]) -> Any:
        """A padded batch of ``examples``."""
        return self.collater(examples)

    def predict(self, model: torch.nn.Module, batch: Any, examples: Sequence[Any]
                ) -> list[tuple[Any, Any]]:
        """Per example of ``batch``: (scores (n,), spans in seconds (n, 2))."""
        raise NotImplementedError

    def epoch_batches(self, epoch: int) -> list[Any]:
        """Shuffled training batches of one epoch."""
        return shuffled_batches(self.train_examples, self.config.batch_size, self.config.seed,
                                epoch, self.collate)

    def validate(self) -> dict[str, float]:
        """Single-video metrics on the validation split."""
        return validate_localizer(self.eval_model, self.val_examples, self.val_corpus,
                                  self.collate, self.predict, self.config.nms_threshold)
