"""``moment-search ingest`` end to end: real videos -> corpus -> index build -> query, with a
tiny random CLIP (the real weights' code path) and a tiny FVMR; damaged files; resume after a
real kill."""

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

from .conftest import copy_video, truncated_copy

ROOT = Path(__file__).resolve().parents[2]


def ingest_argv(inputs, out: Path, clip: Path, *extra: str) -> list[str]:
    return ["ingest", *map(str, inputs), "--out", str(out), "--encoder-path", str(clip),
            "--device", "cpu", "--batch", "8", *extra]


def squashed(text: str) -> str:
    """``text`` without whitespace (rich wraps long lines, even inside paths)."""
    return "".join(text.split())


def manifest(corpus: Path) -> dict[str, dict]:
    lines = (corpus / "videos.jsonl").read_text().splitlines()
    return {row["video_id"]: row for row in map(json.loads, lines)}


def test_ingest_then_index_build_and_query(tmp_path, real_videos, tiny_clip_dir,
                                           tiny_model_dir, capsys):
    corpus = tmp_path / "corpus"
    assert main(ingest_argv(real_videos, corpus, tiny_clip_dir)) == 0
    rows = manifest(corpus)
    assert set(rows) == {"v_GGSY1Qvo990", "v_ZNVhz7ctTq0"}
    for path in real_videos:
        row = rows[path.stem]
        # the path as ingest resolved it: however ../shared is mounted (a symlink), same file
        assert Path(row["video_path"]).is_absolute() and Path(row["video_path"]).samefile(path)
        assert row["feature_rate"] == 1.0 and row["encoder"] == "clip-vit-b32"
        features = np.load(corpus / "features" / f"{path.stem}.npy")
        assert features.dtype == np.float32 and features.shape == (row["n_features"], 8)
        np.testing.assert_allclose(np.linalg.norm(features, axis=1), 1.0, atol=1e-5)
    assert rows["v_GGSY1Qvo990"]["n_features"] == 19
    assert "2 video(s) ingested" in capsys.readouterr().out

    index = tmp_path / "index"
    assert main(["index", "build", str(corpus), "--out", str(index), "--model",
                 str(tiny_model_dir), "--device", "cpu"]) == 0
    capsys.readouterr()
    assert main(["query", "a person rides a bike", "--index", str(index), "--json"]) == 0
    moments = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert moments and {m["video_id"] for m in moments} <= set(rows)
    for m in moments:
        assert 0 <= m["start_s"] < m["end_s"] <= rows[m["video_id"]]["duration"] + 1


def test_bad_files_are_reported_and_the_good_ones_done(tmp_path, real_videos, tiny_clip_dir,
                                                       capsys):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    copy_video(real_videos[1], inputs / "good.mp4")
    truncated_copy(real_videos[0], inputs / "cut.mp4")
    (inputs / "notes.mp4").write_text("shopping list: milk, eggs\n" * 40)
    (inputs / "empty.mkv").write_bytes(b"")
    (inputs / "readme.txt").write_text("not taken from a folder: not a video suffix")
    corpus = tmp_path / "corpus"
    assert main(ingest_argv([inputs], corpus, tiny_clip_dir)) == 1
    assert set(manifest(corpus)) == {"good"}
    assert sorted(p.name for p in (corpus / "features").iterdir()) == ["good.npy"]
    err = squashed(capsys.readouterr().err)
    assert squashed("cut.mp4: the video stream ends at 9.02 s") in err and "truncated" in err
    assert squashed("notes.mp4: not a readable video file") in err
    assert squashed("empty.mkv: the file is empty") in err


def test_id_clash_and_existing_corpus_are_refused(tmp_path, real_videos, tiny_clip_dir, capsys):
    other = tmp_path / "other"
    other.mkdir()
    clash = copy_video(real_videos[1], other / f"{real_videos[0].stem}.mkv")
    corpus = tmp_path / "corpus"
    assert main(ingest_argv([*real_videos, clash], corpus, tiny_clip_dir)) == 2
    err = squashed(capsys.readouterr().err)
    assert "claimedbytwofiles" in err and squashed(str(clash)) in err and not corpus.exists()

    assert main(ingest_argv(real_videos[:1], corpus, tiny_clip_dir)) == 0
    assert main(ingest_argv(real_videos[:1], corpus, tiny_clip_dir)) == 2
    assert "alreadyholdsacorpus" in squashed(capsys.readouterr().err)
    assert main(ingest_argv(real_videos[:1], corpus, tiny_clip_dir, "--resume", "--fps",
                            "2")) == 2
    assert "feature_rate1.0" in squashed(capsys.readouterr().err)


def run_killed(argv: list[str], crash_at: int, trace: Path) -> subprocess.CompletedProcess:
    """Run the CLI in a child process that SIGKILLs itself at the ``crash_at``-th write step."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", CRASH_AT: str(crash_at),
           CRASH_TRACE: str(trace)}
    code = "import sys; from moment_search.cli.app import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *argv], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("crash_at, last_point, kept", [
    (3, "written videos.jsonl", []),  # first video's features stored, manifest not yet
    (6, "renamed v_ZNVhz7ctTq0.npy", ["v_GGSY1Qvo990"]),  # second video's features stored
])
def test_resume_after_a_kill_ends_as_an_uninterrupted_run(tmp_path, real_videos, tiny_clip_dir,
                                                          crash_at, last_point, kept, capsys):
    reference = tmp_path / "reference"
    assert main(ingest_argv(real_videos, reference, tiny_clip_dir)) == 0
    corpus, trace = tmp_path / "corpus", tmp_path / "trace.txt"
    killed = run_killed(ingest_argv(real_videos, corpus, tiny_clip_dir), crash_at, trace)
    assert killed.returncode == -9, killed.stderr
    assert trace.read_text().splitlines()[-1] == f"{crash_at}\t{last_point}"
    finished = sorted(manifest(corpus)) if (corpus / "videos.jsonl").exists() else []
    assert finished == kept
    capsys.readouterr()

    assert main(ingest_argv(real_videos, corpus, tiny_clip_dir, "--resume")) == 0
    out = capsys.readouterr().out
    assert f"{2 - len(kept)} video(s) ingested, {len(kept)} already done" in out
    assert manifest(corpus) == manifest(reference)
    for path in real_videos:
        name = f"{path.stem}.npy"
        # the same frames, encoded in other batches (the killed run's batches held frames of
        # both videos): equal up to float rounding in the encoder's matrix products
        np.testing.assert_allclose(np.load(corpus / "features" / name),
                                   np.load(reference / "features" / name), rtol=0, atol=1e-5)
    assert not list(corpus.glob(".*.tmp")) and not list((corpus / "features").glob(".*.tmp"))
