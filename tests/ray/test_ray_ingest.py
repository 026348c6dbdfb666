"""``ingest --ray`` on the session's local Ray cluster: the corpus equals the single-process
one; an encoder actor killed mid-run is restarted and the corpus is still equal; a driver killed
mid-run (SIGKILL) leaves a corpus that ``--resume`` completes to the same."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from moment_search.cli.app import main

from moment_search.failpoints import CRASH_AT, CRASH_TRACE
from moment_search.ingest.pipeline import IngestConfig, IngestProgress
from moment_search.ingest.ray_ingest import RayIngestConfig, ingest_videos_ray

from ..ingest.conftest import copy_video
from .killing import kill_named_actor

ROOT = Path(__file__).resolve().parents[2]


def ingest_argv(inputs, out: Path, clip: Path, *extra: str) -> list[str]:
    return ["ingest", *map(str, inputs), "--out", str(out), "--encoder-path", str(clip),
            "--device", "cpu", "--batch", "4", *extra]


def assert_same_corpus(expected: Path, actual: Path) -> None:
    """Same manifest rows (in any order) and features within 1e-5."""
    def rows(corpus):
        lines = (corpus / "videos.jsonl").read_text().splitlines()
        return {row["video_id"]: row for row in map(json.loads, lines)}

    assert rows(actual) == rows(expected)
    for video_id in rows(expected):
        a = np.load(expected / "features" / f"{video_id}.npy")
        b = np.load(actual / "features" / f"{video_id}.npy")
        assert a.shape == b.shape and a.dtype == b.dtype == np.float32
        np.testing.assert_allclose(b, a, atol=1e-5, rtol=0)


@pytest.fixture(scope="module")
def four_videos(tmp_path_factory, real_videos) -> Path:
    """The two real videos, each twice under other names (4 videos, 68 frames at 1/s)."""
    folder = tmp_path_factory.mktemp("videos")
    for i, source in enumerate(real_videos * 2):
        copy_video(source, folder / f"clip{i}-{source.name}")
    return folder


@pytest.fixture(scope="module")
def single_process_corpus(tmp_path_factory, four_videos, tiny_clip_dir) -> Path:
    out = tmp_path_factory.mktemp("single") / "corpus"
    assert main(ingest_argv([four_videos], out, tiny_clip_dir)) == 0
    return out


def test_ray_ingest_equals_the_single_process_corpus(tmp_path, ray_address, four_videos,
                                                     tiny_clip_dir, single_process_corpus,
                                                     capsys):
    out = tmp_path / "corpus"
    assert main(ingest_argv([four_videos], out, tiny_clip_dir, "--ray", ray_address)) == 0
    assert "4 video(s) ingested, 0 already done, 0 failed" in capsys.readouterr().out
    assert_same_corpus(single_process_corpus, out)
    assert not list(out.glob("**/.*.tmp"))


class KillAfterFirstVideo(IngestProgress):
    """Kills an encoder actor (ray.kill, restart allowed) when the first video is written."""

    def __init__(self):
        self.killed = None

    def finish_video(self, outcome) -> None:
        if self.killed is None:
            self.killed = kill_named_actor("moment-search-encoder-")


def test_killed_encoder_actor_is_restarted_and_the_corpus_complete(
        tmp_path, ray_address, four_videos, tiny_clip_dir, single_process_corpus):
    out = tmp_path / "corpus"
    progress = KillAfterFirstVideo()
    config = IngestConfig(encoder_path=tiny_clip_dir, device="cpu", batch=4)
    report = ingest_videos_ray([four_videos], out, config, RayIngestConfig(ray_address),
                               progress)
    assert progress.killed is not None  # an actor was alive mid-run, and was killed
    assert report.count("done") == 4 and not report.failed
    assert_same_corpus(single_process_corpus, out)


def test_killed_driver_resumes_to_the_same_corpus(tmp_path, ray_address, four_videos,
                                                  tiny_clip_dir, single_process_corpus):
    out, trace = tmp_path / "corpus", tmp_path / "trace.txt"
    argv = ingest_argv([four_videos], out, tiny_clip_dir, "--ray", ray_address)
    # the driver (a child process) kills itself with SIGKILL once the first video's manifest
    # row is written: the other videos are in flight on the cluster
    env = {**os.environ, CRASH_AT: "4", CRASH_TRACE: str(trace)}
    code = "import sys; from moment_search.cli.app import main; sys.exit(main(sys.argv[1:]))"
    killed = subprocess.run([sys.executable, "-c", code, *argv], env=env, cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert trace.read_text().splitlines()[-1] == "4\trenamed videos.jsonl"
    assert len((out / "videos.jsonl").read_text().splitlines()) == 1
    assert main(argv) == 2  # without --resume the corpus is refused
    assert main([*argv, "--resume"]) == 0
    assert_same_corpus(single_process_corpus, out)


@pytest.mark.parametrize("encoder_options, message", [
    # raised by the encoder actor's check of its own output, inside a decoding task
    (["--encoder", "tests.ray.bad_encoder:encode"],
     "returned an array of shape (5, 4) for 4 frames"),
    # raised while the actors load the encoder
    (["--encoder", "tests.ray.bad_encoder:encode", "--encoder-path", "weights"],
     "--encoder-path is for named encoders"),
])
def test_encoder_errors_reach_the_user_in_one_line(tmp_path, ray_address, real_videos,
                                                   encoder_options, message, capsys):
    out = tmp_path / "corpus"
    argv = ["ingest", str(real_videos[0]), "--out", str(out), "--device", "cpu", "--batch",
            "4", "--ray", ray_address, *encoder_options]
    assert main(argv) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert err.startswith("error:") and message in err and "Traceback" not in err
    assert not (out / "videos.jsonl").exists()


def test_a_pool_the_cluster_cannot_hold_is_refused_before_anything_is_written(
        tmp_path, ray_address, real_videos, tiny_clip_dir, capsys):
    out = tmp_path / "corpus"
    argv = ingest_argv(real_videos, out, tiny_clip_dir, "--ray", ray_address,
                       "--ray-workers", "2")
    assert main(argv) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert ("error: --ray-workers 2: the cluster has 2 CPU(s), 1 per encoder actor and 1 kept "
            "for decoding; expected at most 1") in err
    assert not out.exists()
