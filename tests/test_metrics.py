"""Metrics: hand-built hits and misses, and the vectorised metric against a plain loop."""

import numpy as np
import pytest

from moment_search.data.corpus import Query
from moment_search.metrics import corpus_metrics, format_table, single_video_metrics


def _query(qid, video_id, *windows):
    return Query(qid=qid, text=f"sentence {qid}", video_id=video_id, windows=tuple(windows))


def _loop_iou(a, b):
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = (a[1] - a[0]) + (b[1] - b[0]) - inter
    return inter / union if union > 0 else 0.0


def _loop_single_metrics(predictions, queries, ns, ms):
    """The slow path: the definition, one query and one prediction at a time."""
    result = {}
    for n in ns:
        for m in ms:
            hits = 0
            for q in queries:
                top = predictions.get(q.qid, [])[:n]
                hits += any(_loop_iou(p[:2], w) >= m for p in top for w in q.windows)
            result[f"R{n}@{m:g}"] = 100.0 * hits / len(queries)
    top1 = [
        max(_loop_iou(predictions[q.qid][0][:2], w) for w in q.windows)
        if len(predictions.get(q.qid, [])) else 0.0
        for q in queries
    ]
    result["mIoU"] = 100.0 * sum(top1) / len(queries)
    return result


def test_iou_exactly_at_threshold_is_a_hit():
    queries = [_query("a", "v", (0.0, 10.0)), _query("b", "v", (0.0, 10.0))]
    predictions = {"a": np.array([[0.0, 5.0, 1.0]]),  # IoU exactly 0.5
                   "b": np.array([[0.0, 7.0, 1.0]])}  # IoU exactly 0.7
    metrics = single_video_metrics(predictions, queries, ns=(1,), ms=(0.5, 0.7))
    assert metrics["R1@0.5"] == 100.0
    assert metrics["R1@0.7"] == 50.0
    assert metrics["mIoU"] == pytest.approx(60.0)
    assert metrics["n_queries"] == 2


def test_any_ground_truth_window_can_match():
    queries = [_query("a", "v", (0.0, 10.0), (20.0, 30.0))]
    predictions = {"a": np.array([[20.0, 29.0]])}  # misses window 0, IoU 0.9 with window 1
    metrics = single_video_metrics(predictions, queries, ns=(1,), ms=(0.5, 0.9))
    assert metrics["R1@0.5"] == 100.0 and metrics["R1@0.9"] == 100.0
    assert metrics["mIoU"] == pytest.approx(90.0)


def test_hit_below_rank_one_counts_only_for_larger_n():
    queries = [_query("a", "v", (10.0, 20.0))]
    predictions = {"a": np.array([[0.0, 5.0, 0.9], [40.0, 50.0, 0.8], [10.0, 19.0, 0.7]])}
    metrics = single_video_metrics(predictions, queries, ns=(1, 2, 5), ms=(0.5,))
    assert (metrics["R1@0.5"], metrics["R2@0.5"], metrics["R5@0.5"]) == (0.0, 0.0, 100.0)
    assert metrics["mIoU"] == 0.0


def test_missing_and_empty_predictions_are_misses():
    queries = [_query("a", "v", (0.0, 10.0)), _query("b", "v", (0.0, 10.0)),
               _query("c", "v", (0.0, 10.0))]
    predictions = {"a": np.array([[0.0, 10.0, 1.0]]), "b": np.zeros((0, 3))}
    metrics = single_video_metrics(predictions, queries)
    assert metrics["R1@0.7"] == pytest.approx(100.0 / 3)
    assert metrics["R5@0.1"] == pytest.approx(100.0 / 3)
    assert metrics["mIoU"] == pytest.approx(100.0 / 3)
    assert metrics["n_queries"] == 3


def test_unknown_qid_is_an_error_naming_it():
    queries = [_query("a", "v", (0.0, 10.0))]
    with pytest.raises(ValueError, match="'ghost'"):
        single_video_metrics({"ghost": np.array([[0.0, 1.0, 1.0]])}, queries)
    with pytest.raises(ValueError, match="'ghost'"):
        corpus_metrics({"ghost": [("v", 0.0, 1.0, 1.0)]}, queries)


def test_bad_shapes_and_settings_are_errors():
    queries = [_query("a", "v", (0.0, 10.0))]
    with pytest.raises(ValueError, match="'a'.*shape"):
        single_video_metrics({"a": np.zeros((2, 4))}, queries)
    with pytest.raises(ValueError, match="'a'.*end < start"):
        single_video_metrics({"a": np.array([[5.0, 1.0, 0.5]])}, queries)
    with pytest.raises(ValueError, match="no ground-truth window"):
        single_video_metrics({}, [_query("z", "v")])
    with pytest.raises(ValueError, match="thresholds"):
        single_video_metrics({}, queries, ms=(0.0,))
    with pytest.raises(ValueError, match="twice"):
        single_video_metrics({}, queries * 2)


def test_vectorised_metrics_match_the_definition_loop():
    rng = np.random.default_rng(0)
    queries, predictions = [], {}
    for i in range(60):
        starts = rng.uniform(0, 20, size=rng.integers(1, 4))
        windows = [(float(s), float(s + rng.uniform(1, 10))) for s in starts]
        queries.append(_query(f"q{i}", "v", *windows))
        k = int(rng.integers(0, 8))  # some queries have no prediction at all
        if k:
            start = rng.uniform(0, 20, size=k)
            ends = start + rng.uniform(0.5, 10, size=k)
            predictions[f"q{i}"] = np.stack([start, ends, rng.uniform(size=k)], axis=1)
    ns, ms = (1, 3, 5), (0.1, 0.3, 0.5, 0.7)
    fast = single_video_metrics(predictions, queries, ns=ns, ms=ms)
    slow = _loop_single_metrics(predictions, queries, ns, ms)
    for key, value in slow.items():
        assert fast[key] == pytest.approx(value), key


def test_corpus_needs_the_right_video():
    queries = [_query("a", "v1", (0.0, 10.0)), _query("b", "v2", (5.0, 15.0))]
    predictions = {
        "a": [("v9", 0.0, 10.0, 0.9), ("v1", 0.0, 9.0, 0.8)],  # perfect span, wrong video first
        "b": [("v2", 5.0, 15.0, 0.5)],
    }
    metrics = corpus_metrics(predictions, queries, ks=(1, 10), ms=(0.5, 0.95))
    assert metrics["R1@0.5"] == 50.0
    assert metrics["R10@0.5"] == 100.0
    assert metrics["R10@0.95"] == 50.0  # a's right-video moment has IoU 0.9
    assert metrics["n_queries"] == 2


def test_corpus_missing_query_and_bad_moment():
    queries = [_query("a", "v1", (0.0, 10.0)), _query("b", "v2", (5.0, 15.0))]
    metrics = corpus_metrics({"a": [("v1", 0.0, 10.0, 1.0)]}, queries, ks=(1,), ms=(0.7,))
    assert metrics["R1@0.7"] == 50.0
    with pytest.raises(ValueError, match="'a'.*video_id"):
        corpus_metrics({"a": [("v1", 0.0, 10.0)]}, queries)


def test_corpus_with_right_videos_equals_single_video():
    rng = np.random.default_rng(1)
    queries = [_query(f"q{i}", f"v{i % 4}", (float(s), float(s) + 5.0))
               for i, s in enumerate(rng.uniform(0, 30, size=40))]
    single = {}
    for q in queries:
        starts = rng.uniform(0, 30, 6)
        ends = starts + rng.uniform(1, 9, 6)
        single[q.qid] = np.stack([starts, ends, np.linspace(1, 0, 6)], axis=1)  # (6, 3)
    corpus = {q.qid: [(q.video_id, *row) for row in single[q.qid]] for q in queries}
    by_single = single_video_metrics(single, queries, ns=(1, 5), ms=(0.3, 0.5))
    by_corpus = corpus_metrics(corpus, queries, ks=(1, 5), ms=(0.3, 0.5))
    for key in ("R1@0.3", "R1@0.5", "R5@0.3", "R5@0.5"):
        assert by_corpus[key] == pytest.approx(by_single[key]), key


def test_format_table_lays_out_a_grid():
    metrics = {"R1@0.5": 26.05, "R1@0.7": 12.5, "R5@0.5": 64.0, "mIoU": 25.0, "n_queries": 453.0}
    lines = format_table(metrics).splitlines()
    assert lines[0].split() == ["IoU>=", "0.5", "0.7"]
    assert lines[1].split() == ["R1", "26.05", "12.50"]
    assert lines[2].split() == ["R5", "64.00", "-"]
    assert lines[3].split() == ["mIoU", "25.00"]
    assert lines[4].split() == ["n_queries", "453"]


def test_corpus_defaults_are_tvrs_cutoffs_with_r5():
    queries = [_query("a", "v1", (0.0, 10.0))]
    ranked = [("v9", 0.0, 10.0, 1.0)] * 4 + [("v1", 0.0, 10.0, 0.5)]  # the hit is 5th
    metrics = corpus_metrics({"a": ranked}, queries)
    assert [k for k in metrics if k.startswith("R") and k.endswith("@0.5")] == [
        "R1@0.5", "R5@0.5", "R10@0.5", "R100@0.5"]
    assert (metrics["R1@0.5"], metrics["R5@0.5"]) == (0.0, 100.0)


def test_integer_qids_match_only_integers():
    queries = [_query(12404, "v1", (0.0, 10.0))]
    assert single_video_metrics({12404: np.array([[0.0, 10.0]])}, queries)["R1@0.7"] == 100.0
    with pytest.raises(ValueError, match=r"'12404'.*as ints, e\.g\. 12404: ids must match in "
                                         r"type too"):
        single_video_metrics({"12404": np.array([[0.0, 10.0]])}, queries)
    with pytest.raises(ValueError, match=r"'nope'$"):
        single_video_metrics({"nope": np.array([[0.0, 10.0]])}, queries)
