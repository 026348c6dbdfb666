"""Pick the reader for an annotation file from its name and content.

Rules, in order (``format`` overrides them):

1. ``*.txt`` -> Charades-STA. The metadata csv is ``csv_path`` or, for a file named
   ``charades_sta_<split>.txt``, the sibling ``Charades_v1_<split>.csv``.
2. ``*.jsonl`` -> by the keys of the first non-blank line: ``vid_name`` and ``desc`` -> TVR
   (durations from ``video2dur_path`` when given); ``qid``, ``query`` and ``vid`` -> the
   QVHighlights/lighthouse reader. An empty file is read as an empty QVHighlights corpus.
3. ``*.json`` -> 2D-TAN, by the keys of the first video: ``fps`` and ``num_frames`` -> TACoS,
   ``duration`` -> ActivityNet Captions.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..corpus import Corpus, CorpusError
from ._common import ReadResult, iter_jsonl, load_json
from .charades import read_charades_sta_with_report
from .jsonl import read_jsonl_queries_with_report, read_tvr_with_report
from .two_dtan import activitynet_from_json, tacos_from_json

FORMATS = ("charades-sta", "tacos", "activitynet", "qvhighlights", "tvr")


def read_annotations_with_report(
    path: str | Path, format: str | None = None, *,
    csv_path: str | Path | None = None, video2dur_path: str | Path | None = None,
) -> ReadResult:
    """Read any supported annotation file, detecting its format (module docstring rules).

    Args:
        path: the annotation file.
        format: one of ``FORMATS`` to skip detection; None to detect.
        csv_path: Charades-STA only: the ``Charades_v1_*.csv`` with the durations.
        video2dur_path: TVR only: ``tvr_video2dur_idx.json`` to take durations from.

    Returns:
        ReadResult of the chosen reader.

    Raises:
        CorpusError: unknown format or suffix, content matching no format, a Charades-STA file
            without a csv, or any error of the chosen reader.
    """
    path = Path(path)
    if format is not None and format not in FORMATS:
        raise CorpusError(f"{path}: unknown annotation format {format!r}, "
                          f"expected one of {FORMATS}")
    if format == "charades-sta" or (format is None and path.suffix == ".txt"):
        return read_charades_sta_with_report(path, csv_path or _charades_csv(path))
    if format in ("tacos", "activitynet") or (format is None and path.suffix == ".json"):
        return _read_2dtan(path, format)
    if format in ("qvhighlights", "tvr") or (format is None and path.suffix == ".jsonl"):
        if (format or _jsonl_format(path)) == "tvr":
            return read_tvr_with_report(path, video2dur_path)
        return read_jsonl_queries_with_report(path)
    raise CorpusError(f"{path}: cannot tell the annotation format from suffix {path.suffix!r} "
                      f"(expected .txt, .json or .jsonl, or pass format= one of {FORMATS})")


def read_annotations(
    path: str | Path, format: str | None = None, *,
    csv_path: str | Path | None = None, video2dur_path: str | Path | None = None,
) -> Corpus:
    """Read any supported annotation file as a Corpus; see :func:`read_annotations_with_report`."""
    return read_annotations_with_report(
        path, format, csv_path=csv_path, video2dur_path=video2dur_path).corpus


def _charades_csv(txt_path: Path) -> Path:
    match = re.fullmatch(r"charades_sta_(\w+)\.txt", txt_path.name)
    csv_path = txt_path.with_name(f"Charades_v1_{match.group(1)}.csv") if match else None
    if csv_path is None or not csv_path.is_file():
        expected = csv_path or "Charades_v1_<split>.csv beside charades_sta_<split>.txt"
        raise CorpusError(f"{txt_path}: Charades-STA needs its durations csv ({expected}); "
                          f"pass csv_path")
    return csv_path


def _jsonl_format(path: Path) -> str:
    first = next(iter_jsonl(path), None)
    if first is None:
        return "qvhighlights"
    line_number, record = first
    keys = set(record) if isinstance(record, dict) else set()
    if {"vid_name", "desc"} <= keys:
        return "tvr"
    if {"qid", "query", "vid"} <= keys:
        return "qvhighlights"
    raise CorpusError(f"{path}:{line_number}: not a known JSONL annotation format: expected keys "
                      f"vid_name+desc (TVR) or qid+query+vid (QVHighlights), got {sorted(keys)}")


def _read_2dtan(path: Path, format: str | None) -> ReadResult:
    data = load_json(path)
    format = format or _json_format(path, data)
    if format == "tacos":
        return tacos_from_json(data, str(path))
    return activitynet_from_json(data, str(path))


def _json_format(path: Path, data: Any) -> str:
    if isinstance(data, dict) and not data:
        return "activitynet"
    first = next(iter(data.values()), None) if isinstance(data, dict) else None
    keys = set(first) if isinstance(first, dict) else set()
    if {"fps", "num_frames"} <= keys:
        return "tacos"
    if "duration" in keys:
        return "activitynet"
    raise CorpusError(f"{path}: not a 2D-TAN annotation file: expected {{video: {{...}}}} whose "
                      f"videos have fps+num_frames (TACoS) or duration (ActivityNet), "
                      f"got keys {sorted(keys)}")
