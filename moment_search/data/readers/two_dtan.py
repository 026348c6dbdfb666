"""The 2D-TAN JSON annotation files of TACoS and ActivityNet Captions.

Both are one JSON object ``{video_key: {...}}`` with parallel ``timestamps`` and ``sentences``
lists per video. Query ids are ``"<video_id>#<sentence index>"``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..corpus import Corpus, CorpusError
from ._common import (
    CorpusBuilder,
    ReadResult,
    as_number,
    as_text,
    as_window,
    load_json,
    require_keys,
)

TACOS_KEYS = ("timestamps", "sentences", "fps", "num_frames")
ACTIVITYNET_KEYS = ("duration", "timestamps", "sentences")

# (record, where) -> (duration_s, seconds per timestamp unit)
_TimeBase = Callable[[Mapping[str, Any], str], tuple[float, float]]


def read_tacos_2dtan_with_report(json_path: str | Path) -> ReadResult:
    """Read the 2D-TAN TACoS file with counts of what was skipped or clipped.

    Per video: ``timestamps`` as ``[start_frame, end_frame]``, ``fps`` and ``num_frames``; times
    in seconds are ``frame / fps`` and the duration is ``num_frames / fps``. The video id is the
    key without its extension (``"s30-d52.avi"`` -> ``"s30-d52"``), the name of its features in
    the 2D-TAN feature file. Windows are fitted to the duration as every reader does (see
    :mod:`moment_search.data.readers`).

    Raises:
        CorpusError: invalid JSON, a missing key, a non-numeric value, ``timestamps`` and
            ``sentences`` of different lengths, or an empty sentence, naming file and video key.
    """
    return tacos_from_json(load_json(Path(json_path)), str(json_path))


def read_tacos_2dtan(json_path: str | Path) -> Corpus:
    """Read the 2D-TAN TACoS file as a Corpus; see :func:`read_tacos_2dtan_with_report`."""
    return read_tacos_2dtan_with_report(json_path).corpus


def read_activitynet_2dtan_with_report(json_path: str | Path) -> ReadResult:
    """Read the 2D-TAN ActivityNet Captions file with counts of what was skipped or clipped.

    Per video: ``duration`` and ``timestamps`` in seconds, ``sentences``. The video id is the
    key (``"v_uqiMw7tQ1Cc"``). Sentences are stripped of surrounding spaces.

    Raises:
        CorpusError: as :func:`read_tacos_2dtan_with_report`.
    """
    return activitynet_from_json(load_json(Path(json_path)), str(json_path))


def read_activitynet_2dtan(json_path: str | Path) -> Corpus:
    """Read the 2D-TAN ActivityNet file as a Corpus; see the ``_with_report`` variant."""
    return read_activitynet_2dtan_with_report(json_path).corpus


def tacos_from_json(data: Any, name: str) -> ReadResult:
    """Build the TACoS corpus from the parsed JSON of the file ``name``."""
    return _from_json(data, name, TACOS_KEYS, _tacos_time_base, _strip_extension)


def activitynet_from_json(data: Any, name: str) -> ReadResult:
    """Build the ActivityNet corpus from the parsed JSON of the file ``name``."""
    return _from_json(data, name, ACTIVITYNET_KEYS, _activitynet_time_base, str)


def _tacos_time_base(record: Mapping[str, Any], where: str) -> tuple[float, float]:
    fps = as_number(record["fps"], where, "fps")
    if fps <= 0:
        raise CorpusError(f"{where}: fps must be > 0, got {fps}")
    return as_number(record["num_frames"], where, "num_frames") / fps, fps


def _activitynet_time_base(record: Mapping[str, Any], where: str) -> tuple[float, float]:
    return as_number(record["duration"], where, "duration"), 1.0


def _strip_extension(key: str) -> str:
    return key.rsplit(".", 1)[0] if "." in key else key


def _from_json(
    data: Any, name: str, keys: tuple[str, ...], time_base: _TimeBase,
    video_id_of: Callable[[str], str],
) -> ReadResult:
    if not isinstance(data, dict):
        raise CorpusError(f"{name}: expected a JSON object of videos, got {type(data).__name__}")
    builder = CorpusBuilder(name)
    for key, record in data.items():
        _add_video(builder, key, record, keys, time_base, video_id_of(key))
    return builder.finish()


def _add_video(
    builder: CorpusBuilder, key: str, record: Any, keys: tuple[str, ...],
    time_base: _TimeBase, video_id: str,
) -> None:
    where = f"{builder.corpus.name}: video {key!r}"
    require_keys(record, keys, where)
    duration, units_per_second = time_base(record, where)
    timestamps, sentences = record["timestamps"], record["sentences"]
    if not isinstance(timestamps, list) or not isinstance(sentences, list):
        raise CorpusError(f"{where}: 'timestamps' and 'sentences' must be lists")
    if len(timestamps) != len(sentences):
        raise CorpusError(f"{where}: {len(timestamps)} timestamps but {len(sentences)} sentences")
    builder.add_video(video_id, duration, where)
    for i, (window, sentence) in enumerate(zip(timestamps, sentences, strict=True)):
        at = f"{where} sentence {i}"
        builder.add_query(f"{video_id}#{i}", as_text(sentence, at, "sentence"), video_id,
                          [as_window(window, at, units_per_second)], at)
