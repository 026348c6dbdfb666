"""Prediction files (JSONL), read and written only here (scored by ``eval.predictions``).

Two kinds, one JSON object per line, one line per query:

- single-video (QVHighlights convention, what moment_detr's and lighthouse's standalone
  evaluators read): ``{"qid": "val-0", "pred_relevant_windows": [[start_s, end_s, score], ...]}``
  (``[start_s, end_s]`` pairs without scores are accepted too, the same width on a line);
- corpus: ``{"qid": "val-0", "pred_moments": [[video_id, start_s, end_s, score], ...]}``
  (TVRetrieval's own submission file is :mod:`moment_search.data.tvr_format`; this reader reads
  it too).

A ``qid`` keeps its JSON type both ways: an integer id (lighthouse's and TVR's annotations) is
written and read back as an integer, a string as a string, since the field's evaluators match
prediction and ground-truth ids by equality. Predictions are listed best first. A file holds one
kind only. Writes are atomic: a temporary file in the target directory is renamed over the
destination, so a reader never sees half a file.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from moment_search.atomic import atomic_write_text
from moment_search.data.corpus import QueryId, check_query_id
from moment_search.data.tvr_format import CorpusMoment, read_tvr_predictions

from ..errors import DataError

SINGLE = "single"
CORPUS = "corpus"
PredictionKind = Literal["single", "corpus"]
_FIELD_OF_KIND = {SINGLE: "pred_relevant_windows", CORPUS: "pred_moments"}


def _single_rows(qid: QueryId, windows: np.ndarray) -> list[list[float]]:
    """One query's (K, 2|3) windows as JSON rows, checked."""
    array = np.asarray(windows, dtype=np.float64)
    if array.size == 0:
        return []
    if array.ndim != 2 or array.shape[1] not in (2, 3):
        raise ValueError(
            f"query {qid!r}: expected windows (K, 2) or (K, 3) [start_s, end_s(, score)], "
            f"got shape {array.shape}"
        )
    return [[float(v) for v in row] for row in array]


def _corpus_rows(qid: QueryId, moments: Sequence[Sequence]) -> list[list]:
    """One query's corpus moments as JSON rows ``[video_id, start_s, end_s, score]``, checked."""
    rows = []
    for rank, moment in enumerate(moments):
        if len(moment) != 4:
            raise ValueError(
                f"query {qid!r}, moment {rank}: expected (video_id, start_s, end_s, score), "
                f"got {moment!r}"
            )
        video_id, start, end, score = moment
        rows.append([str(video_id), float(start), float(end), float(score)])
    return rows


def write_single_predictions(
    path: str | os.PathLike, preds: Mapping[QueryId, np.ndarray]
) -> None:
    """Write single-video predictions, one line per query.

    Args:
        path: destination ``.jsonl``.
        preds: ``qid -> (K, 3)`` ``[start_s, end_s, score]`` (or (K, 2) without scores), best
            first; each qid is written in its type (string or integer).

    Raises:
        ValueError: naming the query whose array has the wrong shape, or a qid of another type.
    """
    lines = [
        json.dumps({"qid": check_query_id(qid), _FIELD_OF_KIND[SINGLE]: _single_rows(qid, windows)})
        for qid, windows in preds.items()
    ]
    atomic_write_text(path, "".join(line + "\n" for line in lines))


def write_corpus_predictions(
    path: str | os.PathLike, preds: Mapping[QueryId, Sequence[Sequence]]
) -> None:
    """Write corpus predictions, one line per query.

    Args:
        path: destination ``.jsonl``.
        preds: ``qid -> [(video_id, start_s, end_s, score), ...]``, best first; each qid is
            written in its type (string or integer).

    Raises:
        ValueError: naming the query with a moment that is not a 4-tuple, or a qid of another
            type.
    """
    lines = [
        json.dumps({"qid": check_query_id(qid), _FIELD_OF_KIND[CORPUS]: _corpus_rows(qid, moments)})
        for qid, moments in preds.items()
    ]
    atomic_write_text(path, "".join(line + "\n" for line in lines))


class _LineError(ValueError):
    """What is wrong with one line; the reader adds the file and line number."""


def _is_number(value: Any) -> bool:
    """A finite JSON number (booleans are not numbers here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_span(start: Any, end: Any, what: str) -> tuple[float, float]:
    """``(start_s, end_s)`` as floats, or a line error naming ``what``."""
    if not (_is_number(start) and _is_number(end) and start <= end):
        raise _LineError(
            f"{what}: expected finite numbers start_s <= end_s, got {start!r}, {end!r}"
        )
    return float(start), float(end)


def _parse_single(windows: Any) -> np.ndarray:
    """``pred_relevant_windows`` -> (K, 2|3) float64."""
    if not isinstance(windows, list):
        raise _LineError(f"'pred_relevant_windows' must be a list, got {type(windows).__name__}")
    rows = []
    for rank, window in enumerate(windows):
        what = f"window {rank}"
        if not isinstance(window, list) or len(window) not in (2, 3):
            raise _LineError(f"{what}: expected [start_s, end_s, score], got {window!r}")
        if rows and len(window) != len(rows[0]):
            raise _LineError(f"{what}: has {len(window)} values, window 0 has {len(rows[0])}")
        if len(window) == 3 and not _is_number(window[2]):
            raise _LineError(f"{what}: score must be a finite number, got {window[2]!r}")
        rows.append([*_check_span(window[0], window[1], what), *window[2:]])
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), len(rows[0]) if rows else 3)


def _parse_corpus(moments: Any) -> list[CorpusMoment]:
    """``pred_moments`` -> ``[(video_id, start_s, end_s, score), ...]``."""
    if not isinstance(moments, list):
        raise _LineError(f"'pred_moments' must be a list, got {type(moments).__name__}")
    parsed = []
    for rank, moment in enumerate(moments):
        what = f"moment {rank}"
        if not isinstance(moment, list) or len(moment) != 4:
            raise _LineError(f"{what}: expected [video_id, start_s, end_s, score], got {moment!r}")
        video_id, start, end, score = moment
        if not isinstance(video_id, str) or not video_id:
            raise _LineError(f"{what}: video id must be a non-empty string, got {video_id!r}")
        if not _is_number(score):
            raise _LineError(f"{what}: score must be a finite number, got {score!r}")
        parsed.append((video_id, *_check_span(start, end, what), float(score)))
    return parsed


def _parse_line(text: str) -> tuple[PredictionKind, QueryId, Any]:
    """One JSONL line -> (kind, qid, parsed predictions)."""
    try:
        record = json.loads(text)
    except json.JSONDecodeError as e:
        raise _LineError(f"not valid JSON ({e.msg})") from e
    if not isinstance(record, dict):
        raise _LineError(f"expected a JSON object, got {type(record).__name__}")
    qid = record.get("qid")
    if isinstance(qid, bool) or not isinstance(qid, (str, int)) or qid == "":
        raise _LineError(f"expected a string or integer 'qid', got {qid!r}")
    kinds = [kind for kind, name in _FIELD_OF_KIND.items() if name in record]
    if len(kinds) != 1:
        raise _LineError("expected exactly one of 'pred_relevant_windows' (single-video) or "
                         f"'pred_moments' (corpus), got keys {sorted(record)}")
    kind = kinds[0]
    field = record[_FIELD_OF_KIND[kind]]
    parsed = _parse_single(field) if kind == SINGLE else _parse_corpus(field)
    return kind, qid, parsed


def read_predictions(path: str | os.PathLike) -> tuple[PredictionKind, dict[QueryId, Any]]:
    """Read a prediction file and detect its kind.

    Args:
        path: a ``.jsonl`` written by :func:`write_single_predictions` or
            :func:`write_corpus_predictions` (or by another tool in the same conventions), or a
            TVR submission ``.json`` (:mod:`moment_search.data.tvr_format`; its VCMR part).

    Returns:
        ``("single", {qid: (K, 2|3) float64 array})`` or
        ``("corpus", {qid: [(video_id, start_s, end_s, score), ...]})``; blank lines are skipped;
        qids in the type the file wrote them.

    Raises:
        ValueError: naming the file and line of a malformed line, a repeated qid (``7`` and
            ``"7"`` count as the same), or a line of the other kind; or an empty file.
        OSError: the file cannot be read.
    """
    if os.fspath(path).endswith(".json"):
        return CORPUS, read_tvr_predictions(path)
    kind: PredictionKind | None = None
    predictions: dict[QueryId, Any] = {}
    seen: dict[str, QueryId] = {}
    with open(path, encoding="utf-8") as stream:
        for number, text in enumerate(stream, start=1):
            if not text.strip():
                continue
            try:
                line_kind, qid, parsed = _parse_line(text)
                if kind is not None and line_kind != kind:
                    raise _LineError(f"a {line_kind} prediction in a file of {kind} predictions")
                if str(qid) in seen:
                    raise _LineError(f"query {qid!r} already has predictions on an earlier line "
                                     f"(as {seen[str(qid)]!r})")
            except _LineError as e:
                raise DataError(f"{path}, line {number}: {e}") from e
            kind = line_kind
            predictions[qid] = parsed
            seen[str(qid)] = qid
    if kind is None:
        raise DataError(f"{path}: no predictions (the file is empty)")
    return kind, predictions
