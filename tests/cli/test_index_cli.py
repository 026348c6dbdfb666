"""``moment-search index ...`` as a user runs it: exit codes, messages, two writers at once."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from moment_search.cli.app import main
from moment_search.indexer.build import BuildConfig, build_index
from moment_search.indexer.lock import writer_lock
from moment_search.indexer.verify import verify_index

from ..conftest import write_tiny_corpus


@pytest.fixture()
def index(tmp_path, session_corpus, tiny_model_dir):
    out = tmp_path / "idx"
    build_index(session_corpus, out, tiny_model_dir, BuildConfig(shard_videos=4, device="cpu"))
    return out


def manifest_corpus(root: Path, source: Path, video_ids: list[str]) -> Path:
    """A user's corpus: features/ and videos.jsonl for some videos of ``source``."""
    (root / "features").mkdir(parents=True)
    lines = []
    for video_id in video_ids:
        features = np.load(source / "features" / f"{video_id}.npy")
        np.save(root / "features" / f"{video_id}.npy", features)
        lines.append(json.dumps({"video_id": video_id, "duration": float(len(features)),
                                 "feature_rate": 1.0}))
    (root / "videos.jsonl").write_text("\n".join(lines) + "\n")
    return root


def test_info_and_verify_exit_codes(index, capsys):
    assert main(["index", "info", "--index", str(index)]) == 0
    assert main(["index", "verify", "--index", str(index), "--sample", "2"]) == 0
    assert "checksums match" in " ".join(capsys.readouterr().out.split())
    (index / "meta" / "shard-00001.parquet").write_bytes(b"damaged")
    assert main(["index", "info", "--index", str(index)]) == 1
    assert "problem:" in capsys.readouterr().out
    assert main(["index", "verify", "--index", str(index)]) == 1


def test_remove_busy_and_repair_messages(index, capsys):
    assert main(["index", "remove", "vid001", "vid001", "--index", str(index)]) == 0
    assert "removed 1 video(s), 36 proposals" in capsys.readouterr().out
    with writer_lock(index, "index add"):
        assert main(["index", "remove", "vid002", "--index", str(index)]) == 2
    assert f"being changed by pid {os.getpid()}" in " ".join(capsys.readouterr().err.split())
    (index / "index-00009.faiss").write_bytes(b"left over")
    assert main(["index", "repair", "--index", str(index)]) == 0
    assert "deleted index-00009.faiss" in " ".join(capsys.readouterr().out.split())


def test_default_index_folder(tmp_path, session_corpus, tiny_model_dir, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    build_index(session_corpus, tmp_path / "moment-index", tiny_model_dir,
                BuildConfig(shard_videos=4, device="cpu"))
    for command in (["index", "info"], ["index", "verify", "--sample", "1"]):
        assert main(command) == 0, command
    assert main(["index", "remove", "vid000"]) == 0


def test_two_adds_at_once_both_land(tmp_path, tiny_model_dir):
    source = write_tiny_corpus(tmp_path / "source", n_videos=9)
    base = manifest_corpus(tmp_path / "base", source, [f"vid00{i}" for i in range(5)])
    first = manifest_corpus(tmp_path / "first", source, ["vid005", "vid006"])
    second = manifest_corpus(tmp_path / "second", source, ["vid007", "vid008"])
    index = tmp_path / "idx"
    build_index(base, index, tiny_model_dir, BuildConfig(shard_videos=2, device="cpu"))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    script = Path(sys.executable).parent / "moment-search"  # the installed entry point
    command = [str(script), "index", "add", "--index", str(index), "--wait", "120"]
    runs = [subprocess.Popen(command[:3] + [str(corpus)] + command[3:], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for corpus in (first, second)]
    for run in runs:
        _, err = run.communicate(timeout=300)
        assert run.returncode == 0, err
    assert verify_index(index) == []
    from moment_search.indexer.integrity import index_summary

    assert index_summary(index)["videos_indexed"] == 9
    shutil.rmtree(index)
