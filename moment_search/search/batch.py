"""Batch search: read a file of queries, answer them in batches, write corpus predictions.

Query files: ``.txt`` (one sentence a line; the qid is the line number, an integer) or ``.jsonl``
(one object a line with ``query``, or TVR's ``desc``, and optionally ``qid``, or TVR's
``desc_id``; the qid keeps its JSON type and defaults to the line number). Prediction formats:
``jsonl`` (``{"qid", "pred_moments": [[video_id, start_s, end_s, score], ...]}`` a line, what
``evaluate score`` reads) and ``tvr`` (TVRetrieval's VCMR submission, see
``data.tvr_format``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data.corpus import CorpusError, QueryId, check_query_id
from ..data.predictions import write_corpus_predictions
from ..data.tvr_format import write_tvr_predictions
from ..errors import DataError, InputError
from ..indexer.progress import Progress, Silent
from .searcher import Moment, Searcher

PREDICTION_FORMATS = ("jsonl", "tvr")
_TEXT_KEYS = ("query", "desc")  # ours / lighthouse, TVR
_ID_KEYS = ("qid", "desc_id")


@dataclass(frozen=True)
class QueryAnswer:
    """One query of a file with its ranked moments."""

    qid: QueryId
    text: str
    moments: list[Moment]
    no_good_match: bool | None = None  # None: the index has no relevance calibration

    def to_dict(self) -> dict:
        """JSON-ready: ``{"qid", "query", "moments": [Moment.to_dict(), ...]}``, and
        ``"no_good_match"`` when the index is calibrated."""
        fields = {"qid": self.qid, "query": self.text,
                  "moments": [m.to_dict() for m in self.moments]}
        if self.no_good_match is not None:
            fields["no_good_match"] = self.no_good_match
        return fields


def read_query_file(path: str | Path) -> list[tuple[QueryId, str]]:
    """``(qid, text)`` pairs of a ``.txt`` or ``.jsonl`` query file (module docstring).

    Raises:
        ValueError: an empty file, a malformed or empty line, a bad or repeated qid (names the
            file and line).
    """
    path = Path(path)
    pairs: list[tuple[QueryId, str]] = []
    lines_of: dict[str, int] = {}
    with open(path, encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            qid, text = _parse_query_line(path, line_no, line)
            if str(qid) in lines_of:
                raise DataError(f"{path}, line {line_no}: query id {qid!r} is already used on "
                                f"line {lines_of[str(qid)]}")
            lines_of[str(qid)] = line_no
            pairs.append((qid, text))
    if not pairs:
        raise DataError(f"{path}: no queries")
    return pairs


def _first_key(record: dict, keys: tuple[str, ...]) -> Any:
    return next((record[key] for key in keys if key in record), None)


def _parse_query_line(path: Path, line_no: int, line: str) -> tuple[QueryId, str]:
    if path.suffix != ".jsonl":
        return line_no, line.strip()
    where = f"{path}, line {line_no}"
    try:
        record = json.loads(line)
    except json.JSONDecodeError as e:
        raise DataError(f"{where}: not valid JSON ({e.msg})") from e
    text = _first_key(record, _TEXT_KEYS) if isinstance(record, dict) else None
    if not isinstance(text, str) or not text.strip():
        raise DataError(f"{where}: expected a JSON object with a non-empty 'query' (or TVR's "
                        f"'desc') sentence, got {line.strip()[:80]!r}")
    qid = _first_key(record, _ID_KEYS)
    try:
        return (line_no if qid is None else check_query_id(qid)), text
    except CorpusError as e:
        raise DataError(f"{where}: {e}") from e


def answer_file(searcher: Searcher, path: str | Path, k: int = 100, batch_size: int = 64,
                progress: Progress | None = None, **options) -> list[QueryAnswer]:
    """Answer every query of a file in order, ``batch_size`` sentences per FAISS call
    (``options`` as for :meth:`Searcher.search_many`); ``progress`` hears of each batch."""
    pairs = read_query_file(path)
    progress = progress or Silent()
    progress.phase("answering", len(pairs), "queries")
    answers: list[QueryAnswer] = []
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start:start + batch_size]
        found = searcher.search_many([text for _, text in chunk], k=k, **options)
        answers += [QueryAnswer(qid, text, moments, searcher.no_good_match(moments))
                    for (qid, text), moments in zip(chunk, found, strict=True)]
        progress.advance(len(chunk))
    return answers


def search_file(searcher: Searcher, path: str | Path, k: int = 100, batch_size: int = 64,
                **options) -> dict[QueryId, list[Moment]]:
    """``qid -> moments`` for every query of a file (see :func:`answer_file`)."""
    return {a.qid: a.moments for a in answer_file(searcher, path, k, batch_size, **options)}


def corpus_video_ids(searcher: Searcher) -> list[str]:
    """The ids of the videos the index answers from (TVR's ``video2idx`` numbers them)."""
    return [record.video_id for record in searcher.catalog.videos()]


def write_predictions(path: str | Path,
                      answers: Sequence[QueryAnswer] | Mapping[QueryId, list[Moment]],
                      format: str = "jsonl", video_ids: Sequence[str] | None = None) -> None:
    """Write the answers as corpus predictions, atomically.

    Args:
        path: destination.
        answers: as :func:`answer_file` returns them, or ``qid -> moments`` as
            :func:`search_file` does (TVR's ``desc`` is then left empty).
        format: ``jsonl`` (``{"qid", "pred_moments": [[vid, st, ed, score], ...]}`` lines) or
            ``tvr`` (TVRetrieval's VCMR submission).
        video_ids: ``tvr`` only: every video of the searched corpus (:func:`corpus_video_ids`).

    Raises:
        ValueError: an unknown format, or ``tvr`` without ``video_ids``.
    """
    if isinstance(answers, Mapping):
        answers = [QueryAnswer(qid, "", moments) for qid, moments in answers.items()]
    rows = {a.qid: [(m.video_id, m.start_s, m.end_s, m.score) for m in a.moments]
            for a in answers}
    if format == "jsonl":
        write_corpus_predictions(path, rows)
    elif format == "tvr":
        if video_ids is None:
            raise InputError("the tvr format needs the corpus's video ids (video2idx)")
        write_tvr_predictions(path, [(a.qid, a.text, rows[a.qid]) for a in answers], video_ids)
    else:
        raise InputError(f"unknown prediction format {format!r}; expected one of "
                         f"{', '.join(PREDICTION_FORMATS)}")
