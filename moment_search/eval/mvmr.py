"""Read MVMR positive-moment pools and match them to a corpus's queries.

MVMR (Yang et al., CIKM 2024, arXiv 2309.16701) published, for every Charades-STA test sentence,
the moments of *other* videos that show the same thing (repository
``yny0506/Massive-Videos-Moment-Retrieval``, ``CROCS/crocs/mvmr/samples/charades_test_mvmr.json``).
The file is the 2D-TAN ``charades_test.json`` with two lists added per sentence; it is a JSON
object keyed by video id::

    {"3MSZA": {"duration": 30.96,
               "timestamps": [[24.3, 30.4], ...],           # per sentence, seconds
               "sentences": ["person turn a light on.", ...],
               "pos_moments": [[["G2JR9", "person the light turns on.", [20.7, 25.6]], ...], ...],
               "retrieval_pool": [["3MSZA", "G2JR9", ...], ...]},   # MVMR's 50-video pools
     ...}

Sentence i of a video has its window ``timestamps[i]`` and its positives ``pos_moments[i]``
(``[video_id, sentence, [start_s, end_s]]``, never the sentence's own video; often empty). The
retrieval pools are not read: the corpus that was indexed is the pool here.

Sentences carry no id, so a query is matched to a sentence of its own video (:func:`match_queries`):
the windows must agree (IoU >= ``WINDOW_IOU``: the two sides clip end times to slightly different
video durations) and the texts must be equal after lower-casing and keeping only letters and
digits; failing that, the most similar text (difflib ratio >= ``TEXT_RATIO``) among the video's
sentences whose windows agree is taken (spelling fixed on one side, e.g. "oin" -> "in").
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from moment_search.data.corpus import Query, QueryId

from ..errors import DataError

WINDOW_IOU = 0.9  # windows of the same annotation agree this well (end clipping differs)
TEXT_RATIO = 0.8  # difflib ratio of a spelling-fixed sentence to its original
_REQUIRED = ("timestamps", "sentences", "pos_moments")


class PositivesError(DataError):
    """A malformed positives file: names the file, the video and the sentence."""


@dataclass(frozen=True)
class PositiveMoment:
    """A moment that answers a sentence: ``video_id`` and ``(start_s, end_s)`` in seconds."""

    video_id: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class PositiveSentence:
    """One sentence of a positives file with its other-video positives.

    Attributes:
        video_id: the sentence's own video.
        index: its position among that video's sentences (0-based).
        text: the sentence as written in the file.
        window: its own ``(start_s, end_s)``.
        positives: moments of other videos that the file counts as right answers too.
    """

    video_id: str
    index: int
    text: str
    window: tuple[float, float]
    positives: tuple[PositiveMoment, ...]


def read_mvmr(path: str | Path) -> dict[str, list[PositiveSentence]]:
    """Read an MVMR positives file (format in the module docstring), unchanged.

    Returns:
        ``video_id -> [PositiveSentence, ...]`` in the file's order.

    Raises:
        PositivesError: not JSON, or an entry of the wrong shape (file, video and sentence named).
        OSError: the file cannot be read.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise PositivesError(f"{path}: not a JSON file ({e})") from e
    if not isinstance(data, dict) or not data:
        raise PositivesError(f"{path}: expected a non-empty JSON object keyed by video id, "
                             f"got {type(data).__name__}")
    return {str(vid): _video_sentences(path, str(vid), entry) for vid, entry in data.items()}


def _video_sentences(path: Path, video_id: str, entry: object) -> list[PositiveSentence]:
    """The sentences of one video entry, checked."""
    where = f"{path}: video {video_id!r}"
    if not isinstance(entry, dict) or any(key not in entry for key in _REQUIRED):
        raise PositivesError(f"{where}: expected an object with {', '.join(_REQUIRED)}")
    lists = [entry[key] for key in _REQUIRED]
    if not all(isinstance(values, list) for values in lists) or len({len(v) for v in lists}) != 1:
        raise PositivesError(f"{where}: timestamps, sentences and pos_moments must be lists of "
                             f"one length, got lengths {[_length(v) for v in lists]}")
    return [_sentence(f"{where}, sentence {i}", video_id, i, text, window, positives)
            for i, (window, text, positives) in enumerate(zip(*lists, strict=True))]


def _length(value: object) -> int | str:
    return len(value) if isinstance(value, list) else type(value).__name__


def _sentence(where: str, video_id: str, index: int, text: object, window: object,
              positives: object) -> PositiveSentence:
    """One sentence, checked; ``where`` names it in errors."""
    if not isinstance(text, str):
        raise PositivesError(f"{where}: the sentence must be a string, got {text!r}")
    if not isinstance(positives, list):
        raise PositivesError(f"{where}: pos_moments must be a list, got {positives!r}")
    moments = []
    for p, item in enumerate(positives):
        if not (isinstance(item, list) and len(item) == 3 and isinstance(item[0], str)):
            raise PositivesError(f"{where}, positive {p}: expected [video_id, sentence, "
                                 f"[start_s, end_s]], got {item!r}")
        moments.append(PositiveMoment(item[0], *_window(f"{where}, positive {p}", item[2])))
    return PositiveSentence(video_id, index, text, _window(where, window), tuple(moments))


def _window(where: str, value: object) -> tuple[float, float]:
    """``[start_s, end_s]`` as floats, ``0 <= start < end``."""
    try:
        start, end = (float(x) for x in value)  # type: ignore[union-attr]
    except (TypeError, ValueError) as e:
        raise PositivesError(f"{where}: expected a window [start_s, end_s], got {value!r}") from e
    if not 0 <= start < end:
        raise PositivesError(f"{where}: a window needs 0 <= start < end, got {value!r}")
    return start, end


def normalise_text(text: str) -> str:
    """Lower case, letters and digits only, single spaces: ``"shoe,ran"`` == ``"shoe, ran"``."""
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def _window_iou(a: tuple[float, float], b: Sequence[float]) -> float:
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    return inter / (max(a[1], b[1]) - min(a[0], b[0]))


@dataclass
class MatchCounts:
    """How the queries matched: ``exact`` text, ``close`` text (spelling), ``unmatched``."""

    exact: int = 0
    close: int = 0
    unmatched: int = 0


def match_queries(
    queries: Sequence[Query], sentences: Mapping[str, list[PositiveSentence]]
) -> tuple[dict[QueryId, PositiveSentence], MatchCounts]:
    """Each query's sentence in the positives file (rule in the module docstring).

    Args:
        queries: the corpus's queries (each with at least one window; the first is compared).
        sentences: as returned by :func:`read_mvmr`.

    Returns:
        ``qid -> PositiveSentence`` for the matched queries, and the counts.
    """
    matched: dict[QueryId, PositiveSentence] = {}
    counts = MatchCounts()
    for query in queries:
        same_window = [s for s in sentences.get(query.video_id, ())
                       if _window_iou(s.window, query.windows[0]) >= WINDOW_IOU]
        text = normalise_text(query.text)
        exact = [s for s in same_window if normalise_text(s.text) == text]
        ratio = {id(s): difflib.SequenceMatcher(None, normalise_text(s.text), text).ratio()
                 for s in same_window}
        close = sorted((s for s in same_window if ratio[id(s)] >= TEXT_RATIO),
                       key=lambda s: -ratio[id(s)])
        if exact:
            matched[query.qid], counts.exact = exact[0], counts.exact + 1
        elif close:
            matched[query.qid], counts.close = close[0], counts.close + 1
        else:
            counts.unmatched += 1
    return matched, counts
