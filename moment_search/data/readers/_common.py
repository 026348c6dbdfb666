"""What every annotation reader shares: the read result, the window policy, value checks.

The window policy (clip ends to the duration, drop empty or out-of-video windows, count every
skip) is stated once, in :mod:`moment_search.data.readers`, and applied by :class:`CorpusBuilder`.
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..corpus import (
    WINDOW_END_TOLERANCE_S,
    Corpus,
    CorpusError,
    Query,
    QueryId,
    Video,
    check_query_id,
)

logger = logging.getLogger("moment_search.data.readers")

WINDOW_EMPTY = "window_empty"
WINDOW_AFTER_VIDEO_END = "window_after_video_end"
QUERY_NO_VALID_WINDOW = "query_no_valid_window"
QUERY_UNKNOWN_DURATION = "query_unknown_video_duration"


@dataclass(frozen=True)
class ReadResult:
    """A corpus read from an annotation file, with what was left out or changed on the way.

    Attributes:
        corpus: the videos and queries read.
        skipped: reason -> count. Keys starting ``window_`` count dropped windows, keys starting
            ``query_`` count dropped queries (reasons: see :mod:`moment_search.data.readers`).
        clipped_windows: windows whose end (or start) was clipped into ``[0, duration]``.
    """

    corpus: Corpus
    skipped: dict[str, int] = field(default_factory=dict)
    clipped_windows: int = 0

    @property
    def skipped_queries(self) -> int:
        """How many queries of the file are not in the corpus."""
        return sum(n for reason, n in self.skipped.items() if reason.startswith("query_"))


class CorpusBuilder:
    """Collects videos and queries for one file, applying the window policy and counting skips.

    Args:
        name: the source path, used as ``Corpus.name`` and in every error message.
    """

    def __init__(self, name: str) -> None:
        self.corpus = Corpus(name=name)
        self.skipped: Counter[str] = Counter()
        self.clipped_windows = 0
        self._qids: dict[str, QueryId] = {}  # str(qid) -> qid: 7 and "7" would read alike

    def add_video(self, video_id: str, duration: float, where: str) -> None:
        """Add a video (seconds); re-adding one with the same duration is a no-op.

        Raises:
            CorpusError: bad id or duration, or a second, different duration; names ``where``.
        """
        try:
            self.corpus.add_video(Video(video_id=video_id, duration=duration))
        except CorpusError as e:
            raise CorpusError(f"{where}: {e}") from e

    def skip_query(self, reason: str) -> None:
        """Count one query left out for ``reason``."""
        self.skipped[reason] += 1

    def add_query(
        self, qid: QueryId, text: str, video_id: str, windows: Sequence[tuple[float, float]],
        where: str,
    ) -> None:
        """Add a query of an added video; windows in seconds are fitted to the video.

        Raises:
            CorpusError: empty sentence or a qid seen before (``7`` and ``"7"`` count as the
                same id); names ``where``.
        """
        text = text.strip()
        if not text:
            raise CorpusError(f"{where}: empty sentence")
        if str(qid) in self._qids:
            earlier = self._qids[str(qid)]
            also = "" if earlier == qid else f" (an earlier line has {earlier!r})"
            raise CorpusError(f"{where}: duplicate query id {qid!r}{also}")
        self._qids[str(qid)] = qid
        duration = self.corpus.videos[video_id].duration
        kept = [w for w in (self._fit_window(s, e, duration) for s, e in windows) if w is not None]
        if not kept:
            self.skip_query(QUERY_NO_VALID_WINDOW)
            return
        query = Query(qid=qid, text=text, video_id=video_id, windows=tuple(kept))
        self.corpus.queries.append(query)

    def _fit_window(self, start: float, end: float, duration: float) -> tuple[float, float] | None:
        if end <= start:
            self.skipped[WINDOW_EMPTY] += 1
            return None
        if start >= duration:
            self.skipped[WINDOW_AFTER_VIDEO_END] += 1
            return None
        # an end within the rounding of a written duration is the same instant: kept as written,
        # so metrics compare with the ground truth the field's evaluators read
        fitted = (max(start, 0.0), end if end <= duration + WINDOW_END_TOLERANCE_S else duration)
        if fitted != (start, end):
            self.clipped_windows += 1
        return fitted

    def finish(self) -> ReadResult:
        """The read result; the corpus is validated (every window inside its video)."""
        self.corpus.validate()
        if self.skipped or self.clipped_windows:
            logger.info("%s: skipped %s, clipped %d window(s) to the video duration",
                        self.corpus.name, dict(self.skipped), self.clipped_windows)
        return ReadResult(self.corpus, dict(self.skipped), self.clipped_windows)


def as_number(value: Any, where: str, what: str) -> float:
    """``value`` as a finite float; JSON numbers only (no strings, no booleans).

    Raises:
        CorpusError: naming ``where``, ``what`` was expected and the bad value.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise CorpusError(f"{where}: {what} must be a finite number, got {value!r}")
    return float(value)


def as_window(value: Any, where: str, scale: float = 1.0) -> tuple[float, float]:
    """A ``[start, end]`` pair of numbers, divided by ``scale`` (e.g. frames -> seconds by fps).

    Raises:
        CorpusError: not a two-number list; names ``where`` and the value.
    """
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise CorpusError(f"{where}: a window must be a [start, end] pair, got {value!r}")
    start = as_number(value[0], where, "window start")
    end = as_number(value[1], where, "window end")
    return start / scale, end / scale


def as_text(value: Any, where: str, what: str) -> str:
    """``value`` if it is a string, else CorpusError naming ``where`` and ``what``."""
    if not isinstance(value, str):
        raise CorpusError(f"{where}: {what} must be a string, got {value!r}")
    return value


def as_qid(value: Any, where: str, what: str = "qid") -> QueryId:
    """A query id given as a JSON string or integer, in the type it was written.

    Raises:
        CorpusError: any other type (booleans too), or an empty string; names ``where``.
    """
    try:
        return check_query_id(value)
    except CorpusError as e:
        raise CorpusError(f"{where}: {what} must be a non-empty string or integer, "
                          f"got {value!r}") from e


def as_id(value: Any, where: str, what: str) -> str:
    """An id given as a JSON string or integer, as a non-empty string.

    Raises:
        CorpusError: any other type, or an empty string; names ``where`` and ``what``.
    """
    if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
        raise CorpusError(f"{where}: {what} must be a non-empty string or integer, got {value!r}")
    return str(value)


def require_keys(record: Any, keys: Sequence[str], where: str) -> Mapping[str, Any]:
    """``record`` if it is a JSON object holding every key of ``keys``.

    Raises:
        CorpusError: not an object, or the first missing key, with the expected keys.
    """
    if not isinstance(record, dict):
        raise CorpusError(f"{where}: expected a JSON object, got {type(record).__name__}")
    for key in keys:
        if key not in record:
            raise CorpusError(
                f"{where}: missing key {key!r} (expected keys: {', '.join(keys)})"
            )
    return record


def load_json(path: Path) -> Any:
    """Parse a whole JSON file.

    Raises:
        CorpusError: the file is missing or not valid JSON, naming the file and line.
    """
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError as e:
        raise CorpusError(f"annotation file {path} does not exist") from e
    except json.JSONDecodeError as e:
        raise CorpusError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from e


def iter_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    """Yield ``(line_number, record)`` for each non-blank line (1-based line numbers).

    Raises:
        CorpusError: the file is missing, or a line is not valid JSON, naming the file and line.
    """
    try:
        f = open(path, encoding="utf-8")
    except FileNotFoundError as e:
        raise CorpusError(f"annotation file {path} does not exist") from e
    with f:
        for line_number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                yield line_number, json.loads(line)
            except json.JSONDecodeError as e:
                raise CorpusError(f"{path}:{line_number}: invalid JSON ({e.msg})") from e
