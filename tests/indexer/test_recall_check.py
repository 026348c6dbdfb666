"""auto chooses for latency at a measured recall: flat while it is fast, else an IVF whose nprobe a
build-time check raises until recall@100 and @200 against exact search reach 0.98."""

from __future__ import annotations

import numpy as np
import pytest

faiss = pytest.importorskip("faiss")

from moment_search.indexer import faiss_index as fi  # noqa: E402
from moment_search.indexer import index_choice  # noqa: E402
from moment_search.indexer import recall_check as rc  # noqa: E402

from .test_faiss_index import build, clustered, exact, recall  # noqa: E402

DIM = 32
N = 12_000


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    with fi.omp_threads(1):
        yield


@pytest.fixture(scope="module")
def corpus():
    """Clustered vectors under non-positional ids, check queries and held-out queries."""
    vectors = clustered(N, seed=1)
    ids = np.arange(N, dtype=np.int64) * 3 + 500
    return vectors, ids, clustered(200, seed=2), clustered(100, seed=3)


@pytest.fixture(scope="module")
def ivf(corpus):
    """The IVF that auto picks for N vectors when flat is too slow, filled (default nprobe)."""
    vectors, ids, _, _ = corpus
    spec = fi.choose_index(N, DIM, None, "ivf")
    assert spec.params == index_choice._ivf_spec(N).params  # auto's IVF past the threshold
    return spec, build(spec, vectors, ids)


def blocks(vectors, ids, size=5_000):
    return [(ids[i:i + size], vectors[i:i + size]) for i in range(0, len(ids), size)]


@pytest.fixture(scope="module")
def truth(corpus):
    vectors, ids, queries, _ = corpus
    return rc.exact_neighbours(queries, blocks(vectors, ids), 200)


# --- the choice -----------------------------------------------------------------------------


@pytest.mark.parametrize("n, dim, kind", [(1_000, 264, "flat"), (30_000, 264, "flat"),
                                          (31_000, 264, "ivf"), (136_000, 264, "ivf"),
                                          (62_500, 128, "flat"), (62_501, 128, "ivf")])
def test_auto_is_flat_only_while_it_is_fast(n, dim, kind):
    spec = fi.choose_index(n, dim, "4G")
    assert spec.kind == kind
    assert fi.flat_is_fast(n, dim) == (kind == "flat") == (n * dim <= fi.FLAT_MAX_FLOATS)
    assert ("~1 ms" in spec.reason) and "\n" not in spec.reason


def test_explicit_flat_and_budget_logic_are_kept():
    assert fi.choose_index(136_000, 264, "4G", "flat").kind == "flat"
    assert fi.choose_index(136_000, 264, "20M").kind == "ivfpq"  # full vectors do not fit


# --- the check ------------------------------------------------------------------------------


def test_exact_neighbours_over_blocks_is_brute_force(corpus, truth):
    vectors, ids, queries, _ = corpus
    np.testing.assert_array_equal(truth[:, :50], exact(vectors, ids, queries, 50)[1])


def test_tuning_reaches_the_target_and_stores_it(corpus, ivf, truth):
    _, _, queries, _ = corpus
    spec, index = ivf
    check = rc.tune_search(index, spec, queries, truth, "200 test queries")
    assert check.param == "nprobe" and check.reached()
    assert min(check.recall[100], check.recall[200]) >= rc.RECALL_TARGET
    values = [value for value, _ in check.tried]
    assert values[0] == rc.NPROBE_START and values == sorted(values)
    assert all(min(r.values()) < rc.RECALL_TARGET for _, r in check.tried[:-1])  # first passing
    assert faiss.extract_index_ivf(index).nprobe == check.value  # the file searches the same way
    params = check.params()
    assert params["nprobe"] == check.value and params["recall_queries"] == 200
    assert params["recall_at_100"] >= 0.98 and params["recall_at_200"] >= 0.98
    assert rc.measure_recall(index, queries, truth, {**spec.params, **params}) == check.recall


@pytest.mark.parametrize("target, cap", [(1.01, None), (rc.RECALL_TARGET, 1)])
def test_a_bad_setting_is_refused(corpus, ivf, truth, target, cap):
    _, _, queries, _ = corpus
    spec, index = ivf
    with pytest.raises(rc.RecallError, match=r"recall@100 0\.\d+.*below the target"):
        rc.tune_search(index, spec, queries, truth, "test", target=target, cap=cap)


def test_flat_fallback_only_within_the_budget():
    error = rc.RecallError("ivf index: recall@100 0.5")
    flat = rc.flat_fallback(error, 136_000, 264, "4G")
    assert flat.kind == "flat" and "failed its recall check (ivf index" in flat.reason
    with pytest.raises(rc.RecallError, match="does not fit the 100.0 MiB memory budget"):
        rc.flat_fallback(error, 136_000, 264, "100M")


def test_tuned_ivf_returns_the_flat_results_within_the_recall(corpus, ivf, truth):
    vectors, ids, queries, held_out = corpus
    spec, index = ivf
    check = rc.tune_search(index, spec, queries, truth, "test")
    tuned = index_choice.retuned(spec, check.params(), check.summary())
    assert f"nprobe={check.value})" in tuned.reason and "recall@200" in tuned.reason
    flat = build(fi.IndexSpec("flat"), vectors, ids)
    for k in (10, 100, 200):  # on queries the check never saw
        _, want = fi.search(flat, held_out, k)
        scores, got = fi.search(index, held_out, k, tuned.params)
        assert recall(got, want) >= 0.95, k
        rows = (got - 500) // 3  # whatever IVF-Flat returns carries its exact score
        np.testing.assert_allclose(scores, np.einsum("qd,qkd->qk", held_out, vectors[rows]),
                                   atol=1e-5)


def test_hnsw_tunes_ef_search(corpus, truth):
    vectors, ids, queries, _ = corpus
    spec = fi.IndexSpec("hnsw", {"M": 16, "ef_construction": 40, "ef_search": 16})
    index = build(spec, vectors, ids, threads=1)
    check = rc.tune_search(index, spec, queries, truth, "test")
    assert check.param == "ef_search" and check.value >= 200 and check.reached()
    assert faiss.downcast_index(index.index).hnsw.efSearch == check.value
    measured = rc.measure_search(index, spec, queries, truth, "test")  # explicit: not tuned
    assert measured.value == 16 and measured.target is None and measured.reached()


def test_too_few_sentences_are_made_up_with_perturbed_stored_vectors(corpus):
    vectors, _, queries, _ = corpus
    few, source = rc.check_queries(queries[:5], vectors[:1_000])
    assert few.shape == (rc.MIN_CHECK_QUERIES, DIM) and few.dtype == np.float32
    assert source == f"5 sentences + {rc.MIN_CHECK_QUERIES - 5} perturbed stored vectors"
    np.testing.assert_array_equal(few[:5], queries[:5])
    assert not np.isin(few[5:], vectors).all(axis=1).any()  # perturbed: not stored vectors
    enough, source = rc.check_queries(clustered(1_500, seed=4), vectors[:10])
    assert len(enough) == rc.MAX_CHECK_QUERIES and source == "1000 sentences"


# --- in a build -----------------------------------------------------------------------------


def build_auto(tmp_path, model_dir, monkeypatch, max_share):
    """An auto build of 20 tiny videos (720 proposals) with flat made "too slow"."""
    from moment_search.indexer.build import BuildConfig, build_index

    from ..conftest import write_tiny_corpus

    monkeypatch.setattr(index_choice, "FLAT_MAX_FLOATS", 0)
    monkeypatch.setattr(rc, "NPROBE_MAX_SHARE", max_share)
    corpus = write_tiny_corpus(tmp_path / "corpus", n_videos=20)
    config = BuildConfig(shard_videos=8, device="cpu", keep_embeddings=True)
    return corpus, build_index(corpus, tmp_path / "index", model_dir, config)


def test_auto_build_records_the_recall_its_queries_get(tmp_path, tiny_model_dir, monkeypatch):
    from moment_search.indexer.store import open_catalog

    from moment_search.search.searcher import Searcher

    corpus, report = build_auto(tmp_path, tiny_model_dir, monkeypatch, max_share=1)
    catalog = open_catalog(report.index_dir, None)
    params = catalog.info().index_params
    assert catalog.info().index_type == "ivf" and "recall@100" in report.index_spec
    assert params["recall_at_100"] >= 0.98 and params["recall_at_200"] >= 0.98
    assert params["recall_queries"] == rc.MIN_CHECK_QUERIES  # few sentences: made up
    assert "perturbed stored vectors" in params["recall_source"]
    searcher = Searcher.open(report.index_dir, device="cpu")
    assert searcher.index.faiss.nprobe == params["nprobe"]
    queries, _ = rc.index_check_queries(report.index_dir, catalog, params["shards"], corpus)
    truth = rc.exact_neighbours(queries, rc.shard_blocks(report.index_dir, catalog,
                                                         params["shards"]), 200)
    _, found = searcher.index.search(queries, 200, searcher.params)  # the path queries take
    assert np.mean([len(np.intersect1d(f, t)) for f, t in zip(found, truth, strict=True)]) \
        / 200 == pytest.approx(params["recall_at_200"], abs=1e-4)


def test_auto_build_falls_back_to_flat_when_recall_is_out_of_reach(tmp_path, tiny_model_dir,
                                                                   monkeypatch):
    from moment_search.indexer.store import open_catalog

    _, report = build_auto(tmp_path, tiny_model_dir, monkeypatch, max_share=10**6)  # nprobe 1
    assert open_catalog(report.index_dir, None).info().index_type == "flat"
    assert "failed its recall check" in report.index_spec and "nprobe=1" in report.index_spec
