"""moment_detr's mAP: hand-worked cases, and the fast form against the definition on random data."""

import numpy as np
import pytest

from moment_search.data.corpus import Query
from moment_search.eval.average_precision import (
    AP_THRESHOLDS,
    interpolated_average_precision,
    mean_average_precision,
    query_average_precision,
)
from moment_search.geometry.spans import temporal_iou


def test_thresholds_are_moment_detrs():
    assert AP_THRESHOLDS == (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)


def test_interpolation_takes_the_best_precision_at_higher_recall():
    # hits at ranks 2 and 3 of 3 with 2 windows: precision 0, 1/2, 2/3; recall 0, 1/2, 1
    ap = interpolated_average_precision(np.array([0.0, 0.5, 2 / 3]), np.array([0.0, 0.5, 1.0]))
    assert ap == pytest.approx(0.5 * 2 / 3 + 0.5 * 2 / 3)


def test_a_miss_before_the_hit_halves_the_ap():
    truth = np.array([[0.0, 10.0]])
    preds = np.array([[20.0, 30.0, 0.9], [0.0, 10.0, 0.8]])
    assert query_average_precision(preds, truth, (0.5,))[0] == pytest.approx(0.5)


def test_predictions_are_ranked_by_score_not_by_order():
    truth = np.array([[0.0, 10.0]])
    preds = np.array([[20.0, 30.0, 0.1], [0.0, 10.0, 0.8]])
    assert query_average_precision(preds, truth, (0.5,))[0] == 1.0
    no_scores = preds[:, :2]  # then the given order is the ranking
    assert query_average_precision(no_scores, truth, (0.5,))[0] == pytest.approx(0.5)


def test_a_window_is_matched_once_and_every_window_counts():
    truth = np.array([[0.0, 10.0], [20.0, 30.0]])
    twice = np.array([[0.0, 10.0, 0.9], [0.0, 10.0, 0.8]])  # the second is a duplicate: FP
    assert query_average_precision(twice, truth, (0.5,))[0] == pytest.approx(0.5)
    both = np.array([[0.0, 10.0, 0.9], [20.0, 30.0, 0.8]])
    assert query_average_precision(both, truth, (0.5,))[0] == 1.0


def test_only_the_first_ten_predictions_count():
    truth = np.array([[0.0, 10.0]])
    preds = np.array([[50.0, 60.0, 1.0]] * 10 + [[0.0, 10.0, 2.0]])  # the hit is 11th in order
    assert query_average_precision(preds, truth)[0] == 0.0
    assert query_average_precision(preds, truth, max_predictions=None)[0] == 1.0
    assert not query_average_precision(np.zeros((0, 3)), truth).any()


def _reference_ap(preds: np.ndarray, truth: np.ndarray, threshold: float) -> float:
    """The definition, spelled out: greedy one-to-one matching in score order, then the mean
    over windows of the best precision at or after the rank where each is recalled."""
    preds = preds[:10]
    order = sorted(range(len(preds)), key=lambda i: -preds[i, 2])
    taken, hits = set(), []
    for i in order:
        ious = temporal_iou(preds[i:i + 1, :2], truth)[0]
        free = [g for g in range(len(truth)) if g not in taken and ious[g] >= threshold]
        best = max(free, key=lambda g: ious[g], default=None)  # the best window still free
        hits.append(best is not None)
        taken |= {best} - {None}
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    recalled_at = [k for k, hit in enumerate(hits) if hit]
    return sum(precision[k:].max() for k in recalled_at) / len(truth)


def test_matches_the_definition_on_random_queries():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n_truth, n_preds = int(rng.integers(1, 4)), int(rng.integers(1, 14))
        truth = np.sort(rng.uniform(0, 30, size=(n_truth, 2)), axis=1)
        starts = rng.uniform(0, 25, size=n_preds)
        preds = np.stack([starts, starts + rng.uniform(1, 15, n_preds),
                          rng.integers(0, 5, n_preds).astype(float)], axis=1)  # ties in score
        fast = query_average_precision(preds, truth)
        slow = [_reference_ap(preds, truth, t) for t in AP_THRESHOLDS]
        np.testing.assert_allclose(fast, slow, atol=1e-12)


def test_mean_over_queries_in_percent():
    queries = [Query("a", "x", "v", ((0.0, 10.0),)), Query(7, "y", "v", ((0.0, 10.0),))]
    predictions = {"a": np.array([[0.0, 10.0, 1.0]]), 7: np.array([[20.0, 30.0, 1.0]])}
    assert mean_average_precision(predictions, queries) == {
        "mAP@0.5": 50.0, "mAP@0.75": 50.0, "mAP": 50.0}
