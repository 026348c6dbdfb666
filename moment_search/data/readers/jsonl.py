"""One-query-a-line JSONL files: QVHighlights/lighthouse (also our charades-sta-clip) and TVR."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..corpus import Corpus, CorpusError
from ._common import (
    QUERY_UNKNOWN_DURATION,
    CorpusBuilder,
    ReadResult,
    as_id,
    as_number,
    as_qid,
    as_text,
    as_window,
    iter_jsonl,
    load_json,
    require_keys,
)

QUERY_KEYS = ("qid", "query", "vid", "duration", "relevant_windows")
TVR_KEYS = ("vid_name", "duration", "ts", "desc", "desc_id")


def read_jsonl_queries_with_report(jsonl_path: str | Path) -> ReadResult:
    """Read a QVHighlights/lighthouse JSONL file with counts of what was skipped or clipped.

    One JSON object a line with ``qid`` (string or integer, kept in its type), ``query``,
    ``vid``, ``duration`` (seconds) and ``relevant_windows`` (a list of ``[start_s, end_s]``);
    other keys (e.g. ``saliency_scores``) are ignored. Windows are fitted to the duration; a
    query keeps the windows that survive and is skipped only when none does. Blank lines are
    ignored.

    Raises:
        CorpusError: invalid JSON, a missing key (naming the expected keys), a value of the wrong
            type, an empty query, a duplicate qid, or a video given two durations, naming the file
            and line.
    """
    builder = CorpusBuilder(str(jsonl_path))
    for line_number, record in iter_jsonl(Path(jsonl_path)):
        _add_query_record(builder, record, f"{jsonl_path}:{line_number}")
    return builder.finish()


def read_jsonl_queries(jsonl_path: str | Path) -> Corpus:
    """Read a QVHighlights/lighthouse JSONL file as a Corpus; see the ``_with_report`` variant."""
    return read_jsonl_queries_with_report(jsonl_path).corpus


read_qvhighlights = read_jsonl_queries
read_qvhighlights_with_report = read_jsonl_queries_with_report


def read_tvr_with_report(
    jsonl_path: str | Path, video2dur_path: str | Path | None = None
) -> ReadResult:
    """Read a TVR JSONL file with counts of what was skipped or clipped.

    One JSON object a line with ``vid_name``, ``duration`` (seconds), ``ts`` (``[start_s,
    end_s]``), ``desc`` (the sentence) and ``desc_id`` (the query id, an integer in TVR's files,
    kept in its type). With ``video2dur_path``
    (``tvr_video2dur_idx.json``: ``{split: {vid_name: [duration_s, index]}}``) durations come
    from that file, looked up over all its splits, and queries of videos absent from it are
    skipped (``"query_unknown_video_duration"``); without it, from each line's ``duration``.

    Raises:
        CorpusError: as :func:`read_jsonl_queries_with_report`, and a malformed duration file.
    """
    durations = None if video2dur_path is None else read_tvr_durations(video2dur_path)
    builder = CorpusBuilder(str(jsonl_path))
    for line_number, record in iter_jsonl(Path(jsonl_path)):
        _add_tvr_record(builder, record, f"{jsonl_path}:{line_number}", durations)
    return builder.finish()


def read_tvr(jsonl_path: str | Path, video2dur_path: str | Path | None = None) -> Corpus:
    """Read a TVR JSONL file as a Corpus; see :func:`read_tvr_with_report`."""
    return read_tvr_with_report(jsonl_path, video2dur_path).corpus


def read_tvr_durations(video2dur_path: str | Path) -> dict[str, float]:
    """``vid_name -> duration`` (seconds) over every split of ``tvr_video2dur_idx.json``.

    Raises:
        CorpusError: the file is not ``{split: {vid_name: [duration_s, index]}}``, naming the
            file, split and video.
    """
    data = load_json(Path(video2dur_path))
    if not isinstance(data, dict):
        raise CorpusError(f"{video2dur_path}: expected {{split: {{vid_name: [duration, index]}}}}")
    durations: dict[str, float] = {}
    for split, videos in data.items():
        if not isinstance(videos, dict):
            raise CorpusError(f"{video2dur_path}: split {split!r} must map vid_name -> "
                              f"[duration, index], got {type(videos).__name__}")
        for video_id, entry in videos.items():
            where = f"{video2dur_path}: split {split!r} video {video_id!r}"
            if not isinstance(entry, list) or not entry:
                raise CorpusError(f"{where}: expected [duration, index], got {entry!r}")
            durations[video_id] = as_number(entry[0], where, "duration")
    return durations


def _add_query_record(builder: CorpusBuilder, record: Any, where: str) -> None:
    record = require_keys(record, QUERY_KEYS, where)
    video_id = as_id(record["vid"], where, "vid")
    builder.add_video(video_id, as_number(record["duration"], where, "duration"), where)
    windows = record["relevant_windows"]
    if not isinstance(windows, list):
        raise CorpusError(f"{where}: relevant_windows must be a list of [start, end], "
                          f"got {windows!r}")
    builder.add_query(as_qid(record["qid"], where),
                      as_text(record["query"], where, "query"), video_id,
                      [as_window(w, where) for w in windows], where)


def _add_tvr_record(
    builder: CorpusBuilder, record: Any, where: str, durations: Mapping[str, float] | None
) -> None:
    record = require_keys(record, TVR_KEYS, where)
    video_id = as_id(record["vid_name"], where, "vid_name")
    line_duration = as_number(record["duration"], where, "duration")
    window = as_window(record["ts"], where)
    text = as_text(record["desc"], where, "desc")
    qid = as_qid(record["desc_id"], where, "desc_id")
    duration = line_duration if durations is None else durations.get(video_id)
    if duration is None:
        builder.skip_query(QUERY_UNKNOWN_DURATION)
        return
    builder.add_video(video_id, duration, where)
    builder.add_query(qid, text, video_id, [window], where)
