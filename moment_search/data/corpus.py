"""The in-memory corpus model: videos, queries and their ground-truth windows (seconds).

Every reader returns a :class:`Corpus`; every model, indexer and evaluator takes one. Nothing here
touches files: readers live in ``readers.py``, features in ``features.py``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace

from ..errors import DataError

# A query id as its annotation file wrote it: a JSON string stays a string, a JSON integer an
# integer, so prediction files give the id back in the type the field's evaluators compare with.
QueryId = str | int

# How far a window may end after its video's duration and still be kept as written: durations
# are usually written rounded to 0.01 s while window ends are not (charades-sta-clip writes
# ``"duration": 30.63`` with ``[25.0, 30.630630630630627]``), so an end up to half a hundredth
# past the duration is the same instant, and the field's evaluators score against it unchanged.
WINDOW_END_TOLERANCE_S = 0.005 + 1e-9


class CorpusError(DataError):
    """Bad corpus content: names the file, line or video and what was expected."""


class UnknownVideoError(CorpusError, KeyError):
    """A video id the corpus does not have (a KeyError too, for callers that catch one)."""


def check_query_id(value: object) -> QueryId:
    """``value`` if it is a valid query id: a non-empty string or an integer (not a bool).

    Raises:
        CorpusError: any other value, named.
    """
    if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
        raise CorpusError(f"a query id must be a non-empty string or an integer, got {value!r}")
    return value


@dataclass(frozen=True)
class Video:
    """One video of a corpus.

    Attributes:
        video_id: unique id (file stem of its features).
        duration: length in seconds, > 0.
        feature_source: where its features live (a ``.npy``/``.npz`` path, or ``"file.h5:key"``);
            None until a feature store is attached.
        feature_rate: features per second; None means the T features are spread evenly over
            ``duration`` (the 2D-TAN convention for C3D features).
        video_path: the raw video file (absolute), when the corpus knows it (the search page
            plays moments from it).
    """

    video_id: str
    duration: float
    feature_source: str | None = None
    feature_rate: float | None = None
    video_path: str | None = None

    def __post_init__(self) -> None:
        if not self.video_id:
            raise CorpusError("video id must be a non-empty string")
        if not (math.isfinite(self.duration) and self.duration > 0):
            raise CorpusError(
                f"video {self.video_id!r}: duration must be a positive number of seconds, "
                f"got {self.duration!r}"
            )
        if self.feature_rate is not None and not (self.feature_rate > 0):
            raise CorpusError(
                f"video {self.video_id!r}: feature rate must be > 0 features/s, "
                f"got {self.feature_rate!r}"
            )


@dataclass(frozen=True)
class Query:
    """One sentence query with its ground-truth windows.

    Attributes:
        qid: unique query id as written in its file: a string, or an integer when the file
            wrote one (e.g. lighthouse's and TVR's files); see :data:`QueryId`.
        text: the sentence.
        video_id: the video it is grounded in.
        windows: one or more ``(start_s, end_s)`` windows, ``0 <= start < end``.
    """

    qid: QueryId
    text: str
    video_id: str
    windows: tuple[tuple[float, float], ...] = ()

    def __post_init__(self) -> None:
        check_query_id(self.qid)
        if not self.text or not self.text.strip():
            raise CorpusError(f"query {self.qid!r}: empty sentence")
        for start, end in self.windows:
            if not (math.isfinite(start) and math.isfinite(end) and 0 <= start < end):
                raise CorpusError(
                    f"query {self.qid!r} (video {self.video_id!r}): window "
                    f"[{start}, {end}] must satisfy 0 <= start < end"
                )


@dataclass
class Corpus:
    """Videos by id and the queries grounded in them.

    Attributes:
        videos: ``video_id -> Video``, in insertion order.
        queries: list of queries; each ``video_id`` must be a key of ``videos``.
        name: a label for messages (usually the source path).
    """

    videos: dict[str, Video] = field(default_factory=dict)
    queries: list[Query] = field(default_factory=list)
    name: str = "corpus"

    def __len__(self) -> int:
        return len(self.videos)

    def __iter__(self) -> Iterator[Video]:
        return iter(self.videos.values())

    def video(self, video_id: str) -> Video:
        """The video with this id.

        Raises:
            UnknownVideoError: (a KeyError) naming the id and the corpus.
        """
        try:
            return self.videos[video_id]
        except KeyError:
            raise UnknownVideoError(f"unknown video id {video_id!r} in {self.name}") from None

    def add_video(self, video: Video) -> None:
        """Add a video; a second video with the same id must agree on its duration (±0.5 s)."""
        known = self.videos.get(video.video_id)
        if known is not None and abs(known.duration - video.duration) > 0.5:
            raise CorpusError(
                f"{self.name}: video {video.video_id!r} has two durations, "
                f"{known.duration} and {video.duration}"
            )
        if known is None:
            self.videos[video.video_id] = video

    def validate(self) -> None:
        """Check that every query names a known video and fits inside it (an end may pass the
        duration by :data:`WINDOW_END_TOLERANCE_S`, the rounding of a written duration).

        Raises:
            CorpusError: naming the query, the video and the bad window.
        """
        for query in self.queries:
            video = self.videos.get(query.video_id)
            if video is None:
                raise CorpusError(f"{self.name}: query {query.qid!r} names unknown video "
                                  f"{query.video_id!r}")
            for start, end in query.windows:
                if end > video.duration + WINDOW_END_TOLERANCE_S:
                    raise CorpusError(
                        f"{self.name}: query {query.qid!r}: window [{start}, {end}] ends after "
                        f"video {video.video_id!r} ({video.duration} s)"
                    )

    def queries_by_video(self) -> dict[str, list[Query]]:
        """Group queries by video id, in corpus order."""
        groups: dict[str, list[Query]] = {}
        for query in self.queries:
            groups.setdefault(query.video_id, []).append(query)
        return groups

    def subset(self, video_ids: Iterable[str]) -> Corpus:
        """A corpus with only these videos and their queries."""
        keep = set(video_ids)
        videos = {vid: v for vid, v in self.videos.items() if vid in keep}
        queries = [q for q in self.queries if q.video_id in keep]
        return Corpus(videos=videos, queries=queries, name=self.name)

    def with_features(self, sources: dict[str, tuple[str, float | None]]) -> Corpus:
        """A copy whose videos point at their features: ``video_id -> (source, rate)``."""
        videos = {
            vid: replace(v, feature_source=sources[vid][0], feature_rate=sources[vid][1])
            if vid in sources else v
            for vid, v in self.videos.items()
        }
        return Corpus(videos=videos, queries=list(self.queries), name=self.name)
