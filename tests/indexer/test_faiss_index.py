"""The FAISS layer: ANN vs exact, ids, remove, selectors, estimates, files, seeds, placement
(choosing the kind: test_index_choice)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

faiss = pytest.importorskip("faiss")

from moment_search.indexer import faiss_index as fi  # noqa: E402
from moment_search.indexer.faiss_placement import _gpu_count  # noqa: E402
from moment_search.indexer.faiss_search import GPU_MAX_K  # noqa: E402

DIM = 32


def clustered(n: int, dim: int = DIM, clusters: int = 24, seed: int = 0) -> np.ndarray:
    """(n, dim) float32 unit vectors from a seeded Gaussian mixture (ANN acts as on embeddings)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    x = centres[rng.integers(clusters, size=n)] + 0.6 * rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def exact(vectors: np.ndarray, ids: np.ndarray, queries: np.ndarray, k: int):
    """Brute-force top-k inner products: (scores, ids), best first."""
    scores = queries @ vectors.T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, 1), ids[order]


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    pairs = zip(found, truth, strict=True)
    return float(np.mean([len(np.intersect1d(f, t)) / len(t) for f, t in pairs]))


def build(spec: fi.IndexSpec, vectors: np.ndarray, ids: np.ndarray, threads=None):
    index = fi.new_index(spec, vectors.shape[1])
    size = fi.train_sample_size(spec, len(vectors))
    if size:
        fi.train(index, vectors[np.random.default_rng(1).choice(len(vectors), size, False)])
    fi.add(index, vectors, ids, threads=threads)
    return index


SPECS = {
    "flat": fi.IndexSpec("flat"),
    "ivf": fi.IndexSpec("ivf", {"nlist": 32, "nprobe": 8}),
    # 6-bit codes train on a few thousand vectors; the 8-bit default has its own test
    "ivfpq": fi.IndexSpec("ivfpq", {"nlist": 32, "nprobe": 8, "m": 8, "nbits": 6,
                                    "refine": None, "k_factor": 1}),
    "ivfpq_refine": fi.IndexSpec("ivfpq", {"nlist": 32, "nprobe": 8, "m": 8, "nbits": 6,
                                           "refine": "flat", "k_factor": 4}),
    "hnsw": fi.IndexSpec("hnsw", {"M": 16, "ef_construction": 40, "ef_search": 128}),
}
# recall@10 lower bounds against exact search on CORPUS (measured values are 0.05-0.15 higher)
RECALL_AT_10 = {"flat": 0.999, "ivf": 0.85, "ivfpq": 0.45, "ivfpq_refine": 0.85, "hnsw": 0.8}
N = 4_000


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny indexes build fastest on one thread (OpenMP barriers stall on a busy 2-core box)."""
    with fi.omp_threads(1):
        yield


@pytest.fixture(scope="module")
def corpus():
    vectors = clustered(N)
    ids = np.arange(N, dtype=np.int64) * 7 + 1000  # explicit, non-positional ids
    return vectors, ids, clustered(40, seed=5)


@pytest.fixture(scope="module")
def built(corpus):
    vectors, ids, _ = corpus
    return {name: build(spec, vectors, ids) for name, spec in SPECS.items()}


# --- ANN against exact ---------------------------------------------------------------------


@pytest.mark.parametrize("name", list(SPECS))
def test_ann_recall_against_exact(built, corpus, name):
    vectors, ids, queries = corpus
    scores, found = fi.search(built[name], queries, 10)
    truth_scores, truth = exact(vectors, ids, queries, 10)
    assert found.shape == (40, 10) and found.dtype == np.int64
    assert recall(found, truth) >= RECALL_AT_10[name]
    assert np.all(np.diff(scores, axis=1) <= 1e-6)  # best first
    if name in ("flat", "ivf", "ivfpq_refine", "hnsw"):  # exact scores for what they return
        rows = (found - 1000) // 7
        np.testing.assert_allclose(scores, np.einsum("qd,qkd->qk", queries, vectors[rows]),
                                   atol=1e-5)
    if name == "flat":
        np.testing.assert_allclose(scores, truth_scores, atol=1e-5)


def test_recall_grows_with_nprobe_and_ef(built, corpus):
    vectors, ids, queries = corpus
    truth = exact(vectors, ids, queries, 10)[1]
    low = recall(fi.search(built["ivf"], queries, 10, nprobe=1)[1], truth)
    full = recall(fi.search(built["ivf"], queries, 10, nprobe=32)[1], truth)
    assert low < full and full >= 0.999  # probing every list is exact for IVF-Flat
    shallow = recall(fi.search(built["hnsw"], queries, 10, ef_search=10)[1], truth)
    deep = recall(fi.search(built["hnsw"], queries, 10, ef_search=800)[1], truth)
    assert shallow < deep and deep >= 0.98


def test_default_ivfpq_from_choose_index():
    vectors = clustered(10_000, dim=64)
    queries = clustered(40, dim=64, seed=5)
    spec = fi.choose_index(len(vectors), 64, "2M", "ivfpq")  # too small for the refine stage
    assert spec.kind == "ivfpq" and spec.params["nbits"] == 8 and spec.params["refine"] is None
    index = build(spec, vectors, np.arange(len(vectors)))
    truth = exact(vectors, np.arange(len(vectors)), queries, 10)[1]
    assert recall(fi.search(index, queries, 10)[1], truth) >= 0.4
    assert fi.supports_remove(index)


def test_search_reads_params_from_spec_or_dict(built, corpus):
    _, _, queries = corpus
    index = built["ivf"]
    with_spec = fi.search(index, queries, 10, fi.IndexSpec("ivf", {"nlist": 32, "nprobe": 32}))
    with_dict = fi.search(index, queries, 10, {"nprobe": 32, "file": "index-00001.faiss"})
    explicit = fi.search(index, queries, 10, nprobe=32)
    np.testing.assert_array_equal(with_spec[1], explicit[1])
    np.testing.assert_array_equal(with_dict[1], explicit[1])


@pytest.mark.parametrize("name", list(SPECS))
def test_ids_round_trip(built, corpus, name):
    vectors, ids, _ = corpus
    rows = np.array([0, 17, 2345, N - 1])
    _, found = fi.search(built[name], vectors[rows], 1, nprobe=32, ef_search=200)
    np.testing.assert_array_equal(found[:, 0], ids[rows])  # a vector finds itself by its id


def test_k_larger_than_index_pads_with_minus_one():
    vectors = clustered(6)
    index = build(fi.IndexSpec("flat"), vectors, np.arange(100, 106))
    _, found = fi.search(index, vectors[:2], 10)
    assert set(found[0, :6]) == set(range(100, 106)) and np.all(found[:, 6:] == -1)


def test_bad_inputs_raise():
    index = fi.new_index(fi.IndexSpec("flat"), DIM)
    vectors = clustered(4)
    with pytest.raises(ValueError, match="4 vectors but 3 ids"):
        fi.add(index, vectors, np.arange(3))
    with pytest.raises(ValueError, match="repeat"):
        fi.add(index, vectors, np.array([1, 2, 2, 3]))
    with pytest.raises(ValueError, match=">= 0"):
        fi.add(index, vectors, np.array([-1, 0, 1, 2]))
    with pytest.raises(ValueError, match=r"shape \(N, 32\)"):
        fi.add(index, vectors[:, :8], np.arange(4))
    bad = vectors.copy()
    bad[2, 0] = np.nan
    with pytest.raises(ValueError, match=r"vectors\[2\]"):
        fi.add(index, bad, np.arange(4))
    with pytest.raises(ValueError, match="k must be >= 1"):
        fi.search(index, vectors, 0)
    untrained = fi.new_index(SPECS["ivf"], DIM)
    with pytest.raises(ValueError, match="not trained"):
        fi.add(untrained, vectors, np.arange(4))
    with pytest.raises(ValueError, match="needs >= 1248 training vectors"):  # 39 * nlist
        fi.train(untrained, clustered(100))


# --- remove ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["flat", "ivf", "ivfpq"])
def test_removed_ids_never_come_back(corpus, name):
    vectors, ids, queries = corpus
    index = build(SPECS[name], vectors, ids)
    _, before = fi.search(index, queries, 50, nprobe=32)
    gone = np.unique(before[:, :10])  # the best hits: the ones most likely to reappear
    assert fi.supports_remove(index)
    assert fi.remove(index, gone) == len(gone)
    assert index.ntotal == N - len(gone)
    _, after = fi.search(index, np.vstack([queries, vectors]), 50, nprobe=32)
    assert not np.isin(after, gone).any()
    keep = ~np.isin(ids, gone)
    if name == "flat":  # the rest is still searched exactly
        truth = exact(vectors[keep], ids[keep], queries, 50)[1]
        np.testing.assert_array_equal(after[: len(queries)], truth)


@pytest.mark.parametrize("name", ["hnsw", "ivfpq_refine"])
def test_remove_refused_where_faiss_cannot(built, name):
    assert not fi.supports_remove(built[name])
    with pytest.raises(NotImplementedError, match="tombstone"):
        fi.remove(built[name], np.array([1000]))


# --- id selectors ------------------------------------------------------------------------


def test_selector_structure_and_membership():
    member = lambda sel, i: bool(sel.is_member(int(i)))  # noqa: E731
    one, n_one = fi.make_id_selector([(10, 5)])
    few, n_few = fi.make_id_selector([(30, 2), (10, 5), (12, 10)])  # overlapping: merged
    many, n_many = fi.make_id_selector([(i * 100, 3) for i in range(20)])
    assert isinstance(one, faiss.IDSelectorRange) and n_one == 5
    assert isinstance(few, faiss.IDSelectorOr) and n_few == 14
    sparse, n_sparse = fi.make_id_selector([(i * 100_000, 3) for i in range(20)])
    assert isinstance(many, faiss.IDSelectorBitmap) and n_many == 60
    assert isinstance(sparse, faiss.IDSelectorBatch) and n_sparse == 60
    assert [member(sparse, i) for i in (0, 2, 3, 99_999, 100_000, 1_900_002)] == [
        True, True, False, False, True, True]
    assert [member(one, i) for i in (9, 10, 14, 15)] == [False, True, True, False]
    assert [member(few, i) for i in (9, 10, 21, 22, 30, 31, 32)] == [False] + [True] * 2 + [
        False, True, True, False]
    inside = {i * 100 + j for i in range(20) for j in range(3)}
    assert all(member(many, i) == (i in inside) for i in range(2100))
    with pytest.raises(ValueError, match="first_id=-1"):
        fi.make_id_selector([(-1, 3)])


@pytest.mark.parametrize("name", ["flat", "ivf", "hnsw", "ivfpq", "ivfpq_refine"])
@pytest.mark.parametrize("ranges", [[(1000 + 7 * 50, 40)], [(1000, 20), (1000 + 7 * 900, 60)],
                                    [(1000 + 7 * 100 * i, 30) for i in range(8)]])
def test_selector_restricts_and_matches_exact_subset(built, corpus, name, ranges):
    vectors, ids, queries = corpus
    allowed = np.zeros(len(ids), dtype=bool)
    for first, count in ranges:  # ids are 1000 + 7 * row: (first, count) covers every 7th id
        allowed |= (ids >= first) & (ids < first + count)
    scores, found = fi.search(built[name], queries, 5, id_selector=ranges)
    assert np.isin(found[found >= 0], ids[allowed]).all()
    truth_scores, truth = exact(vectors[allowed], ids[allowed], queries, 5)
    if name == "ivfpq":  # PQ-approximate scores: the subset is scanned fully, ranks may swap
        assert recall(found, truth) >= 0.6
    else:
        np.testing.assert_array_equal(found, truth)
        np.testing.assert_allclose(scores, truth_scores, atol=1e-5)


def test_large_selector_on_ivf_uses_the_ann_path(built, corpus):
    vectors, ids, queries = corpus
    half = [(int(ids[0]), int(ids[N // 2 - 1] - ids[0] + 1))]
    _, found = fi.search(built["ivf"], queries, 10, id_selector=half)
    assert np.isin(found[found >= 0], ids[: N // 2]).all()
    assert recall(found, exact(vectors[: N // 2], ids[: N // 2], queries, 10)[1]) >= 0.85


# --- the memory estimate against real files -----------------------------------------------


def test_estimated_bytes_tracks_serialized_size(built, corpus, tmp_path):
    n = len(corpus[0])
    for name in ("flat", "ivf", "ivfpq", "hnsw"):
        path = tmp_path / f"{name}.faiss"
        fi.write_index(built[name], path)
        estimate = fi.estimated_bytes(SPECS[name], n, DIM)
        assert 0.8 < estimate / path.stat().st_size < 2.5, name  # in memory >= on disk


# --- tiny corpora never fail ---------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 5, 100, 700])
@pytest.mark.parametrize("kind", ["auto", "flat", "ivf", "ivfpq", "hnsw"])
def test_tiny_corpus_builds_and_searches(n, kind):
    spec = fi.choose_index(n, DIM, "1G", kind)
    vectors = clustered(max(n, 1))[:n]
    index = build(spec, vectors, np.arange(n, dtype=np.int64) + 50)
    _, found = fi.search(index, clustered(3, seed=9), 4)
    assert found.shape == (3, 4)
    assert np.isin(found[found >= 0], np.arange(n) + 50).all()
    assert (found >= 0).sum(axis=1).min() == min(n, 4) or spec.kind != "flat"


def test_fit_spec_shrinks_nlist_and_falls_back():
    ivf = fi.IndexSpec("ivf", {"nlist": 1024, "nprobe": 64}, "asked")
    fitted = fi.fit_spec_to_data(ivf, 5_000)
    assert fitted.params["nlist"] == 128 and fitted.params["nlist"] * 39 <= 5_000
    assert fitted.params["nprobe"] <= 128 and "nlist lowered from 1024 to 128" in fitted.reason
    assert fi.fit_spec_to_data(ivf, 100).kind == "flat"
    eight_bit = fi.IndexSpec("ivfpq", {**SPECS["ivfpq"].params, "nbits": 8})
    assert fi.fit_spec_to_data(eight_bit, 5_000).kind == "ivf"  # < 39 * 256 vectors
    assert fi.fit_spec_to_data(SPECS["ivfpq"], 5_000).kind == "ivfpq"  # 6-bit: 39 * 64 suffice
    assert fi.train_sample_size(fitted, 5_000) == 5_000
    assert fi.train_sample_size(fitted, 10**6) == 64 * 128
    assert fi.train_sample_size(eight_bit, 10**6) == 65_536
    assert fi.train_sample_size(SPECS["flat"], 10**6) == 0


# --- files and seeds -----------------------------------------------------------------------


@pytest.mark.parametrize("name", list(SPECS))
@pytest.mark.parametrize("mmap", [False, True])
def test_write_read_round_trip(built, corpus, tmp_path, name, mmap):
    _, _, queries = corpus
    path = tmp_path / "index.faiss"
    fi.write_index(built[name], path)
    assert [p.name for p in tmp_path.iterdir()] == ["index.faiss"]  # no temp file left
    loaded = fi.read_index(path, mmap=mmap)
    assert loaded.ntotal == built[name].ntotal and fi.index_kind(loaded) == fi.index_kind(
        built[name])
    expected = fi.search(built[name], queries, 10)
    got = fi.search(loaded, queries, 10)  # stored nprobe / efSearch / k_factor survive
    np.testing.assert_array_equal(got[1], expected[1])
    np.testing.assert_allclose(got[0], expected[0], atol=1e-6)


def test_corrupt_and_missing_files_name_the_path(built, tmp_path):
    missing = tmp_path / "nope.faiss"
    with pytest.raises(FileNotFoundError, match="nope.faiss"):
        fi.read_index(missing)
    junk = tmp_path / "junk.faiss"
    junk.write_bytes(b"definitely not a faiss index" * 10)
    with pytest.raises(ValueError, match="junk.faiss"):
        fi.read_index(junk)
    truncated = tmp_path / "cut.faiss"
    fi.write_index(built["ivf"], truncated)
    truncated.write_bytes(truncated.read_bytes()[:5000])
    with pytest.raises(ValueError, match="cut.faiss"):
        fi.read_index(truncated)


def test_write_into_missing_directory_leaves_nothing(built, tmp_path):
    with pytest.raises(OSError):
        fi.write_index(built["flat"], tmp_path / "absent" / "index.faiss")
    assert not (tmp_path / "absent").exists()


@pytest.mark.parametrize("name", list(SPECS))
def test_two_builds_are_byte_identical(corpus, name):
    vectors, ids, _ = corpus
    # HNSW's parallel insertion order is not fixed; k-means and IVF adds are (checked on ivf)
    threads = 2 if name == "ivf" else 1
    with fi.omp_threads(threads):
        first = faiss.serialize_index(build(SPECS[name], vectors, ids))
        second = faiss.serialize_index(build(SPECS[name], vectors, ids))
    assert np.array_equal(first, second)


# --- placement ---------------------------------------------------------------------------


def test_placement_falls_back_to_cpu_with_one_log_line(caplog):
    caplog.set_level(logging.INFO, logger="moment_search")
    assert fi.resolve_placement("cpu").device == "cpu"
    if _gpu_count(faiss) == 0:
        caplog.clear()
        placement = fi.resolve_placement("cuda:0")
        assert placement.device == "cpu" and placement.gpu_id is None
        assert len(caplog.records) == 1 and caplog.records[0].levelno == logging.WARNING
        caplog.clear()
        assert fi.resolve_placement("auto").device == "cpu"
        assert len(caplog.records) == 1 and "CPU" in caplog.records[0].getMessage()
    for bad in ("gpu", "cuda:x", "cpu:1", ""):
        with pytest.raises(ValueError, match="bad device"):
            fi.resolve_placement(bad)


def test_cpu_placement_keeps_the_index(built):
    index = built["flat"]
    assert fi.to_device(index, fi.Placement("cpu")) is index
    assert fi.to_cpu(index) is index


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["flat", "ivf", "ivfpq"])
def test_gpu_search_matches_cpu(built, corpus, tmp_path, name):
    placement = fi.resolve_placement("cuda:0")
    if placement.device != "cuda":
        pytest.skip(placement.reason)
    vectors, ids, queries = corpus
    gpu = fi.to_device(built[name], placement)
    assert fi._is_gpu(gpu)
    cpu_ids = fi.search(built[name], queries, 10)[1]
    gpu_ids = fi.search(gpu, queries, 10)[1]
    assert recall(gpu_ids, cpu_ids) >= 0.95
    with pytest.raises(ValueError, match="CPU index"):
        fi.search(gpu, queries, 10, id_selector=[(1000, 10)])
    wide = GPU_MAX_K + 5  # past the GPU's k-selection: the best GPU_MAX_K, padded
    if name == "flat" and len(vectors) > wide:
        scores, wide_ids = fi.search(gpu, queries[:2], wide)
        assert wide_ids.shape == (2, wide) and (wide_ids[:, GPU_MAX_K:] == -1).all()
        assert np.isneginf(scores[:, GPU_MAX_K:]).all() and (wide_ids[:, :GPU_MAX_K] >= 0).all()
    fi.write_index(gpu, tmp_path / "gpu.faiss")  # saved in CPU format
    assert not fi._is_gpu(fi.read_index(tmp_path / "gpu.faiss"))
    trained = fi.to_device(fi.new_index(SPECS[name], DIM), placement)
    fi.train(trained, vectors)
    fi.add(trained, vectors, ids)
    assert fi.to_cpu(trained).ntotal == len(vectors)
