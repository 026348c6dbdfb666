"""Extra training pairs for every trainer: ``--extra charades-actions[:WEIGHT]``.

``charades-actions`` turns every action segment of a *training* video (official Charades CSV)
into a pseudo-query (see :mod:`moment_search.data.pseudo_queries`). How they are mixed with the
real sentences: every extra pair is in every epoch (8,477 segments on the 850 train videos of
the Charades-STA CLIP split, beside 2,323 sentences), and its loss terms are multiplied by
WEIGHT (default 0.5) in a weighted mean over the batch, so the real sentences keep most of the
pull while the actions teach what the objects and verbs look like.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from ..data.corpus import Corpus
from ..data.pseudo_queries import action_queries
from ..data.readers.charades_csv import read_charades_classes, read_charades_csv
from ..errors import InputError

KINDS = ("charades-actions",)
DEFAULT_WEIGHT = 0.5
CSV_NAME = "Charades_v1_test_sta1000.csv"
CLASSES_NAME = "Charades_v1_classes.txt"


@dataclass(frozen=True)
class ExtraSpec:
    """One ``--extra`` source: its kind and the loss weight of its pairs."""

    kind: str
    weight: float = DEFAULT_WEIGHT


def parse_extra(text: str) -> ExtraSpec:
    """``"charades-actions"`` or ``"charades-actions:0.3"`` -> :class:`ExtraSpec`.

    Raises:
        InputError: an unknown kind or a weight that is not a positive number.
    """
    kind, _, weight = text.partition(":")
    if kind not in KINDS:
        raise InputError(f"--extra {text!r}: unknown kind {kind!r} (expected one of {KINDS}, "
                         f"optionally with ':WEIGHT')")
    if not weight:
        return ExtraSpec(kind)
    try:
        value = float(weight)
    except ValueError as e:
        raise InputError(f"--extra {text!r}: weight {weight!r} is not a number") from e
    if not value > 0:
        raise InputError(f"--extra {text!r}: weight must be > 0, got {value}")
    return ExtraSpec(kind, value)


def default_charades_dir(data_dir: str | Path) -> Path:
    """Where the Charades annotations sit beside a corpus (``DATA/../annotations/charades``)."""
    return Path(data_dir).resolve().parent / "annotations" / "charades"


def with_extras(corpus: Corpus, specs: list[ExtraSpec], charades_dir: str | Path
                ) -> tuple[Corpus, dict[str, float]]:
    """``corpus`` with the extra pairs of ``specs`` appended, and ``qid -> loss weight``.

    Only the videos of ``corpus`` contribute, so pass the training corpus.

    Raises:
        CorpusError: missing or malformed annotation files (naming them).
        InputError: the same kind given twice.
    """
    kinds = [spec.kind for spec in specs]
    if len(set(kinds)) < len(kinds):
        raise InputError(f"--extra names a kind twice: {kinds}")
    queries, weights = list(corpus.queries), {}
    for spec in specs:
        classes = read_charades_classes(Path(charades_dir) / CLASSES_NAME)
        annotations = read_charades_csv(Path(charades_dir) / CSV_NAME, classes)
        for query in action_queries(corpus, annotations, classes):
            queries.append(query)
            weights[query.qid] = spec.weight
    return replace(corpus, queries=queries), weights
