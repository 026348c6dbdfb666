"""Without the ``ray`` extra, ``--ray`` fails at once with one line naming it (exit 2): run in a
child process where ``import ray`` fails (``sys.modules['ray'] = None``, Python's own way to
make a module unimportable), whether or not Ray is installed here."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WITHOUT_RAY = ("import sys; sys.modules['ray'] = None; "
               "from moment_search.cli.app import main; sys.exit(main(sys.argv[1:]))")


@pytest.mark.parametrize("command", [
    ["ingest", "{videos}", "--out", "{tmp}/corpus", "--ray", "auto"],
    ["index", "build", "{corpus}", "--out", "{tmp}/index", "--ray", "auto"],
])
def test_ray_option_without_the_extra_fails_in_one_line(tmp_path, command):
    videos = tmp_path / "video.mp4"
    videos.write_bytes(b"not read: the missing extra is found first")
    corpus = tmp_path / "features-corpus"
    (corpus / "features").mkdir(parents=True)
    argv = [part.format(videos=videos, tmp=tmp_path, corpus=corpus) for part in command]
    run = subprocess.run([sys.executable, "-c", WITHOUT_RAY, *argv], cwd=ROOT,
                         env={**os.environ, "COLUMNS": "200"}, capture_output=True, text=True,
                         timeout=120)
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert run.returncode == 2, run.stderr
    assert lines == ["error: --ray needs Ray, not installed here: "
                     "pip install 'moment-search[ray]'"]
    assert not (tmp_path / "corpus").exists() and not (tmp_path / "index").exists()
