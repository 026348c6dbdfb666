"""Milvus Lite serves one process (issue 23, item 1): a second process gets one line naming the
process that has the database open and the ways out, and the CLI exits 2, instead of
milvus-lite's traceback. Two real processes on one real milvus-lite index."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from moment_search.cli.app import main
from moment_search.indexer.backends import open_store
from moment_search.indexer.backends.milvus_owner import MilvusLiteBusyError
from moment_search.indexer.integrity import require_index

from moment_search.search.searcher import Searcher

ROOT = Path(__file__).resolve().parents[2]
HOLDER = """
import sys
from moment_search.indexer.backends import open_store
from moment_search.indexer.build import BuildConfig, build_index
from moment_search.indexer.integrity import require_index

corpus, out, model = sys.argv[1:4]
build_index(corpus, out, model, BuildConfig(shard_videos=4, device="cpu", backend="milvus"))
store = open_store(out, require_index(out)[1])
print("ready", flush=True)
sys.stdin.read()  # hold the database until the test closes stdin
"""


@pytest.fixture()
def held_index(tmp_path, session_corpus, tiny_model_dir):
    """A milvus-lite index built, then held open, by another process (like a running serve)."""
    pytest.importorskip("pymilvus", reason="the [milvus] extra (pymilvus, milvus-lite) is "
                                           "not installed")
    out = tmp_path / "idx"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(session_corpus), str(out), str(tiny_model_dir)],
        cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = holder.stdout.readline()
        assert line.strip() == "ready", holder.stderr.read()
        yield out, holder
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)


def test_a_second_process_gets_one_line_naming_the_holder(held_index, capsys):
    out, holder = held_index
    params = require_index(out)[1]
    with pytest.raises(MilvusLiteBusyError, match=rf"milvus-lite database .*milvus.db is open in "
                                                  rf"pid {holder.pid} on host .*Milvus Lite "
                                                  rf"serves one process at a time; stop that "
                                                  rf"process .*--milvus-uri http://HOST:19530"):
        open_store(out, params)
    with pytest.raises(OSError, match=f"pid {holder.pid}"):
        Searcher.open(out, device="cpu")
    capsys.readouterr()
    for argv in (["query", "person", "--index", str(out)],
                 ["index", "remove", "vid001", "--index", str(out)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: the milvus-lite database") and f"pid {holder.pid}" in err
        assert "Traceback" not in err and "DataDirLocked" not in err
    assert require_index(out)[0].video_status("vid001") == "indexed"  # nothing removed

    holder.stdin.close()  # the holder exits: the database is free
    assert holder.wait(timeout=60) == 0
    assert Searcher.open(out, device="cpu").search("person", k=3)
