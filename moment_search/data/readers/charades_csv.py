"""The official Charades annotations: ``Charades_v1_*.csv`` rows and ``Charades_v1_classes.txt``.

A CSV row (fields ``id, subject, scene, quality, relevance, verified, script, objects,
descriptions, actions, length``) holds, per video, the action segments of the 157 classes
(``actions``: ``cNNN start end`` triples in seconds, separated by ``;``), 1-3 free-text
descriptions (``;``-separated), the script the actors were given and the objects seen.
Charades-STA's sentences were written from these, so they are extra supervision for the same
videos (see :mod:`moment_search.data.pseudo_queries`).
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from pathlib import Path

from ..corpus import CorpusError
from .charades import _csv_length

REQUIRED_COLUMNS = ("id", "script", "descriptions", "actions", "length")
CLASS_LINE = re.compile(r"^(c\d{3})\s+(\S.*)$")


@dataclass(frozen=True)
class ActionSegment:
    """One labelled action of a video: class id (``"c008"``) and its span in seconds."""

    class_id: str
    start: float
    end: float


@dataclass(frozen=True)
class CharadesVideo:
    """The official annotations of one Charades video.

    Attributes:
        video_id: the Charades id (``"TJZ0P"``).
        duration: the ``length`` column, seconds.
        scene: where it was filmed (``"Bedroom"``).
        script: the script the actors followed.
        descriptions: what annotators wrote after watching it (1-3 texts).
        objects: object names seen.
        actions: the action segments, in file order.
    """

    video_id: str
    duration: float
    scene: str
    script: str
    descriptions: tuple[str, ...]
    objects: tuple[str, ...]
    actions: tuple[ActionSegment, ...]


def read_charades_classes(path: str | Path) -> dict[str, str]:
    """``cNNN -> phrase`` from ``Charades_v1_classes.txt`` (``c008 Opening a door`` per line).

    Raises:
        CorpusError: a missing file, or a non-blank line that is not ``cNNN phrase`` or repeats a
            class id, naming the file and line.
    """
    classes: dict[str, str] = {}
    for number, line in enumerate(_read_lines(path, "Charades class list"), start=1):
        if not line.strip():
            continue
        match = CLASS_LINE.match(line.strip())
        if match is None:
            raise CorpusError(f"{path}:{number}: expected 'cNNN phrase', got {line.strip()!r}")
        if match[1] in classes:
            raise CorpusError(f"{path}:{number}: class {match[1]} listed twice")
        classes[match[1]] = match[2].strip()
    return classes


def read_charades_csv(path: str | Path, classes: dict[str, str] | None = None
                      ) -> dict[str, CharadesVideo]:
    """``video_id -> CharadesVideo`` from an official Charades CSV.

    Args:
        path: the CSV file.
        classes: the class list; when given, an action of an unknown class is an error.

    Raises:
        CorpusError: a missing file or column, a repeated video id, a bad ``length``, or an
            ``actions`` entry that is not ``cNNN start end`` with ``0 <= start`` and finite
            numbers, naming the file, line and the bad value.
    """
    try:
        handle = open(path, encoding="utf-8", newline="")
    except FileNotFoundError as e:
        raise CorpusError(f"Charades annotation file {path} does not exist") from e
    videos: dict[str, CharadesVideo] = {}
    with handle:
        reader = csv.DictReader(handle)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or ())]
        if missing:
            raise CorpusError(f"{path}: missing column(s) {missing} (expected the official "
                              f"Charades CSV header with {', '.join(REQUIRED_COLUMNS)})")
        for row in reader:
            where = f"{path}:{reader.line_num}"
            video = _parse_row(row, where, classes)
            if video.video_id in videos:
                raise CorpusError(f"{where}: video {video.video_id!r} appears twice")
            videos[video.video_id] = video
    return videos


def _read_lines(path: str | Path, what: str) -> list[str]:
    try:
        return Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError as e:
        raise CorpusError(f"{what} {path} does not exist") from e


def _parse_row(row: dict[str, str | None], where: str, classes: dict[str, str] | None
               ) -> CharadesVideo:
    video_id = (row.get("id") or "").strip()
    if not video_id:
        raise CorpusError(f"{where}: empty video id")
    return CharadesVideo(
        video_id=video_id,
        duration=_csv_length(row, where),
        scene=(row.get("scene") or "").strip(),
        script=(row.get("script") or "").strip(),
        descriptions=_multi(row.get("descriptions")),
        objects=_multi(row.get("objects")),
        actions=tuple(_action(text, where, classes) for text in _multi(row.get("actions"))),
    )


def _multi(value: str | None) -> tuple[str, ...]:
    """A ``;``-separated multi-value field -> its non-blank parts."""
    return tuple(part.strip() for part in (value or "").split(";") if part.strip())


def _action(text: str, where: str, classes: dict[str, str] | None) -> ActionSegment:
    fields = text.split()
    if len(fields) != 3 or not re.fullmatch(r"c\d{3}", fields[0]):
        raise CorpusError(f"{where}: action {text!r} is not 'cNNN start end'")
    try:
        start, end = float(fields[1]), float(fields[2])
    except ValueError as e:
        raise CorpusError(f"{where}: action {text!r}: start and end must be numbers of "
                          f"seconds") from e
    if not (math.isfinite(start) and math.isfinite(end) and start >= 0):
        raise CorpusError(f"{where}: action {text!r}: start and end must be finite, start >= 0")
    if classes is not None and fields[0] not in classes:
        raise CorpusError(f"{where}: action {text!r}: unknown class {fields[0]} "
                          f"(not in the class list)")
    return ActionSegment(fields[0], start, end)
