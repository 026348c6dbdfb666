"""Video-disjoint k-fold cross-validation over the training split.

``--fold K/N`` trains on the training videos outside fold K of N and validates on the sentences
of fold K, so settings are chosen without looking at the validation split (which stays the
reported figure). Folds are a seeded permutation of the sorted video ids: every video is in
exactly one fold, and the folds are the same for every model and setting.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import tomllib

from ..atomic import atomic_write_text
from ..data.corpus import Corpus
from ..data.corpus_dir import feature_store_path, open_corpus
from ..data.features import FeatureStore
from ..errors import InputError
from ..models.ensemble import MODEL_TYPE as ENSEMBLE
from ..models.ensemble import Ensemble
from ..registry import shipped_checkpoint

FOLD_INFO = "fold.toml"  # what write_fold_corpus writes beside the splits (not an annotation file)
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
    those of fold K (the same partition as ``--fold K/N``), line for line as in the source file
    (JSON lines with a ``vid`` field, as the Charades-STA / QVHighlights files have);
    ``OUT/features`` links to the source's features and ``OUT/fold.toml`` says which fold it is.
    Commands that read such a corpus directory (train, compose's hub bank, index build, the
    corpus benchmarks) then run on the fold, e.g. to choose settings by cross-validation.
    Charades annotations for ``--extra`` are not beside it: give ``--charades-dir``. The folder
    is built under a temporary name beside OUT and renamed into place when complete.

    Raises:
        InputError: ``OUT`` exists, or the split's file is not JSON lines with a ``vid`` field.
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
    with open(path, encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if line.strip():
                held_out = _line_video(line, path, line_no) in held.videos
                parts["val" if held_out else "train"].append(line.rstrip("\n"))
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        _fill_fold_dir(staging, parts, feature_store_path(source),
                       {"source": str(source.resolve()), "split": split,
                        "fold": f"{fold[0]}/{fold[1]}"})
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _fill_fold_dir(folder: Path, parts: dict[str, list[str]], features: Path,
                   info: dict) -> None:
    for name, lines in parts.items():
        atomic_write_text(folder / f"{name}.jsonl", "".join(f"{line}\n" for line in lines))
    atomic_write_text(folder / FOLD_INFO, "".join(f"{key} = {json.dumps(value)}\n"
                                                  for key, value in info.items()))
    (folder / features.name).symlink_to(features.resolve())


def read_fold_info(corpus_dir: str | Path) -> dict | None:
    """``fold.toml`` of a corpus written by :func:`write_fold_corpus` (None for another)."""
    path = Path(corpus_dir) / FOLD_INFO
    return tomllib.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def check_fold_checkpoint(corpus_dir: str | Path, checkpoint: str | Path) -> None:
    """Refuse a checkpoint that was not trained without the fold of ``corpus_dir``: trained
    with ``--fold K/N`` of the same fold, or on the fold corpus's own train split. A composed
    search checkpoint's video-text model (as ``compose`` records it) must be so too, and so must
    each member of an ensemble (a shipped member was trained on all of train). Corpora not
    written by :func:`write_fold_corpus` are not checked.

    Raises:
        InputError: the checkpoint, or its video-text model, was trained on other data or
            another fold (naming both).
    """
    info = read_fold_info(corpus_dir)
    if info is None:
        return
    stored = json.loads((Path(checkpoint) / "config.json").read_text())
    if stored.get("model_type") == ENSEMBLE:  # no training of its own
        for member in _member_checkpoints(checkpoint):
            check_fold_checkpoint(corpus_dir, member)
        return
    extra = stored.get("extra", {})
    _check_trained_without(info, corpus_dir, checkpoint, extra.get("data"),
                           extra.get("train_config", {}).get("fold"))
    composed = extra.get("composed") or {}
    if composed.get("video_text") not in (None, "None"):
        if "video_text_data" not in composed:
            raise InputError(f"{checkpoint}: composed without a record of its video-text "
                             f"model's training data; compose it again to score a fold")
        _check_trained_without(info, corpus_dir, f"{checkpoint} (its video-text model)",
                               composed["video_text_data"], composed.get("video_text_fold"))


def trained_fold(checkpoint: str | Path) -> str | None:
    """The ``--fold K/N`` a checkpoint was trained with (None: all of its train split); an
    ensemble's, the first such fold among its members."""
    stored = json.loads((Path(checkpoint) / "config.json").read_text())
    if stored.get("model_type") == ENSEMBLE:
        folds = [trained_fold(member) for member in _member_checkpoints(checkpoint)]
        return next((fold for fold in folds if fold is not None), None)
    return stored.get("extra", {}).get("train_config", {}).get("fold")


def _member_checkpoints(ensemble: str | Path) -> list[Path]:
    """An ensemble's member checkpoint folders, a shipped member's included."""
    return [member or shipped_checkpoint(name) for name, member in Ensemble.member_dirs(ensemble)]


def check_fold_corpora(corpora: tuple[Path, ...], source: str | Path | None = None) -> None:
    """Two or more different folds of one ``data fold`` cut of a train split (of ``source``,
    when given): what a cross-validation over fold corpora needs, so that no fold is scored
    twice and no val split stands in for a fold.

    Raises:
        InputError: naming the corpus and what was expected of it.
    """
    folds, sources = [], set()
    wanted = Path(source).resolve() if source is not None else None
    for corpus in corpora:
        info = read_fold_info(corpus)
        if info is None or info.get("split") != "train" or \
                (wanted is not None and Path(info["source"]).resolve() != wanted):
            raise InputError(f"{corpus}: expected a fold corpus of "
                             f"{source or 'a corpus'}'s train split (written by 'moment-search "
                             f"data fold'), found {info}", parameter="fold_data")
        folds.append(parse_fold(info["fold"]))
        sources.add(Path(info["source"]).resolve())
    if len(folds) < 2 or len(set(folds)) != len(folds) or len({n for _, n in folds}) != 1 \
            or len(sources) != 1:
        raise InputError(f"the fold corpora must be two or more different folds of one split, "
                         f"got {[f'{k}/{n}' for k, n in folds]} of {sorted(map(str, sources))}",
                         parameter="fold_data")


def _check_trained_without(info: dict, corpus_dir: str | Path, name, data: str | None,
                           fold: str | None) -> None:
    """Raise InputError unless a model trained on ``data`` with ``fold`` held out the fold of
    ``corpus_dir`` (``info``: its fold.toml)."""
    on_fold_corpus = data is not None and Path(data).resolve() == Path(corpus_dir).resolve()
    if fold != info["fold"] and not on_fold_corpus:
        raise InputError(f"{name}: trained with fold {fold!r} on {data}, but {corpus_dir} "
                         f"holds out fold {info['fold']} of {info['source']}: its sentences "
                         f"would be scored by a model trained on them")


def _line_video(line: str, path: Path, line_no: int) -> str:
    try:
        return str(json.loads(line)["vid"])
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise InputError(f"{path}:{line_no}: expected a JSON object with a 'vid' field, "
                         f"got {line.strip()[:80]!r}") from e
