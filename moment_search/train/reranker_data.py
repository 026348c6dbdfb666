"""What every reranker trainer (PLN, FIAN, DRN, LPNet) sets up before building its examples:
threads and seed, the token encoder, the train / val corpora (with ``--fold`` and ``--extra``),
and the settings stored with the checkpoint."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from ..data.corpus import Corpus
from ..data.features import FeatureStore
from ..text.tokens import TokenEncoder
from .batching import TEXT_MODEL, TokenSource
from .extras import default_charades_dir, parse_extra, with_extras
from .folds import parse_fold, training_corpora
from .loop import seed_everything


@dataclass
class RerankerData:
    """The corpora, feature store and encoder a reranker trainer builds its examples from."""

    settings: dict[str, Any]  # stored with the checkpoint
    train: Corpus  # the train split plus the --extra pairs
    train_weights: dict  # per-query loss weights of the --extra pairs
    val: Corpus
    store: FeatureStore
    encoder: TokenSource


def load_reranker_data(data_dir: str | Path, train_config, feature_rate: float | None,
                       max_tokens: int, encoder: TokenSource | None,
                       charades_dir: str | Path | None, train_split: str, val_split: str,
                       **settings: Any) -> RerankerData:
    """Seed, threads, encoder and corpora for ``train_config`` (any reranker TrainConfig with
    threads, seed, extras, fold and nms_threshold); ``settings`` join the stored ones."""
    stored = {"text_model": TEXT_MODEL,
              "max_tokens": max_tokens, "feature_rate": feature_rate,
              "data": str(data_dir), "train_split": train_split, **settings,
              "nms_threshold": train_config.nms_threshold,
              "train_config": asdict(train_config)}
    if train_config.threads:
        torch.set_num_threads(train_config.threads)
    seed_everything(train_config.seed)
    if encoder is None:
        encoder = TokenEncoder(max_length=max_tokens)
    specs = [parse_extra(text) for text in train_config.extras]
    train, val, store = training_corpora(data_dir, train_split, val_split, feature_rate,
                                         parse_fold(train_config.fold))
    train, weights = with_extras(train, specs, charades_dir or default_charades_dir(data_dir))
    return RerankerData(stored, train, weights, val, store, encoder)
