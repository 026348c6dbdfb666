"""TVRetrieval's video-corpus moment retrieval (VCMR) submission file, written and read here.

The format of jayleicn/TVRetrieval's ``standalone_eval/eval.py`` (one JSON document)::

    {"video2idx": {"<video_id>": <int>, ...},
     "VCMR": [{"desc_id": <qid>, "desc": "<sentence>",
               "predictions": [[<video_idx>, <start_s>, <end_s>, <score>], ...]}, ...]}

``video2idx`` numbers every video of the searched corpus (TVR's evaluator looks each
ground-truth video up in it, so it must hold the videos no query retrieved too); a prediction
names its video by that number. ``desc_id`` is the query id in its own type (TVR's are integers)
and must equal the ground truth's. TVR's evaluator scores the first 100 predictions of a query.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from typing import Any

from moment_search.atomic import atomic_write_text
from moment_search.data.corpus import CorpusError, QueryId, check_query_id

from ..errors import DataError

TASK = "VCMR"
CorpusMoment = tuple[str, float, float, float]


def video_index(video_ids: Sequence[str]) -> dict[str, int]:
    """``video2idx``: the corpus's videos numbered 0.. in sorted id order."""
    return {video_id: i for i, video_id in enumerate(sorted(set(video_ids)))}


def _entry(qid: QueryId, text: str, moments: Sequence[Sequence], index: dict[str, int]) -> dict:
    """One VCMR entry; raises ValueError naming the query and a moment of an unknown video."""
    rows = []
    for rank, moment in enumerate(moments):
        if len(moment) != 4:
            raise DataError(f"query {qid!r}, moment {rank}: expected (video_id, start_s, end_s, "
                            f"score), got {moment!r}")
        video_id, start, end, score = moment
        if video_id not in index:
            raise DataError(f"query {qid!r}, moment {rank}: video {video_id!r} is not one of "
                            f"the {len(index)} corpus videos given for video2idx")
        rows.append([index[video_id], float(start), float(end), float(score)])
    return {"desc_id": check_query_id(qid), "desc": text, "predictions": rows}


def write_tvr_predictions(
    path: str | os.PathLike,
    answers: Sequence[tuple[QueryId, str, Sequence[Sequence]]],
    video_ids: Sequence[str],
) -> None:
    """Write a TVR VCMR submission atomically.

    Args:
        path: destination (``.json``).
        answers: per query ``(qid, sentence, [(video_id, start_s, end_s, score), ...])``, the
            moments best first.
        video_ids: every video of the searched corpus (numbered by :func:`video_index`).

    Raises:
        ValueError: a moment of a video not in ``video_ids``, or a bad qid, naming the query.
    """
    index = video_index(video_ids)
    entries = [_entry(qid, text, moments, index) for qid, text, moments in answers]
    atomic_write_text(path, json.dumps({"video2idx": index, TASK: entries}) + "\n")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _names_by_index(video2idx: Any) -> dict[int, str]:
    """``video2idx`` inverted; ValueError when it is not ``{str: distinct int}``."""
    if not isinstance(video2idx, dict):
        raise DataError(f"'video2idx' must be an object {{video_id: int}}, "
                        f"got {type(video2idx).__name__}")
    names: dict[int, str] = {}
    for name, idx in video2idx.items():
        if isinstance(idx, bool) or not isinstance(idx, int) or idx in names:
            raise DataError(f"'video2idx' must give each video a distinct integer, got "
                            f"{name!r}: {idx!r}")
        names[idx] = name
    return names


def _moment(row: Any, names: dict[int, str], what: str) -> CorpusMoment:
    """``[video_idx, start_s, end_s, score]`` -> ``(video_id, start_s, end_s, score)``."""
    if not isinstance(row, list) or len(row) != 4 or not all(_is_number(v) for v in row):
        raise DataError(f"{what}: expected [video_idx, start_s, end_s, score] numbers, "
                        f"got {row!r}")
    idx, start, end, score = row
    if idx not in names:
        raise DataError(f"{what}: video index {idx!r} is not in 'video2idx'")
    if start > end:
        raise DataError(f"{what}: start {start} is after end {end}")
    return names[idx], float(start), float(end), float(score)


def _parse_entry(entry: Any, names: dict[int, str], where: str) -> tuple[QueryId, list]:
    if not isinstance(entry, dict) or not {"desc_id", "predictions"} <= set(entry):
        raise DataError(f"{where}: expected an object with 'desc_id' and 'predictions'")
    try:
        qid = check_query_id(entry["desc_id"])
    except CorpusError as e:
        raise DataError(f"{where}: {e}") from e
    if not isinstance(entry["predictions"], list):
        raise DataError(f"{where}: 'predictions' must be a list")
    return qid, [_moment(row, names, f"{where} (desc_id {qid!r}), prediction {rank}")
                 for rank, row in enumerate(entry["predictions"])]


def read_tvr_predictions(path: str | os.PathLike) -> dict[QueryId, list[CorpusMoment]]:
    """Read the VCMR part of a TVR submission.

    Returns:
        ``desc_id -> [(video_id, start_s, end_s, score), ...]`` in the file's order.

    Raises:
        ValueError: not valid JSON, no ``video2idx`` or ``VCMR``, a malformed entry or
            prediction, or a repeated ``desc_id``, naming the file and the entry.
        OSError: the file cannot be read.
    """
    try:
        with open(path, encoding="utf-8") as stream:
            submission = json.load(stream)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON (line {e.lineno}: {e.msg})") from e
    if not isinstance(submission, dict) or not {"video2idx", TASK} <= set(submission):
        raise DataError(f"{path}: expected a TVR submission, an object with 'video2idx' and "
                        f"'{TASK}'")
    try:
        names = _names_by_index(submission["video2idx"])
    except ValueError as e:
        raise DataError(f"{path}: {e}") from e
    if not isinstance(submission[TASK], list) or not submission[TASK]:
        raise DataError(f"{path}: '{TASK}' must be a non-empty list of queries")
    predictions: dict[QueryId, list[CorpusMoment]] = {}
    for i, entry in enumerate(submission[TASK]):
        qid, moments = _parse_entry(entry, names, f"{path}: {TASK}[{i}]")
        if qid in predictions:
            raise DataError(f"{path}: {TASK}[{i}]: desc_id {qid!r} is given twice")
        predictions[qid] = moments
    return predictions
