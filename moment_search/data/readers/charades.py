"""Charades-STA: ``charades_sta_<split>.txt`` sentences, ``Charades_v1_<split>.csv`` durations."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from ..corpus import Corpus, CorpusError
from ._common import QUERY_UNKNOWN_DURATION, CorpusBuilder, ReadResult

SEPARATOR = "##"


def read_charades_sta_with_report(
    txt_path: str | Path, csv_path: str | Path
) -> ReadResult:
    """Read Charades-STA with counts of what was skipped or clipped.

    Each line of ``txt_path`` is ``"<video_id> <start_s> <end_s>##<sentence>"``; the query id is
    the 0-based line index (``"0"`` for the first line). Durations come from the ``length``
    column (seconds) of ``csv_path``. Windows ending after the duration are clipped to it (the
    Charades-STA convention); a window starting at/after the duration or with ``end <= start``
    is skipped with its query. Queries of videos missing from the csv are skipped
    (``"query_unknown_video_duration"``). All skips are counted in ``ReadResult.skipped``.

    Args:
        txt_path: the Charades-STA sentence file.
        csv_path: the Charades ``Charades_v1_*.csv`` metadata with ``id`` and ``length`` columns.

    Returns:
        ReadResult whose corpus is named ``str(txt_path)``.

    Raises:
        CorpusError: a malformed line (no ``##``, not ``vid start end``, non-numeric or
            non-finite times, empty sentence) or a bad csv row, naming the file and line number.
    """
    durations = read_charades_durations(csv_path)
    builder = CorpusBuilder(str(txt_path))
    try:
        f = open(txt_path, encoding="utf-8")
    except FileNotFoundError as e:
        raise CorpusError(f"annotation file {txt_path} does not exist") from e
    with f:
        for line_number, line in enumerate(f, start=1):
            if line.strip():
                _add_line(builder, durations, line, f"{txt_path}:{line_number}", line_number - 1)
    return builder.finish()


def read_charades_sta(txt_path: str | Path, csv_path: str | Path) -> Corpus:
    """Read Charades-STA as a Corpus; see :func:`read_charades_sta_with_report` for the rules."""
    return read_charades_sta_with_report(txt_path, csv_path).corpus


def read_charades_durations(csv_path: str | Path) -> dict[str, float]:
    """``video_id -> duration`` (seconds) from a Charades ``Charades_v1_*.csv``.

    Raises:
        CorpusError: missing file, no ``id``/``length`` column, or a row whose length is not a
            positive number, naming the file and line.
    """
    try:
        f = open(csv_path, encoding="utf-8", newline="")
    except FileNotFoundError as e:
        raise CorpusError(f"Charades metadata file {csv_path} does not exist") from e
    with f:
        reader = csv.DictReader(f)
        missing = {"id", "length"} - set(reader.fieldnames or ())
        if missing:
            raise CorpusError(f"{csv_path}: missing column(s) {sorted(missing)} "
                              f"(expected 'id' and 'length')")
        return {row["id"]: _csv_length(row, f"{csv_path}:{reader.line_num}") for row in reader}


def _csv_length(row: dict[str, str], where: str) -> float:
    try:
        length = float(row["length"])
    except (TypeError, ValueError) as e:
        raise CorpusError(f"{where}: length must be a number of seconds, "
                          f"got {row['length']!r}") from e
    if not (math.isfinite(length) and length > 0):
        raise CorpusError(f"{where}: length must be positive seconds, got {row['length']!r}")
    return length


def _add_line(
    builder: CorpusBuilder, durations: dict[str, float], line: str, where: str, qid: int
) -> None:
    video_id, start, end, sentence = _parse_line(line, where)
    duration = durations.get(video_id)
    if duration is None:
        builder.skip_query(QUERY_UNKNOWN_DURATION)
        return
    builder.add_video(video_id, duration, where)
    builder.add_query(str(qid), sentence, video_id, [(start, end)], where)


def _parse_line(line: str, where: str) -> tuple[str, float, float, str]:
    """``"vid start end##sentence"`` -> ``(vid, start_s, end_s, sentence)``."""
    head, sep, sentence = line.rstrip("\r\n").partition(SEPARATOR)
    if not sep:
        raise CorpusError(f"{where}: expected 'video_id start end##sentence', no '##' in {line!r}")
    fields = head.split()
    if len(fields) != 3:
        raise CorpusError(f"{where}: expected 'video_id start end' before '##', got {head!r}")
    try:
        start, end = float(fields[1]), float(fields[2])
    except ValueError as e:
        raise CorpusError(f"{where}: start and end must be numbers of seconds, "
                          f"got {fields[1]!r} {fields[2]!r}") from e
    if not (math.isfinite(start) and math.isfinite(end)):
        raise CorpusError(f"{where}: start and end must be finite, got {start} {end}")
    if not sentence.strip():
        raise CorpusError(f"{where}: empty sentence after '##'")
    return fields[0], start, end, sentence
