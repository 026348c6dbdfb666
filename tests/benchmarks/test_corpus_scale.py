"""The corpus-scale benchmark on a reduced size list: files, fields, verified recall."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("faiss")
pytest.importorskip("matplotlib")

from moment_search.benchmarks import corpus_scale, report  # noqa: E402
from moment_search.benchmarks.corpus_scale import ScaleConfig  # noqa: E402
from moment_search.benchmarks.synthetic_embeddings import SyntheticEmbeddings  # noqa: E402

FIELDS = ("n", "kind", "built_kind", "params", "reason", "status", "build_s", "train_s", "add_s",
          "index_bytes", "bytes_per_vector", "recall_at_10", "recall_at_100", "single_p50_ms",
          "single_p95_ms", "batch_p50_ms", "batch_p95_ms", "threads", "meets_target")


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    out = tmp_path_factory.mktemp("scale")
    data = corpus_scale.run(ScaleConfig(out, sizes=(2_000, 5_000), n_queries=64, n_single=16))
    return out, data


def test_writes_json_markdown_and_plot(result):
    out, data = result
    assert sorted(p.name for p in out.iterdir()) == [
        "corpus_scale.json", "corpus_scale.md", "latency_vs_size.png"]
    assert json.loads((out / "corpus_scale.json").read_text()) == json.loads(
        json.dumps(report._jsonable(data)))
    assert (out / "latency_vs_size.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    markdown = (out / "corpus_scale.md").read_text()
    assert "Gaussian mixture" in markdown and "| 5,000 | hnsw |" in markdown


def test_rows_carry_every_field_and_verified_recall(result):
    _, data = result
    rows = data["results"]
    assert [(r["n"], r["kind"]) for r in rows] == [
        (n, k) for n in (2_000, 5_000) for k in corpus_scale.KINDS]
    for row in rows:
        assert row["status"] == "ok" and all(f in row for f in FIELDS), row["kind"]
        assert 0 < row["single_p50_ms"] <= row["single_p95_ms"]
        assert 0 < row["batch_p50_ms"] <= row["batch_p95_ms"]
        assert row["threads"] == 1 and row["index_bytes"] > 0
    flat = [r for r in rows if r["kind"] == "flat"]
    assert all(r["recall_at_100"] == 1.0 and r["bytes_per_vector"] >= 512 for r in flat)
    ivf = next(r for r in rows if r["kind"] == "ivf" and r["n"] == 5_000)
    assert ivf["recall_at_10"] > 0.8 and ivf["sweep"][-1]["recall_at_100"] > 0.99
    # too few vectors for 8-bit PQ codebooks: the indexer's fallback is recorded, not hidden
    assert {r["built_kind"] for r in rows if r["kind"].startswith("ivfpq")} == {"ivf"}


def test_machine_info_and_defaults_check(result):
    _, data = result
    machine = data["machine"]
    assert machine["faiss_threads"] == 1 and machine["logical_cores"] >= 1
    assert machine["versions"]["faiss"] and machine["versions"]["numpy"]
    assert data["defaults_check"] and all("smallest_meeting_target" in c
                                          for c in data["defaults_check"])


def test_machine_info_records_the_milvus_versions():
    pymilvus = pytest.importorskip("pymilvus")
    milvus_lite = pytest.importorskip("milvus_lite")
    versions = report.machine_info()["versions"]
    assert versions["pymilvus"] == pymilvus.__version__
    assert versions["milvus-lite"] == milvus_lite.__version__


def test_memory_budget_skips_with_a_reason(tmp_path):
    data = corpus_scale.run(ScaleConfig(tmp_path, sizes=(2_000,), kinds=("flat", "hnsw"),
                                        n_queries=32, n_single=4, memory_budget="2500K",
                                        sweep=False))
    statuses = {r["kind"]: r for r in data["results"]}
    assert statuses["flat"]["status"] == "ok"  # ~2.1 MiB with its buffers
    assert statuses["hnsw"]["status"] == "skipped"  # ~2.6 MiB: graph links on top
    assert "budget 2500K" in statuses["hnsw"]["skip_reason"]
    assert "Skipped" in (tmp_path / "corpus_scale.md").read_text()


class _Blocks:
    def __init__(self, vectors):
        self.vectors = vectors

    def blocks(self, n):
        for first in range(0, n, 128):
            yield first, self.vectors[first:min(n, first + 128)]


def test_exact_neighbours_match_numpy_sorting():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(300, 8)).astype(np.float32)
    queries = rng.normal(size=(5, 8)).astype(np.float32)
    scores, ids = corpus_scale.exact_neighbours(_Blocks(vectors), 300, queries, 10)
    products = queries @ vectors.T
    expected = np.argsort(-products, axis=1)[:, :10]
    np.testing.assert_array_equal(ids, expected)
    np.testing.assert_allclose(scores, np.take_along_axis(products, expected, 1), rtol=1e-5)
    assert corpus_scale.recall_at(ids, expected, 10) == 1.0
    assert corpus_scale.recall_at(ids[:, ::-1], expected, 5) < 1.0


def test_synthetic_data_is_seeded_clustered_and_unit_norm():
    data = SyntheticEmbeddings(videos_per_block=4)
    first = np.concatenate([v for _, v in data.blocks(1_000)])
    again = np.concatenate([v for _, v in data.blocks(1_000)])
    assert first.shape == (1_000, 128) and np.array_equal(first, again)
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    same_video = float(first[0] @ first[1])  # proposals of one video
    other = float(np.mean(first[:136] @ first[-136:].T))  # two unrelated videos
    assert same_video > 0.8 and abs(other) < 0.5


def test_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="unknown preset"):
        corpus_scale.run(ScaleConfig(tmp_path, preset="huge"))
    with pytest.raises(ValueError, match="unknown index kind"):
        corpus_scale.run(ScaleConfig(tmp_path, kinds=("flat", "annoy")))
    with pytest.raises(ValueError, match="memory size"):
        corpus_scale.run(ScaleConfig(tmp_path, sizes=(100,), memory_budget="lots"))


def test_main_runs_in_process(tmp_path, capsys):
    assert corpus_scale.main(["--sizes", "1000", "--kinds", "flat,ivf", "--queries", "32",
                              "--single", "4", "--no-sweep", "--threads", "1",
                              "--out", str(tmp_path)]) == 0
    assert "| 1,000 | ivf |" in capsys.readouterr().out
    assert (tmp_path / "corpus_scale.json").exists()
