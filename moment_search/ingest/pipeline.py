"""``ingest_videos``: video files -> a corpus folder that ``index build`` / ``index add`` take.

Each video is decoded at the requested rate (:mod:`.decode`), its frames go through the encoder
in batches (:mod:`.encoders`), and its features and manifest row are written (:mod:`.corpus`).
A file that cannot be decoded is reported and skipped; the others are still done.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError, InputError
from .corpus import (
    MANIFEST_NAME,
    CorpusWriteError,
    CorpusWriter,
    check_output,
    read_manifest_rows,
)
from .decode import VIDEO_SUFFIXES, VideoDecodeError, probe, sample_frames
from .encoders import CLIP_VIT_B32, EncoderIdentity, FrameEncoder, load_encoder


@dataclass
class IngestConfig:
    """Settings of an ingest."""

    encoder: str = CLIP_VIT_B32  # a registered name or "module:callable"
    encoder_path: Path | None = None  # weights folder of a named encoder (None: its default)
    fps: float = 1.0  # rows per second: the shipped models expect 1
    batch: int = 32  # frames per encoder call
    device: str = "auto"  # auto | cpu | cuda[:N], resolved once
    resume: bool = False  # continue an existing corpus, skipping its finished videos


@dataclass
class VideoOutcome:
    """What happened to one input file: status ``done``, ``skipped`` (finished before) or
    ``failed`` (``error`` says why)."""

    video_id: str
    path: Path
    status: str
    n_rows: int = 0
    error: str | None = None


@dataclass
class IngestReport:
    """The outcome of an ingest, with its throughput."""

    corpus: Path
    outcomes: list[VideoOutcome] = field(default_factory=list)
    frames: int = 0  # rows encoded
    decode_seconds: float = 0.0  # decoding and sampling, wall clock
    encode_seconds: float = 0.0  # the encoder's calls, wall clock

    @property
    def failed(self) -> list[VideoOutcome]:
        """The files that could not be ingested."""
        return [o for o in self.outcomes if o.status == "failed"]

    def count(self, status: str) -> int:
        """How many files ended with ``status``."""
        return sum(o.status == status for o in self.outcomes)


class IngestProgress:
    """Hooks a caller overrides to show progress; the defaults do nothing."""

    def start_video(self, video_id: str, n_rows: int) -> None:
        """A video starts; ``n_rows`` frames will be encoded."""

    def advance(self, n_frames: int) -> None:
        """``n_frames`` more frames were encoded."""

    def finish_video(self, outcome: VideoOutcome) -> None:
        """A video ended (done, skipped or failed)."""


def find_videos(inputs: list[str | Path]) -> list[Path]:
    """The files to ingest: files as given, folders searched (recursively) for video suffixes.

    Raises:
        FileNotFoundError: an input that does not exist.
        ValueError: nothing to ingest (no inputs, or folders without videos).
    """
    found: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found.extend(sorted(p for p in item.rglob("*")
                                if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES))
        elif item.exists():
            found.append(item)
        else:
            raise FileNotFoundError(f"{item}: no such file or folder")
    unique = list(dict.fromkeys(p.resolve() for p in found))
    if not unique:
        raise InputError(f"no video files ({', '.join(VIDEO_SUFFIXES)}) in "
                         f"{', '.join(map(str, inputs)) or 'no inputs'}")
    return unique


def assign_ids(paths: list[Path]) -> dict[str, Path]:
    """Video id = file stem.

    Raises:
        ValueError: two files with the same stem (naming both).
    """
    ids: dict[str, Path] = {}
    for path in paths:
        if path.stem in ids:
            raise InputError(f"video id {path.stem!r} is claimed by two files: {ids[path.stem]} "
                             f"and {path}; rename one (the id is the file name without suffix)")
        ids[path.stem] = path
    return ids


def check_resume(writer: CorpusWriter, videos: dict[str, Path], config: IngestConfig,
                 encoder_name: str, encoder: FrameEncoder | None = None) -> None:
    """Refuse to mix: an id of the corpus from another file, rate or encoder, or a corpus
    ingested with another encoder, other weights or another width than ``encoder``.

    Raises:
        ValueError: naming the video, what the corpus holds and what was asked.
    """
    if encoder is not None:
        check_same_encoder(writer, encoder.identity)
    for video_id, path in videos.items():
        row = writer.rows.get(video_id)
        if row is None:
            continue
        if row.get("video_path") not in (None, str(path)):
            raise InputError(f"video id {video_id!r} is claimed by two files: "
                             f"{row['video_path']} (already in {writer.root}) and {path}")
        held = (row.get("feature_rate"), row.get("encoder"))
        if held != (config.fps, encoder_name):
            raise DataError(f"{writer.root}: video {video_id!r} was ingested with feature_rate "
                            f"{held[0]} and encoder {held[1]!r}; this run asks {config.fps} and "
                            f"{encoder_name!r}; one corpus holds one kind of features")


def corpus_encoders(writer: CorpusWriter) -> dict[EncoderIdentity, list[str]]:
    """The encoders the corpus's finished videos were ingested with, each with its video ids.
    A row written before identities were recorded gives its name and its feature file's width.
    """
    found: dict[EncoderIdentity, list[str]] = {}
    for video_id, row in writer.rows.items():
        dim = row.get("feature_dim")
        if dim is None and writer.feature_path(video_id).is_file():
            dim = np.load(writer.feature_path(video_id), mmap_mode="r").shape[-1]
        identity = EncoderIdentity(str(row.get("encoder")), row.get("encoder_weights"),
                                   None if dim is None else int(dim))
        found.setdefault(identity, []).append(video_id)
    return found


def check_same_encoder(writer: CorpusWriter, identity: EncoderIdentity) -> None:
    """One corpus holds one kind of features: refuse an encoder whose name, weights or width
    differs from the one its videos were ingested with.

    Raises:
        CorpusWriteError: naming the corpus, its encoder (with a few of its videos) and this
            run's.
    """
    for held, video_ids in corpus_encoders(writer).items():
        if held.differs_from(identity):
            raise CorpusWriteError(
                f"{writer.root}: {len(video_ids)} video(s) ({', '.join(video_ids[:3])}) were "
                f"ingested with encoder {held.describe()}; this run's encoder is "
                f"{identity.describe()}; one corpus holds one kind of features: resume with "
                f"the same encoder and weights, or ingest into another --out")


def ingest_videos(inputs: list[str | Path], out: str | Path, config: IngestConfig | None = None,
                  progress: IngestProgress | None = None,
                  encoder: FrameEncoder | None = None) -> IngestReport:
    """Decode, encode and write every input video into the corpus folder ``out``.

    Args:
        inputs: video files and/or folders of videos.
        out: the corpus folder (``features/`` + ``videos.jsonl``).
        config: settings (default :class:`IngestConfig`).
        progress: hooks for a progress display.
        encoder: an encoder already loaded (default: loaded from ``config``).

    Returns:
        The report: one outcome per file; the files that failed are in ``report.failed``.

    Raises:
        FileNotFoundError, ValueError: bad inputs, an id clash, a corpus that cannot take this
            run, an unknown encoder; nothing is written then.
        EncoderWeightsMissing: the encoder's weights are not on this machine.
    """
    config = config or IngestConfig()
    check_config(config)
    videos = assign_ids(find_videos(inputs))
    progress = progress or IngestProgress()
    check_output(out, config.resume)
    if encoder is None and work_left(out, videos):  # before the folder is touched
        encoder = load_encoder(config.encoder, config.encoder_path, config.device)
    with CorpusWriter(out, resume=config.resume) as writer:
        check_resume(writer, videos, config, encoder.name if encoder else config.encoder,
                     encoder)
        report = IngestReport(Path(out))
        for video_id, path in videos.items():
            outcome = _ingest_one(writer, video_id, path, encoder, config, report, progress)
            report.outcomes.append(outcome)
            progress.finish_video(outcome)
    return report


def check_config(config: IngestConfig) -> None:
    """Refuse a rate or batch size that cannot work.

    Raises:
        ValueError: naming both values.
    """
    if not config.fps > 0 or config.batch < 1:
        raise InputError(f"--fps must be > 0 and --batch >= 1, got {config.fps} and "
                         f"{config.batch}")


def work_left(out: str | Path, videos: dict[str, Path]) -> bool:
    """Whether any video still needs encoding (read-only look at the corpus)."""
    rows = read_manifest_rows(Path(out) / MANIFEST_NAME)
    return any(video_id not in rows for video_id in videos)


def _ingest_one(writer: CorpusWriter, video_id: str, path: Path, encoder: FrameEncoder | None,
                config: IngestConfig, report: IngestReport,
                progress: IngestProgress) -> VideoOutcome:
    skipped = skipped_outcome(writer, video_id, path)
    if skipped is not None:
        return skipped
    try:
        info = probe(path)
        progress.start_video(video_id, info.n_rows(config.fps))
        features = _encode_video(path, encoder, config, report, progress)
    except VideoDecodeError as e:
        return VideoOutcome(video_id, path, "failed", error=str(e))
    return write_video(writer, video_id, path, info.duration, features, encoder.identity,
                       config.fps)


def skipped_outcome(writer: CorpusWriter, video_id: str, path: Path) -> VideoOutcome | None:
    """The ``skipped`` outcome of a video the corpus already finished, else None."""
    finished = writer.finished(video_id)
    if finished is None:
        return None
    return VideoOutcome(video_id, path, "skipped", int(finished.get("n_features", 0)))


def write_video(writer: CorpusWriter, video_id: str, path: Path, duration: float,
                features: np.ndarray, identity: EncoderIdentity, fps: float) -> VideoOutcome:
    """Write one encoded video: its (T, D) ``features``, then its manifest row (corpus.py).

    Raises:
        CorpusWriteError: a plug-in whose width, first known here, differs from the corpus's.
    """
    if identity.dim is None:  # a plug-in's width is known from its output
        identity = EncoderIdentity(identity.name, identity.weights, int(features.shape[1]))
        check_same_encoder(writer, identity)
    row = {"duration": duration, "feature_rate": fps, "video_path": str(path),
           "encoder": identity.name, "encoder_weights": identity.weights,
           "feature_dim": identity.dim, "n_features": int(features.shape[0])}
    writer.write(video_id, features, row)
    return VideoOutcome(video_id, path, "done", int(features.shape[0]))


def _encode_video(path: Path, encoder: FrameEncoder, config: IngestConfig, report: IngestReport,
                  progress: IngestProgress) -> np.ndarray:
    """(T, D) features of one video, T = ceil(duration * fps)."""
    chunks: list[np.ndarray] = []
    started = time.perf_counter()
    encode_before = report.encode_seconds
    for batch in frame_batches(path, config.fps, config.batch):
        chunks.append(_encode_batch(encoder, batch, report, progress))
    elapsed = time.perf_counter() - started
    report.decode_seconds += elapsed - (report.encode_seconds - encode_before)
    return np.concatenate(chunks)


def frame_batches(path: Path, fps: float, batch: int) -> Iterator[list[np.ndarray]]:
    """The sampled frames of one video in order, in lists of ``batch`` (the last may be
    shorter): the encoder's calls.

    Raises:
        VideoDecodeError: see :func:`.decode.sample_frames`.
    """
    frames: list[np.ndarray] = []
    for frame in sample_frames(path, fps):
        frames.append(frame.rgb)
        if len(frames) == batch:
            yield frames
            frames = []
    if frames:
        yield frames


def _encode_batch(encoder: FrameEncoder, batch: list[np.ndarray], report: IngestReport,
                  progress: IngestProgress) -> np.ndarray:
    started = time.perf_counter()
    features = encoder(batch)
    report.encode_seconds += time.perf_counter() - started
    report.frames += len(batch)
    progress.advance(len(batch))
    return features


__all__ = ["CorpusWriteError", "IngestConfig", "IngestProgress", "IngestReport", "VideoOutcome",
           "find_videos", "assign_ids", "ingest_videos"]
