"""Tests for moment_search.geometry.spans: hand cases, slow references, properties, errors."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from moment_search.geometry.spans import (
    as_spans,
    clip_span_to_seconds,
    nms,
    seconds_to_clip_index,
    soft_iou_labels,
    temporal_iou,
    temporal_iou_diag,
    temporal_iou_torch,
)

SEEDED = settings(derandomize=True, deadline=None, max_examples=100)

_start = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False, allow_infinity=False)
_length = st.floats(min_value=0.0, max_value=1e3, allow_nan=False, allow_infinity=False)
_span = st.tuples(_start, _length).map(lambda t: (t[0], t[0] + t[1]))
span_sets = st.lists(_span, min_size=1, max_size=12).map(lambda s: np.array(s, dtype=np.float64))
# Few distinct values on a coarse grid: plenty of ties, containments and touching spans.
_grid_span = st.tuples(st.integers(0, 10), st.integers(0, 4)).map(lambda t: (t[0], t[0] + t[1]))
grid_span_sets = st.lists(_grid_span, min_size=1, max_size=15).map(
    lambda s: np.array(s, dtype=np.float64)
)


def _iou_scalar(a, b):
    """Plain-Python IoU of two spans, the slow reference."""
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = (a[1] - a[0]) + (b[1] - b[0]) - inter
    if union == 0:
        return 1.0 if (a[0] == b[0] and a[1] == b[1]) else 0.0
    return inter / union


def _nms_reference(spans, scores, threshold):
    """Textbook greedy NMS over a Python loop."""
    order = sorted(range(len(spans)), key=lambda k: (-scores[k], k))
    keep = []
    for k in order:
        if all(_iou_scalar(spans[k], spans[q]) <= threshold for q in keep):
            keep.append(k)
    return keep


# ---------------------------------------------------------------- IoU


def test_iou_hand_cases():
    a = np.array([[0.0, 2.0], [0.0, 4.0], [0.0, 1.0], [3.0, 3.0]])
    b = np.array([[1.0, 3.0], [1.0, 2.0], [3.0, 3.0]])
    expected = np.array(
        [
            [1 / 3, 0.5, 0.0],  # half-overlap; containment 1/2; point outside
            [0.5, 0.25, 0.0],  # point inside a span still has IoU 0
            [0.0, 0.0, 0.0],  # [0, 1] and [1, 3] touch: no overlap
            [0.0, 0.0, 1.0],  # identical points
        ]
    )
    np.testing.assert_allclose(temporal_iou(a, b), expected)


def test_iou_accepts_empty_and_int_input():
    assert temporal_iou(np.zeros((0, 2)), [[0, 1]]).shape == (0, 1)
    assert temporal_iou([[0, 2]], [[1, 3]]).dtype == np.float64
    assert temporal_iou(np.array([[0, 2]], np.float32), np.array([[1, 3]], np.float32)).dtype == (
        np.float32
    )


@SEEDED
@given(span_sets, span_sets)
def test_iou_matches_scalar_loop_symmetric_and_bounded(a, b):
    iou = temporal_iou(a, b)
    expected = [[_iou_scalar(x, y) for y in b] for x in a]
    np.testing.assert_array_equal(iou, expected)
    np.testing.assert_array_equal(iou, temporal_iou(b, a).T)
    assert ((iou >= 0) & (iou <= 1)).all()


@SEEDED
@given(span_sets)
def test_iou_with_itself_is_one(a):
    np.testing.assert_array_equal(np.diag(temporal_iou(a, a)), 1.0)
    np.testing.assert_array_equal(temporal_iou_diag(a, a), 1.0)


@SEEDED
@given(span_sets, st.floats(min_value=1e-3, max_value=1e3))
def test_disjoint_spans_have_zero_iou(a, gap):
    shift = (a[:, 1].max() - a[:, 0].min()) + gap
    np.testing.assert_array_equal(temporal_iou(a, a + shift), 0.0)


@SEEDED
@given(span_sets, span_sets)
def test_iou_diag_is_the_diagonal_of_pairwise(a, b):
    n = min(len(a), len(b))
    np.testing.assert_array_equal(temporal_iou_diag(a[:n], b[:n]), np.diag(temporal_iou(a, b))[:n])


@SEEDED
@given(
    grid_span_sets, st.floats(min_value=0.1, max_value=10), st.floats(min_value=-100, max_value=100)
)
def test_iou_is_invariant_to_time_unit_and_origin(a, scale, origin):
    # grid spans: arbitrary floats could lose a tiny length to rounding when shifted
    b = a[::-1] + 1.0
    np.testing.assert_allclose(
        temporal_iou(a * scale + origin, b * scale + origin), temporal_iou(a, b), atol=1e-6
    )


@SEEDED
@given(span_sets, span_sets)
def test_torch_iou_matches_numpy(a, b):
    got = temporal_iou_torch(torch.from_numpy(a), torch.from_numpy(b))
    np.testing.assert_allclose(got.numpy(), temporal_iou(a, b), rtol=0, atol=1e-12)


def test_torch_iou_is_differentiable_and_checks_shape():
    a = torch.tensor([[0.0, 2.0]], requires_grad=True)
    temporal_iou_torch(a, torch.tensor([[1.0, 3.0]])).sum().backward()
    assert torch.isfinite(a.grad).all() and a.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        temporal_iou_torch(torch.zeros(3), torch.zeros(1, 2))


# ---------------------------------------------------------------- NMS


def test_nms_hand_case_and_stable_ties():
    spans = [[0, 10], [1, 10], [20, 30], [0, 10]]
    assert nms(spans, [0.5, 0.9, 0.1, 0.9], 0.5).tolist() == [1, 2]
    # Equal scores: the lower index wins, then its duplicate is suppressed.
    assert nms([[0, 1], [0, 1]], [0.3, 0.3], 0.5).tolist() == [0]
    assert nms(spans, [0.5, 0.9, 0.1, 0.9], 1.0).tolist() == [1, 3, 0, 2]
    assert nms(np.zeros((0, 2)), [], 0.5).dtype == np.int64


@SEEDED
@given(
    grid_span_sets,
    st.data(),
    st.sampled_from([0.0, 0.3, 0.5, 0.7, 1.0]),
)
def test_nms_properties(spans, data, threshold):
    scores = np.array(
        data.draw(st.lists(st.integers(0, 4), min_size=len(spans), max_size=len(spans)))
    )
    keep = nms(spans, scores, threshold)
    assert keep.tolist() == _nms_reference(spans.tolist(), scores.tolist(), threshold)
    assert keep[0] == np.argmax(scores)  # the best span always survives
    assert (np.diff(scores[keep]) <= 0).all()  # descending score order
    kept_iou = temporal_iou(spans[keep], spans[keep])
    assert (kept_iou[~np.eye(len(keep), dtype=bool)] <= threshold).all()


@SEEDED
@given(grid_span_sets, st.integers(0, 20))
def test_nms_max_keep_is_a_prefix(spans, max_keep):
    scores = np.arange(len(spans))[::-1] % 3
    full = nms(spans, scores, 0.4)
    assert nms(spans, scores, 0.4, max_keep=max_keep).tolist() == full[:max_keep].tolist()


def test_nms_errors():
    with pytest.raises(ValueError, match="shape"):
        nms([[0, 1], [1, 2]], [0.5], 0.5)
    with pytest.raises(ValueError, match=r"scores\[1\] is NaN"):
        nms([[0, 1], [1, 2]], [0.5, np.nan], 0.5)
    with pytest.raises(ValueError, match="1.5"):
        nms([[0, 1]], [0.5], 1.5)
    with pytest.raises(ValueError, match="-1"):
        nms([[0, 1]], [0.5], 0.5, max_keep=-1)


# ---------------------------------------------------------------- clips <-> seconds


def test_clip_span_to_seconds_hand_cases():
    np.testing.assert_allclose(clip_span_to_seconds(0, 0, 16, 32.0), [0.0, 2.0])
    np.testing.assert_allclose(
        clip_span_to_seconds(np.array([0, 3, 0]), np.array([15, 3, 1]), 16, 32.0),
        [[0.0, 32.0], [6.0, 8.0], [0.0, 4.0]],
    )
    # one duration per proposal broadcasts
    np.testing.assert_allclose(
        clip_span_to_seconds(np.array([0, 0]), np.array([1, 1]), 4, np.array([4.0, 8.0])),
        [[0.0, 2.0], [0.0, 4.0]],
    )


@SEEDED
@given(st.sampled_from([1, 4, 16, 64, 128]), st.floats(min_value=0.5, max_value=1e4), st.data())
def test_clip_index_round_trip(n_clips, duration, data):
    i = data.draw(st.integers(0, n_clips - 1))
    j = data.draw(st.integers(i, n_clips - 1))
    start, end = clip_span_to_seconds(i, j, n_clips, duration)
    assert tuple(map(int, seconds_to_clip_index(start, end, n_clips, duration))) == (i, j)


@SEEDED
@given(st.sampled_from([4, 16, 64]), st.floats(min_value=1, max_value=500), st.data())
def test_seconds_snap_to_the_nearest_boundaries(n_clips, duration, data):
    start = data.draw(st.floats(min_value=0, max_value=duration))
    end = data.draw(st.floats(min_value=start, max_value=duration))
    i, j = seconds_to_clip_index(start, end, n_clips, duration)
    assert 0 <= i <= j < n_clips
    snapped = clip_span_to_seconds(i, j, n_clips, duration)
    clip_s = duration / n_clips
    if end - start >= clip_s:  # long enough never to collapse: each boundary moves <= half a clip
        assert abs(snapped[0] - start) <= clip_s / 2 + 1e-9
        assert abs(snapped[1] - end) <= clip_s / 2 + 1e-9
    else:  # the snapped moment at least contains the window's midpoint
        assert snapped[0] - 1e-9 <= (start + end) / 2 <= snapped[1] + 1e-9


def test_seconds_to_clip_index_clamps_and_collapses():
    i, j = seconds_to_clip_index(
        np.array([-5.0, 0.6, 30.0, 0.0]), np.array([50.0, 0.9, 40.0, 0.0]), 10, 10.0
    )
    assert i.tolist() == [0, 0, 9, 0]
    assert j.tolist() == [9, 0, 9, 0]


# ---------------------------------------------------------------- soft labels


def test_soft_iou_labels_numpy_and_torch():
    iou = np.array([0.0, 0.3, 0.5, 0.6, 0.7, 1.0])
    expected = [0.0, 0.0, 0.5, 0.75, 1.0, 1.0]
    np.testing.assert_allclose(soft_iou_labels(iou, 0.3, 0.7), expected)
    got = soft_iou_labels(torch.tensor(iou, dtype=torch.float32), 0.3, 0.7)
    assert got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-6)
    assert soft_iou_labels(np.float32([0.5]), 0.0, 1.0).dtype == np.float32
    with pytest.raises(ValueError, match="o_min < o_max"):
        soft_iou_labels(iou, 0.7, 0.3)


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.zeros(2), r"shape \(N, 2\).*\(2,\)"),
        (np.zeros((2, 3)), r"\(2, 3\)"),
        ([[0.0, 1.0], [np.nan, 2.0]], r"spans\[1\].*not finite"),
        ([[0.0, np.inf]], r"spans\[0\].*not finite"),
        ([[0.0, 1.0], [5.0, 3.0]], r"spans\[1\] = \[5.0, 3.0\] has end < start"),
        ([["a", "b"]], "numeric"),
    ],
)
def test_bad_spans_are_rejected(bad, message):
    with pytest.raises(ValueError, match=message):
        as_spans(bad)


def test_iou_names_the_bad_argument():
    with pytest.raises(ValueError, match=r"b\[0\]"):
        temporal_iou([[0, 1]], [[2, 1]])
    with pytest.raises(ValueError, match="as many spans"):
        temporal_iou_diag([[0, 1]], [[0, 1], [1, 2]])


@pytest.mark.parametrize("n_clips", [0, -3, 2.5, True])
def test_bad_n_clips(n_clips):
    with pytest.raises(ValueError, match=f"n_clips.*{n_clips!r}"):
        clip_span_to_seconds(0, 0, n_clips, 10.0)
    with pytest.raises(ValueError, match="n_clips"):
        seconds_to_clip_index(0.0, 1.0, n_clips, 10.0)


def test_bad_clip_grid_arguments():
    with pytest.raises(ValueError, match="duration"):
        clip_span_to_seconds(0, 0, 4, 0.0)
    with pytest.raises(ValueError, match="duration.*nan"):
        seconds_to_clip_index(0.0, 1.0, 4, float("nan"))
    with pytest.raises(ValueError, match=r"\(i, j\) = \(2, 1\)"):
        clip_span_to_seconds(np.array([0, 2]), np.array([0, 1]), 4, 10.0)
    with pytest.raises(ValueError, match=r"\(0, 4\)"):
        clip_span_to_seconds(0, 4, 4, 10.0)
    with pytest.raises(ValueError, match="integer"):
        clip_span_to_seconds(0.0, 1.0, 4, 10.0)
    with pytest.raises(ValueError, match="end < start"):
        seconds_to_clip_index(3.0, 1.0, 4, 10.0)
    with pytest.raises(ValueError, match="not finite"):
        seconds_to_clip_index(np.nan, 1.0, 4, 10.0)
