"""Decode a video file with PyAV into frames sampled by timestamp at a fixed rate.

Row t of a video sampled at rate r (frames per second) is the frame on screen at t / r seconds:
the last frame whose presentation time is <= t / r (the first frame, for times before it). Times
count from the container's start, so this holds whatever the file's frame rate, constant or
variable. A video of duration d (the container's) gets ceil(d * r) rows; past the end of the
video stream (an audio track may run longer) the last frame stays on screen, as in a player.

The decoded stream is checked against the duration the file declares: a stream that stops more
than ``max(0.5 s, 1%)`` short is a truncated or damaged file and raises :class:`VideoDecodeError`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..errors import DataError, InputError

# File suffixes taken from a folder given as input (a file given by name is tried whatever it is).
VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".avi", ".mov")
# How far the decoded stream may stop short of the declared duration (seconds, fraction).
SHORTFALL_SECONDS = 0.5
SHORTFALL_FRACTION = 0.01


class VideoDecodeError(DataError):
    """A video file that cannot be read as a video: the message names the file and the reason."""


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about a video, before decoding.

    Attributes:
        path: the file.
        duration: seconds, from the container (else the video stream's packets).
        stream_end: seconds from the container's start at which the video stream should end.
        width, height: frame size in pixels.
        codec: the video codec's name.
    """

    path: Path
    duration: float
    stream_end: float
    width: int
    height: int
    codec: str

    def n_rows(self, rate: float) -> int:
        """Rows at ``rate`` frames per second: ceil(duration * rate), at least 1."""
        return max(1, math.ceil(self.duration * rate - 1e-9))


@dataclass(frozen=True)
class SampledFrame:
    """One row of a sampled video.

    Attributes:
        row: the row index t.
        time: t / rate, seconds.
        frame_time: presentation time of the frame shown (seconds from the container's start).
        rgb: (H, W, 3) uint8 array.
    """

    row: int
    time: float
    frame_time: float
    rgb: np.ndarray


def _import_av():
    try:
        import av
    except ImportError as e:  # pragma: no cover - av is a declared dependency
        raise ImportError("decoding videos needs PyAV: pip install av") from e
    return av


def open_container(path: str | Path):
    """Open ``path`` with PyAV and return ``(container, video_stream)``.

    Raises:
        VideoDecodeError: the file is missing, empty, not a media file, or has no video stream.
    """
    av = _import_av()
    path = Path(path)
    if not path.is_file():
        raise VideoDecodeError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise VideoDecodeError(f"{path}: the file is empty (0 bytes), expected a video")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError) as e:
        raise VideoDecodeError(f"{path}: not a readable video file ({e})") from e
    if not container.streams.video:
        kinds = ", ".join(s.type for s in container.streams) or "none"
        container.close()
        raise VideoDecodeError(f"{path}: the file has no video stream (streams: {kinds})")
    return container, container.streams.video[0]


def probe(path: str | Path) -> VideoInfo:
    """Read a video's duration and size without decoding its frames.

    Raises:
        VideoDecodeError: see :func:`open_container`; also a video of no known, positive length.
    """
    container, stream = open_container(path)
    try:
        return _video_info(Path(path), container, stream)
    finally:
        container.close()


def _start_offset(container) -> Fraction:
    """The container's start time (seconds): the zero of every row's time."""
    return Fraction(container.start_time or 0, 1_000_000)


def _video_info(path: Path, container, stream) -> VideoInfo:
    start = _start_offset(container)
    stream_end = None
    if stream.duration is not None and stream.time_base is not None:
        stream_start = stream.start_time or 0
        stream_end = float((stream_start + stream.duration) * stream.time_base - start)
    if container.duration is not None:
        duration = container.duration / 1_000_000
    else:
        duration = stream_end if stream_end is not None else _scan_packets(path, container, stream)
    if not duration or duration <= 0 or not math.isfinite(duration):
        raise VideoDecodeError(f"{path}: the file declares no positive duration ({duration})")
    return VideoInfo(path, float(duration), float(stream_end or duration), stream.width,
                     stream.height, stream.codec_context.name)


def _scan_packets(path: Path, container, stream) -> float:
    """The video stream's end from its packets (files whose header gives no duration)."""
    end, start = 0.0, _start_offset(container)
    for packet in container.demux(stream):
        if packet.pts is not None and packet.time_base is not None:
            end = max(end, float((packet.pts + (packet.duration or 0)) * packet.time_base - start))
    container.seek(0)
    return end


def sample_frames(path: str | Path, rate: float) -> Iterator[SampledFrame]:
    """Decode ``path`` and yield its rows at ``rate`` frames per second, in order.

    Yields ``VideoInfo.n_rows(rate)`` frames (see the module doc for which frame each row is).

    Raises:
        ValueError: ``rate`` is not positive.
        VideoDecodeError: the file cannot be opened or decoded, or its video stream stops short
            of the declared duration (a truncated file).
    """
    if not rate > 0:
        raise InputError(f"the sampling rate must be > 0 frames per second, got {rate}")
    av = _import_av()
    container, stream = open_container(path)
    try:
        info = _video_info(Path(path), container, stream)
        stream.thread_type = "AUTO"
        yield from _sample(info, container, stream, Fraction(rate).limit_denominator(1_000_000))
    except av.error.FFmpegError as e:
        raise VideoDecodeError(f"{path}: the video stream could not be decoded ({e})") from e
    finally:
        container.close()


def _sample(info: VideoInfo, container, stream, rate: Fraction) -> Iterator[SampledFrame]:
    n_rows, start = info.n_rows(float(rate)), _start_offset(container)
    row, shown, shown_time, rgb, frame_end = 0, None, None, None, None
    for frame in container.decode(stream):
        frame_time = _frame_time(frame, shown_time, stream) - start
        if shown is None:  # rows before the first frame show the first frame
            shown, shown_time = frame, frame_time
        while row < n_rows and Fraction(row) / rate < frame_time:
            rgb = shown.to_ndarray(format="rgb24") if rgb is None else rgb  # once per frame
            yield SampledFrame(row, float(Fraction(row) / rate), float(shown_time), rgb)
            row += 1
        if frame is not shown:
            shown, shown_time, rgb = frame, frame_time, None
        frame_end = frame_time + _frame_duration(frame, stream)
    if shown is None:
        raise VideoDecodeError(f"{info.path}: the video stream holds no decodable frame")
    _check_stream_end(info, float(frame_end))
    rgb = shown.to_ndarray(format="rgb24") if rgb is None else rgb
    while row < n_rows:  # past the last frame it stays on screen
        yield SampledFrame(row, float(Fraction(row) / rate), float(shown_time), rgb)
        row += 1


def _time_base(frame, stream) -> Fraction | None:
    return frame.time_base or stream.time_base


def _frame_time(frame, previous: Fraction | None, stream) -> Fraction:
    """Presentation time (seconds, exact); a frame without one follows the previous frame."""
    if frame.pts is not None and _time_base(frame, stream) is not None:
        return frame.pts * _time_base(frame, stream)
    if previous is None:
        return Fraction(0)
    return previous + _frame_duration(frame, stream)


def _frame_duration(frame, stream) -> Fraction:
    duration = getattr(frame, "duration", None)
    if duration and _time_base(frame, stream) is not None:
        return duration * _time_base(frame, stream)
    rate = stream.guessed_rate or stream.average_rate
    return Fraction(1) / Fraction(rate) if rate else Fraction(0)


def _check_stream_end(info: VideoInfo, decoded_end: float) -> None:
    allowed = max(SHORTFALL_SECONDS, SHORTFALL_FRACTION * info.stream_end)
    if info.stream_end - decoded_end > allowed:
        raise VideoDecodeError(
            f"{info.path}: the video stream ends at {decoded_end:.2f} s but the file declares "
            f"{info.stream_end:.2f} s: the file is truncated or damaged")
