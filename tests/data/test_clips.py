import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from moment_search.data.clips import clip_bounds, pool_clips


def test_pool_clips_equal_spans_mean():
    features = np.arange(8, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)
    clips = pool_clips(features, 4, duration=8.0, feature_rate=1.0)
    np.testing.assert_allclose(clips[:, 0], [0.5, 2.5, 4.5, 6.5])


def test_pool_clips_short_video_repeats_rows():
    features = np.array([[1.0], [3.0]], dtype=np.float32)
    clips = pool_clips(features, 4, duration=2.0, feature_rate=1.0)
    np.testing.assert_allclose(clips[:, 0], [1.0, 1.0, 3.0, 3.0])


def test_feature_rate_limits_extent():
    # 10 rows at 1 feature/s but the video lasts 5 s: rows 5..9 are padding and never pooled.
    features = np.concatenate([np.zeros((5, 1)), np.full((5, 1), 100.0)]).astype(np.float32)
    clips = pool_clips(features, 5, duration=5.0, feature_rate=1.0)
    assert clips.max() == 0.0


def test_bad_input():
    with pytest.raises(ValueError, match="T >= 1"):
        pool_clips(np.zeros((0, 4), np.float32), 4, 1.0)
    with pytest.raises(ValueError, match="n_clips"):
        pool_clips(np.zeros((3, 4), np.float32), 0, 1.0)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 200), st.integers(1, 64))
def test_bounds_cover_every_clip(n_features, n_clips):
    lo, hi = clip_bounds(n_features, n_clips, float(n_features))
    assert (lo >= 0).all() and (hi <= n_features).all() and (hi > lo).all()
    assert (np.diff(lo) >= 0).all()


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 120), st.integers(1, 40), st.integers(0, 1000))
def test_pool_matches_loop(n_features, n_clips, seed):
    features = np.random.default_rng(seed).normal(size=(n_features, 3)).astype(np.float32)
    lo, hi = clip_bounds(n_features, n_clips, float(n_features))
    expected = np.stack([features[a:b].mean(0) for a, b in zip(lo, hi, strict=True)])
    np.testing.assert_allclose(pool_clips(features, n_clips, n_features), expected, atol=1e-5)
