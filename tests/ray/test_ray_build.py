"""``index build --ray`` on the session's local Ray cluster: the index equals the
single-process one; an embedding actor killed mid-run is restarted and the index is still
equal; a driver killed mid-run (SIGKILL) resumes with ``--resume`` to the same index."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from moment_search.cli.app import main
from moment_search.indexer import faiss_index
from moment_search.indexer.build import BuildConfig, build_index
from moment_search.indexer.integrity import index_summary
from moment_search.indexer.ray_build import RayBuildConfig, RayShardEmbedding
from moment_search.indexer.store import CATALOG_FILE, open_catalog
from moment_search.indexer.verify import verify_index

from moment_search.failpoints import CRASH_AT, CRASH_TRACE

from ..conftest import write_tiny_corpus
from .killing import kill_named_actor

ROOT = Path(__file__).resolve().parents[2]
N_VIDEOS = 12
CONFIG = BuildConfig(shard_videos=2, device="cpu", query_encoder=False)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_tiny_corpus(tmp_path_factory.mktemp("corpus"), n_videos=N_VIDEOS)


@pytest.fixture(scope="module")
def single_process_index(tmp_path_factory, corpus, tiny_model_dir) -> Path:
    out = tmp_path_factory.mktemp("single") / "index"
    build_index(corpus, out, tiny_model_dir, CONFIG)
    return out


def catalog_videos(index_dir: Path) -> list[tuple]:
    catalog = open_catalog(index_dir, None)
    return sorted((v.video_id, v.first_id, v.n_proposals, v.shard, v.checksum)
                  for v in catalog.videos())


def assert_same_index(expected: Path, actual: Path) -> None:
    """Same Parquet shards, catalog rows and ids; FAISS vectors within 1e-5."""
    metas = [sorted((d / "meta").iterdir()) for d in (expected, actual)]
    assert [p.name for p in metas[0]] == [p.name for p in metas[1]]
    for a, b in zip(*metas, strict=True):
        assert pq.read_table(a).equals(pq.read_table(b))
    assert catalog_videos(actual) == catalog_videos(expected)
    n = index_summary(expected)["proposals_indexed"]
    assert index_summary(actual)["proposals_indexed"] == n == N_VIDEOS * 36
    vectors = [faiss_index.stored_vectors(faiss_index.read_index(next(d.glob("index-*.faiss"))),
                                          0, n) for d in (expected, actual)]
    np.testing.assert_allclose(vectors[1], vectors[0], atol=1e-5, rtol=0)
    assert verify_index(actual) == []


def test_ray_build_equals_the_single_process_index(tmp_path, ray_address, corpus,
                                                   tiny_model_dir, capsys):
    argv = ["index", "build", str(corpus), "--model", str(tiny_model_dir), "--device", "cpu",
            "--no-query-encoder", "--json"]
    single, on_ray = tmp_path / "single", tmp_path / "ray"
    assert main([*argv, "--out", str(single)]) == 0
    assert main([*argv, "--out", str(on_ray), "--ray", ray_address]) == 0
    assert capsys.readouterr().out.count(f'"videos": {N_VIDEOS},') == 2
    assert_same_index(single, on_ray)


class KillAfterFirstShard:
    """Build progress that kills an embedding actor (ray.kill, restart allowed) once the first
    shard is recorded: the next shards are in flight on the actors."""

    def __init__(self):
        self.name, self.killed = "", None

    def phase(self, name, total, unit):
        self.name = name

    def advance(self, done):
        if self.name == "embedding" and done and self.killed is None:
            self.killed = kill_named_actor("moment-search-embedder-")


def test_killed_embedding_actor_is_restarted_and_the_index_complete(
        tmp_path, ray_address, corpus, tiny_model_dir, single_process_index):
    progress = KillAfterFirstShard()
    out = tmp_path / "index"
    build_index(corpus, out, tiny_model_dir, CONFIG, progress=progress,
                embed=RayShardEmbedding(RayBuildConfig(ray_address, workers=1, device="cpu")))
    assert progress.killed is not None
    assert_same_index(single_process_index, out)


BUILD_CHILD = """
import sys
from moment_search.indexer.build import BuildConfig, build_index
from moment_search.indexer.ray_build import RayBuildConfig, RayShardEmbedding
corpus, out, model, address = sys.argv[1:]
build_index(corpus, out, model, BuildConfig(shard_videos=2, device="cpu", query_encoder=False),
            embed=RayShardEmbedding(RayBuildConfig(address, device="cpu")))
"""


def test_killed_driver_resumes_to_the_same_index(tmp_path, ray_address, corpus, tiny_model_dir,
                                                 single_process_index):
    out, trace = tmp_path / "index", tmp_path / "trace.txt"
    # the driver (a child process) kills itself with SIGKILL at its 17th crash point, when the
    # third shard's metadata is renamed into place: shards 0 and 1 are recorded, shard 2 is
    # written but not recorded, the others in flight or not started
    env = {**os.environ, CRASH_AT: "17", CRASH_TRACE: str(trace)}
    killed = subprocess.run([sys.executable, "-c", BUILD_CHILD, str(corpus), str(out),
                             str(tiny_model_dir), ray_address], env=env, cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert trace.read_text().splitlines()[-1] == "17\trenamed shard-00002.parquet"
    assert (out / CATALOG_FILE).exists() and not list(out.glob("index-*.faiss"))
    assert sorted(open_catalog(out, None).embedded_shards()) == [0, 1]
    with pytest.raises(ValueError, match="--resume"):
        build_index(corpus, out, tiny_model_dir, CONFIG)
    embed = RayShardEmbedding(RayBuildConfig(ray_address, device="cpu"))
    report = build_index(corpus, out, tiny_model_dir, CONFIG, resume=True, embed=embed)
    assert report.shards_skipped == 2
    assert_same_index(single_process_index, out)



def test_a_pool_the_cluster_cannot_hold_is_refused(tmp_path, ray_address, corpus,
                                                   tiny_model_dir, capsys):
    argv = ["index", "build", str(corpus), "--out", str(tmp_path / "index"), "--model",
            str(tiny_model_dir), "--device", "cpu", "--no-query-encoder", "--ray", ray_address,
            "--ray-workers", "3"]
    assert main(argv) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert ("error: --ray-workers 3: the cluster has 2 CPU(s), 1 per embedding actor; expected "
            "at most 2") in err
    assert not (tmp_path / "index").exists()  # the build recorded nothing: it leaves nothing
