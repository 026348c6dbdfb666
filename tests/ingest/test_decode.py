"""Decoding by timestamp: the sampled rows against a decode of every frame (the slow path), on
the two real videos and a synthetic variable-frame-rate one; damaged files fail clearly."""

from __future__ import annotations

import bisect
import math
from pathlib import Path

import numpy as np
import pytest

from moment_search.ingest.decode import VideoDecodeError, probe, sample_frames

from .conftest import VFR_TIMES, truncated_copy, write_audio_only, write_vfr_video

# Container durations of the two real videos (seconds), as ffprobe reports them.
REAL_DURATIONS = {"v_GGSY1Qvo990": 18.158005, "v_ZNVhz7ctTq0": 14.048073}


def all_frames(path: Path) -> tuple[list[float], list[np.ndarray]]:
    """Every frame of the video stream with its presentation time: the slow path."""
    import av

    with av.open(str(path)) as container:
        frames = list(container.decode(container.streams.video[0]))
        return [float(f.time) for f in frames], [f.to_ndarray(format="rgb24") for f in frames]


@pytest.mark.parametrize("rate", [0.5, 1.0, 2.0])
def test_real_videos_rows_are_the_frames_on_screen(real_videos, rate):
    for path in real_videos:
        times, images = all_frames(path)
        rows = list(sample_frames(path, rate))
        duration = REAL_DURATIONS[path.stem]
        assert len(rows) == math.ceil(duration * rate)
        assert [r.row for r in rows] == list(range(len(rows)))
        for r in rows:
            assert r.time == pytest.approx(r.row / rate)
            shown = bisect.bisect_right(times, r.time + 1e-9) - 1  # last frame with pts <= t
            assert r.frame_time == pytest.approx(times[shown], abs=1e-9)
            assert np.array_equal(r.rgb, images[shown])


def test_real_video_row_counts_and_durations(real_videos):
    counts = {p.stem: [len(list(sample_frames(p, r))) for r in (0.5, 1.0, 2.0)]
              for p in real_videos}
    assert counts == {"v_GGSY1Qvo990": [10, 19, 37], "v_ZNVhz7ctTq0": [8, 15, 29]}
    for path in real_videos:
        info = probe(path)
        assert info.duration == pytest.approx(REAL_DURATIONS[path.stem], abs=1e-6)
        assert (info.width, info.height, info.codec) in ((320, 240, "h264"), (480, 360, "h264"))


def test_real_video_at_its_own_30_fps_keeps_every_frame(real_videos):
    path = real_videos[1]  # a constant 30 fps file: rows at 30/s are its frames, in order
    times, _ = all_frames(path)
    rows = list(sample_frames(path, 30.0))
    assert [r.frame_time for r in rows[: len(times)]] == pytest.approx(times)


@pytest.mark.parametrize("rate", [0.5, 1.0, 2.0, 10.0])
def test_variable_frame_rate(tmp_path, rate):
    path = write_vfr_video(tmp_path / "vfr.mkv")
    rows = list(sample_frames(path, rate))
    assert len(rows) == math.ceil(probe(path).duration * rate)
    for r in rows:
        expected = bisect.bisect_right(VFR_TIMES, r.row / rate + 1e-9) - 1
        assert r.frame_time == pytest.approx(VFR_TIMES[expected])
        painted = round((float(r.rgb.mean()) - 10) / 20)  # the frame's index, from its grey
        assert painted == expected


def test_truncated_file_is_refused_naming_it(real_videos, tmp_path):
    path = truncated_copy(real_videos[0], tmp_path / "cut.mp4")
    with pytest.raises(VideoDecodeError, match=r"cut\.mp4.*(truncated|decoded)"):
        list(sample_frames(path, 1.0))


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_text("not a video, just text\n" * 50), "not a readable video"),
    (lambda p: p.write_bytes(b""), "empty"),
    (lambda p: write_audio_only(p), "no video stream"),
])
def test_files_that_are_not_videos(tmp_path, make, message):
    path = tmp_path / "bad.mp4"
    make(path)
    with pytest.raises(VideoDecodeError, match=rf"bad\.mp4.*{message}"):
        list(sample_frames(path, 1.0))


def test_missing_file_and_bad_rate(tmp_path, real_videos):
    with pytest.raises(VideoDecodeError, match="no such file"):
        probe(tmp_path / "absent.mp4")
    with pytest.raises(ValueError, match="> 0"):
        list(sample_frames(real_videos[0], 0.0))
