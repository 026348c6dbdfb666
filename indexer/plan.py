"""The corpus a build or an add works on, checked and fingerprinted before anything is written.

Every video's features are read once up front: each must be a readable (T, D) array of the
model's width whose T agrees with ``duration x feature_rate`` (see ``check_length``). A bad file
stops the command before the index changes. The plan (video ids, durations, rates, feature
checksums, and the settings that shape the index) is the build's identity: it is written to
``plan.json`` and its digest to the catalog when a build starts, and a resume must present the
same one, or it is refused with what differs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic import atomic_write_text
from ..data.corpus import Video
from ..data.features import FeatureError, FeatureStore, check_length
from .progress import Progress

PLAN_FILE = "plan.json"


def feature_checksum(features: np.ndarray) -> str:
    """sha1 of a video's feature array bytes (detects a changed feature file)."""
    return hashlib.sha1(np.ascontiguousarray(features).tobytes()).hexdigest()


def load_checked(store: FeatureStore, video: Video, width: int) -> np.ndarray:
    """One video's features, checked against the model's width and the video's duration.

    Raises:
        FeatureError: unreadable, wrong width, or a row count that disagrees with the duration.
    """
    features = store.load(video.video_id)
    source = store.source(video.video_id)
    if features.shape[1] != width:
        raise FeatureError(f"video {video.video_id!r} ({source}): features are "
                           f"{features.shape[1]} wide, the model expects {width}")
    check_length(video.video_id, source, len(features), video.duration, video.feature_rate)
    return features


@dataclass(frozen=True)
class PlannedVideo:
    """A checked video: its features' checksum and row count."""

    video: Video
    checksum: str
    n_rows: int

    def key(self) -> list:
        v = self.video
        return [v.video_id, round(v.duration, 6), v.feature_rate, self.checksum, self.n_rows]


@dataclass
class CorpusPlan:
    """The checked videos (sorted by id) and the settings that shape the index."""

    videos: list[PlannedVideo]
    settings: dict

    def to_json(self) -> dict:
        return {"settings": self.settings, "videos": [p.key() for p in self.videos]}

    def digest(self) -> str:
        """sha256 of the plan's canonical JSON."""
        text = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


def _width_problems(videos: list[Video], store: FeatureStore, width: int) -> str:
    """A summary of every wrong-width file (so a whole corpus of the wrong kind says so once)."""
    wrong = []
    for video in videos:
        shape = store.load(video.video_id).shape
        if shape[1] != width:
            wrong.append(f"{store.source(video.video_id)} ({shape[1]} wide)")
    return (f"{len(wrong)} of {len(videos)} videos have features of the wrong width for the "
            f"model, which expects {width}: " + ", ".join(wrong[:3])
            + (", ..." if len(wrong) > 3 else ""))


def plan_videos(videos: list[Video], store: FeatureStore, width: int, settings: dict,
                progress: Progress) -> CorpusPlan:
    """Check every video's features (see the module doc) and fingerprint them.

    Raises:
        FeatureError: the first bad video, named; a wrong width is summed up over the corpus.
    """
    progress.phase("checking features", len(videos), "videos")
    planned = []
    for video in sorted(videos, key=lambda v: v.video_id):
        try:
            features = load_checked(store, video, width)
        except FeatureError as e:
            if "wide, the model expects" in str(e):
                raise FeatureError(_width_problems(videos, store, width)) from e
            raise
        planned.append(PlannedVideo(video, feature_checksum(features), len(features)))
        progress.advance(1)
    return CorpusPlan(planned, settings)


def write_plan(index_dir: Path, plan: CorpusPlan) -> None:
    """Write ``plan.json`` atomically."""
    atomic_write_text(Path(index_dir) / PLAN_FILE, json.dumps(plan.to_json()))


def read_plan(index_dir: Path) -> dict | None:
    """The recorded plan, or None when there is none (or it cannot be read)."""
    try:
        return json.loads((Path(index_dir) / PLAN_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _names(ids: list[str]) -> str:
    return ", ".join(ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")


def plan_differences(old: dict | None, new: CorpusPlan) -> list[str]:
    """What differs between a recorded plan and a new one, in words."""
    if old is None:
        return ["the interrupted build recorded no plan"]
    found = []
    new_json = new.to_json()
    for key in sorted(set(old["settings"]) | set(new_json["settings"])):
        was, now = old["settings"].get(key), new_json["settings"].get(key)
        if was != now:
            found.append(f"setting {key}: {was!r} then, {now!r} now")
    before = {row[0]: row for row in old["videos"]}
    after = {row[0]: row for row in new_json["videos"]}
    for what, ids in (("dropped", sorted(set(before) - set(after))),
                      ("new", sorted(set(after) - set(before))),
                      ("changed (duration, rate or features)",
                       sorted(v for v in set(before) & set(after) if before[v] != after[v]))):
        if ids:
            found.append(f"{len(ids)} video(s) {what}: {_names(ids)}")
    return found
