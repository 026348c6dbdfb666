"""Video-disjoint k-fold cross-validation over the training split.

``--fold K/N`` trains on the training videos outside fold K of N and validates on the sentences
of fold K, so settings are chosen without looking at the validation split (which stays the
reported figure). Folds are a seeded permutation of the sorted video ids: every video is in
exactly one fold, and the folds are the same for every model and setting.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from ..data.corpus import Corpus
from ..data.corpus_dir import feature_store_path, open_corpus
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


def write_fold_corpus(data_dir: str | Path, fold: tuple[int, int], out: str | Path,
                      split: str = "train") -> Path:
    """A corpus directory in which a fold of ``split`` is a split of its own.

    ``OUT/train.jsonl`` holds the sentences of ``split`` outside fold K and ``OUT/val.jsonl``
    those of fold K (the same partition as ``--fold K/N``), line for line as in the source file;
    ``OUT/features`` links to the source's features. Every command that reads a corpus
    directory (train, compose's hub bank, index build, the benchmarks) then works on the fold
    unchanged, e.g. to choose corpus settings by cross-validation. Charades annotations for
    ``--extra`` are not beside it: give ``--charades-dir``.

    Raises:
        InputError: ``OUT`` exists, or the split's file is not JSON lines with a video id
            (``vid`` or ``video_id``) on each line.
    """
    source, target = Path(data_dir), Path(out)
    if target.exists():
        raise InputError(f"{target} exists: give a new folder for the fold corpus")
    corpus, _ = open_corpus(source, split=split)
    _, held = split_fold(corpus, *fold)
    path = source / f"{split}.jsonl"
    if not path.is_file():
        raise InputError(f"{source}: folds are written from {split}.jsonl, which is missing")
    parts: dict[str, list[str]] = {"train": [], "val": []}
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            held_out = _line_video(line, path, line_no) in held.videos
            parts["val" if held_out else "train"].append(line)
    staging = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name, lines in parts.items():
        (staging / f"{name}.jsonl").write_text("".join(f"{line}\n" for line in lines),
                                                encoding="utf-8")
    features = feature_store_path(source)
    (staging / features.name).symlink_to(features.resolve())
    staging.rename(target)
    return target


def _line_video(line: str, path: Path, line_no: int) -> str:
    try:
        row = json.loads(line)
        return str(row["vid"] if "vid" in row else row["video_id"])
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise InputError(f"{path}:{line_no}: expected a JSON object with 'vid' or 'video_id', "
                         f"got {line.strip()[:80]!r}") from e

