"""Annotation readers: one per benchmark format, each returning a :class:`Corpus` (seconds).

Every reader comes in two forms: ``read_x(...) -> Corpus`` and ``read_x_with_report(...) ->
ReadResult``, whose ``skipped`` counts what was left out and why, and ``clipped_windows`` what
was clipped. All readers share one window policy (the Charades-STA convention):

- a window ending after its video's duration is clipped to the duration (a start below 0 to 0),
  except an end within ``corpus.WINDOW_END_TOLERANCE_S`` (0.005 s) of it: durations are written
  rounded to 0.01 s, window ends often are not, and such an end is kept as written;
- query ids keep the type their file wrote (a JSON integer ``qid`` or ``desc_id`` stays an
  integer; Charades-STA's line indices and 2D-TAN's ``"<video>#<i>"`` ids are strings);
- a window with ``end <= start`` (``"window_empty"``) or starting at/after the duration
  (``"window_after_video_end"``) is dropped; a query left without windows is skipped
  (``"query_no_valid_window"``); a query whose video has no known duration is skipped
  (``"query_unknown_video_duration"``);
- videos named in a file stay in the corpus even when none of their queries survive;
- malformed input (bad line, missing key, wrong type, empty sentence, duplicate query id) raises
  :class:`CorpusError` naming the file, the line (or video key) and what was expected.

``read_annotations`` picks the reader from the file name and content
(see :mod:`moment_search.data.readers.dispatch`).
"""

from ._common import (
    QUERY_NO_VALID_WINDOW,
    QUERY_UNKNOWN_DURATION,
    WINDOW_AFTER_VIDEO_END,
    WINDOW_EMPTY,
    ReadResult,
)
from .charades import read_charades_durations, read_charades_sta, read_charades_sta_with_report
from .dispatch import FORMATS, read_annotations, read_annotations_with_report
from .jsonl import (
    read_jsonl_queries,
    read_jsonl_queries_with_report,
    read_qvhighlights,
    read_qvhighlights_with_report,
    read_tvr,
    read_tvr_durations,
    read_tvr_with_report,
)
from .two_dtan import (
    read_activitynet_2dtan,
    read_activitynet_2dtan_with_report,
    read_tacos_2dtan,
    read_tacos_2dtan_with_report,
)

__all__ = [
    "FORMATS",
    "QUERY_NO_VALID_WINDOW",
    "QUERY_UNKNOWN_DURATION",
    "WINDOW_AFTER_VIDEO_END",
    "WINDOW_EMPTY",
    "ReadResult",
    "read_activitynet_2dtan",
    "read_activitynet_2dtan_with_report",
    "read_annotations",
    "read_annotations_with_report",
    "read_charades_durations",
    "read_charades_sta",
    "read_charades_sta_with_report",
    "read_jsonl_queries",
    "read_jsonl_queries_with_report",
    "read_qvhighlights",
    "read_qvhighlights_with_report",
    "read_tacos_2dtan",
    "read_tacos_2dtan_with_report",
    "read_tvr",
    "read_tvr_durations",
    "read_tvr_with_report",
]
