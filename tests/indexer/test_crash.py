"""Crash safety: kill -9 (a real SIGKILL) at every crash point of build, add and remove, then
recover the documented way and check the index with verify and a query.

The loop is over the crash points an uninterrupted run passes (counted with a trace first), so
every step where a kill leaves a different state on disk is tried (moment_search/failpoints.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from moment_search.indexer.build import BuildConfig, build_index
from moment_search.indexer.catalog import Catalog
from moment_search.indexer.edit import add_videos
from moment_search.indexer.integrity import index_summary
from moment_search.indexer.repair import repair_index
from moment_search.indexer.verify import verify_index

from moment_search.search.searcher import Searcher

from ..conftest import write_tiny_corpus

ROOT = Path(__file__).resolve().parents[2]
CONFIG = {"shard_videos": 2, "device": "cpu"}
QUERY = "person does action number 3"


class Zygote:
    """The crash_zygote helper process: runs index commands in forked children."""

    def __init__(self, scratch: Path):
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        self.process = subprocess.Popen([sys.executable, "-m", "tests.indexer.crash_zygote"],
                                        cwd=ROOT, env=env, stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)
        self.scratch = scratch

    def run(self, op: str, args: dict, crash_at: int = 0, trace: Path | None = None) -> dict:
        command = {"op": op, "args": args, "crash_at": crash_at,
                   "trace": str(trace) if trace else None,
                   "error_file": str(self.scratch / "child-error.txt")}
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        reply = json.loads(self.process.stdout.readline())
        assert reply["status"] != "error", reply["error"]
        return reply

    def points(self, op: str, args: dict) -> list[str]:
        """The crash points an uninterrupted run passes."""
        trace = self.scratch / f"trace-{op}.txt"
        trace.unlink(missing_ok=True)
        assert self.run(op, args, trace=trace)["status"] == "ok"
        return [line.split("\t")[1].strip() for line in trace.read_text().splitlines()]

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)


@pytest.fixture(scope="module")
def zygote(tmp_path_factory):
    helper = Zygote(tmp_path_factory.mktemp("zygote"))
    yield helper
    helper.close()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_tiny_corpus(tmp_path_factory.mktemp("crash") / "corpus", n_videos=6)


def top_moments(index_dir: Path) -> list[tuple]:
    searcher = Searcher.open(index_dir, device="cpu")
    return [(m.video_id, m.start_s, m.score) for m in searcher.search(QUERY, k=5)]


def faiss_bytes(index_dir: Path) -> bytes:
    catalog = Catalog.open(index_dir / "catalog.sqlite")
    return (index_dir / catalog.info().index_params["file"]).read_bytes()


def test_killed_build_resumes_to_the_same_index(tmp_path, zygote, corpus, tiny_model_dir):
    reference = tmp_path / "reference"
    build_index(corpus, reference, tiny_model_dir, BuildConfig(**CONFIG))
    args = {"corpus": str(corpus), "model": str(tiny_model_dir), "config": CONFIG}
    points = zygote.points("build", {**args, "out": str(tmp_path / "traced")})
    assert "published" in points and len(points) >= 10
    for n in range(1, len(points) + 1):
        out = tmp_path / f"killed-{n}"
        assert zygote.run("build", {**args, "out": str(out)}, crash_at=n)["status"] == "killed"
        finished = "published" in points[:n]
        if not finished:  # the documented recovery: the same build with --resume
            build_index(corpus, out, tiny_model_dir, BuildConfig(**CONFIG), resume=True)
        else:
            repair_index(out)
        assert verify_index(out) == [], f"killed at {n}: {points[n - 1]}"
        assert faiss_bytes(out) == faiss_bytes(reference), f"killed at {points[n - 1]}"
        if n % 5 == 0:  # same bytes: same answers; a query now and then shows it
            assert top_moments(out) == top_moments(reference)
        shutil.rmtree(out)  # checked: free its disk (a failed iteration keeps its folder)


def test_killed_add_is_finished_or_repaired(tmp_path, zygote, corpus, tiny_model_dir):
    base = tmp_path / "base"
    build_index(corpus, base, tiny_model_dir, BuildConfig(**CONFIG, split="train"))
    full = tmp_path / "full"
    shutil.copytree(base, full)
    add_videos(corpus, full, BuildConfig(**CONFIG))
    args = {"corpus": str(corpus), "config": CONFIG}
    traced = tmp_path / "traced"
    shutil.copytree(base, traced)
    points = zygote.points("add", {**args, "index": str(traced)})
    assert "published" in points
    before, after = top_moments(base), top_moments(full)
    for n in range(1, len(points) + 1):
        index = tmp_path / f"killed-{n}"
        shutil.copytree(base, index)
        assert zygote.run("add", {**args, "index": str(index)}, crash_at=n)["status"] == "killed"
        assert top_moments(index) in (before, after)  # a query sees the old or the new state
        if n % 2:
            add_videos(corpus, index, BuildConfig(**CONFIG))  # finishes the interrupted add
            assert faiss_bytes(index) == faiss_bytes(full), f"killed at {points[n - 1]}"
        else:
            repair_index(index)  # back to the last published state
        assert verify_index(index) == [], f"killed at {n}: {points[n - 1]}"
        assert index_summary(index)["videos_pending"] == 0
        assert top_moments(index) == (after if n % 2 or "published" in points[:n] else before)
        shutil.rmtree(index)  # checked: free its disk


def test_killed_remove_is_all_or_nothing(tmp_path, zygote, corpus, tiny_model_dir):
    base = tmp_path / "base"
    build_index(corpus, base, tiny_model_dir, BuildConfig(**CONFIG))
    gone = ["vid001", "vid004"]
    traced = tmp_path / "traced"
    shutil.copytree(base, traced)
    points = zygote.points("remove", {"index": str(traced), "videos": gone})
    for n in range(1, len(points) + 1):
        index = tmp_path / f"killed-{n}"
        shutil.copytree(base, index)
        reply = zygote.run("remove", {"index": str(index), "videos": gone}, crash_at=n)
        assert reply["status"] == "killed"
        repair_index(index)
        assert verify_index(index) == [], f"killed at {n}: {points[n - 1]}"
        removed = index_summary(index)["videos_removed"]
        assert removed == (2 if "published" in points[:n] else 0)
        videos = {m[0] for m in top_moments(index)}
        assert not (videos & set(gone)) or removed == 0
        shutil.rmtree(index)  # checked: free its disk
