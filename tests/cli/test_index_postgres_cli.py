"""Two ``moment-search`` processes writing one index whose catalog is a PostgreSQL database."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from moment_search.indexer.build import BuildConfig, build_index
from moment_search.indexer.catalog import Catalog
from moment_search.indexer.lock import writer_lock
from moment_search.indexer.verify import verify_index

from ..conftest import write_tiny_corpus
from .test_index_cli import manifest_corpus


def start(*args: str) -> subprocess.Popen:
    """The installed entry point, run as a user would, with one thread."""
    script = Path(sys.executable).parent / "moment-search"
    return subprocess.Popen([str(script), *args], env={**os.environ, "OMP_NUM_THREADS": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def named(url: str, application_name: str) -> str:
    """The catalog URL with a connection name that the server log shows."""
    return f"{url}&application_name={application_name}"


def wait_for_connections(log: Path, names: list[str], timeout: float = 120.0) -> None:
    """Wait until the server log shows a connection from each application name."""
    deadline = time.monotonic() + timeout
    while not all(f"application_name={name}" in log.read_text() for name in names):
        assert time.monotonic() < deadline, f"no connection from {names} in {timeout} s"
        time.sleep(0.1)


@pytest.mark.postgres
def test_add_and_remove_at_once_both_land(tmp_path, tiny_model_dir, postgres_cluster,
                                          postgres_url):
    """Both writers read the catalog before either holds the lock (the test holds it until the
    database has seen both), then write one after the other: neither change may be lost."""
    source = write_tiny_corpus(tmp_path / "source", n_videos=9)
    base = manifest_corpus(tmp_path / "base", source, [f"vid00{i}" for i in range(7)])
    extra = manifest_corpus(tmp_path / "extra", source, ["vid007", "vid008"])
    index = tmp_path / "idx"
    build_index(base, index, tiny_model_dir,
                BuildConfig(shard_videos=2, device="cpu", catalog_url=postgres_url))
    database = postgres_url.split("/")[-1].split("?")[0]  # unique to this test
    adder, remover = f"add_{database}", f"remove_{database}"
    flags = ["--index", str(index), "--wait", "120", "--catalog"]
    with writer_lock(index, "the test, until both writers wait"):
        runs = [start("index", "add", str(extra), *flags, named(postgres_url, adder)),
                start("index", "remove", "vid001", "vid002", *flags,
                      named(postgres_url, remover))]
        wait_for_connections(postgres_cluster.log, [adder, remover])
    for run in runs:
        _, err = run.communicate(timeout=300)
        assert run.returncode == 0, err
    assert verify_index(index, catalog_url=postgres_url) == []
    with Catalog.open(postgres_url) as catalog:
        assert {v.video_id for v in catalog.videos("removed")} == {"vid001", "vid002"}
        indexed = {v.video_id for v in catalog.videos()}
        assert catalog.counts()["videos_pending"] == 0
    assert indexed == {f"vid00{i}" for i in (0, 3, 4, 5, 6, 7, 8)}
