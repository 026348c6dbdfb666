"""Video-disjoint k-fold cross-validation over the training split.

``--fold K/N`` trains on the training videos outside fold K of N and validates on the sentences
of fold K, so settings are chosen without looking at the validation split (which stays the
reported figure). Folds are a seeded permutation of the sorted video ids: every video is in
exactly one fold, and the folds are the same for every model and setting.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.corpus import Corpus
from ..data.corpus_dir import open_corpus
from ..data.features import FeatureStore
from ..errors import InputError

FOLD_SEED = 20211011  # fixed: the folds must not move with the training seed


def parse_fold(text: str | None) -> tuple[int, int] | None:
    """``"2/5"`` -> ``(2, 5)`` (fold 2 of 5, counted from 0); None stays None.

    Raises:
        InputError: not ``K/N`` with ``0 <= K < N`` and ``N >= 2``.
    """
    if text is None:
        return None
    fold, sep, count = text.partition("/")
    try:
        k, n = int(fold), int(count)
    except ValueError as e:
        raise InputError(f"--fold {text!r}: expected K/N, e.g. 0/5") from e
    if not sep or n < 2 or not 0 <= k < n:
        raise InputError(f"--fold {text!r}: expected K/N with 0 <= K < N and N >= 2")
    return k, n


def split_fold(corpus: Corpus, fold: int, n_folds: int) -> tuple[Corpus, Corpus]:
    """``(training part, held-out fold)`` of ``corpus``, video-disjoint."""
    videos = sorted(corpus.videos)
    order = np.random.default_rng(FOLD_SEED).permutation(len(videos))
    held = {videos[i] for i in order[fold::n_folds]}
    return corpus.subset(v for v in videos if v not in held), corpus.subset(held)


def training_corpora(data_dir: str | Path, train_split: str, val_split: str,
                     feature_rate: float | None, fold: tuple[int, int] | None
                     ) -> tuple[Corpus, Corpus, FeatureStore]:
    """``(train, validation, store)``: the two splits, or a fold of ``train_split``."""
    train, store = open_corpus(data_dir, split=train_split, feature_rate=feature_rate)
    if fold is not None:
        return (*split_fold(train, *fold), store)
    val, _ = open_corpus(data_dir, split=val_split, feature_rate=feature_rate)
    return train, val, store
