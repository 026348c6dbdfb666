"""Tests for moment_search.geometry.proposals: 2D-TAN masks, proposal order, map pooling."""

import numpy as np
import pytest
import torch

from moment_search.geometry.proposals import (
    SCALE_LAYERS,
    gather_proposals,
    map_max_pool,
    num_proposals,
    proposal_index,
    proposal_mask,
    proposal_spans,
    scale_layers_for,
)
from moment_search.geometry.spans import clip_span_to_seconds


def _two_d_tan_cells(n_clips, scale_layers):
    """Cells 2D-TAN's SparsePropMaxPool fills, by running its pooling cascade on clip ranges.

    Each position of the pooled sequence covers a clip range; MaxPool1d(kernel, stride) merges
    ranges exactly as it merges features. Scale 0 opens with MaxPool1d(1, 1), later scales with
    MaxPool1d(3, 2); every other layer is MaxPool1d(2, 1); each layer's outputs are proposals.
    """
    ranges = [(k, k) for k in range(n_clips)]
    cells = set()
    for scale, n_layers in enumerate(scale_layers):
        for layer in range(n_layers):
            if layer == 0:
                kernel, stride = (1, 1) if scale == 0 else (3, 2)
            else:
                kernel, stride = 2, 1
            n_out = max(0, (len(ranges) - kernel) // stride + 1)
            ranges = [
                (ranges[m * stride][0], ranges[m * stride + kernel - 1][1]) for m in range(n_out)
            ]
            cells.update(ranges)
    return cells


@pytest.mark.parametrize(
    ("n_clips", "expected"),
    [(1, 1), (4, 10), (8, 36), (16, 136), (32, 428), (64, 1104), (128, 2548)],
)
def test_proposal_counts(n_clips, expected):
    assert num_proposals(n_clips) == expected
    assert proposal_mask(n_clips).sum() == expected
    assert proposal_index(n_clips).shape == (expected, 2)


@pytest.mark.parametrize("n_clips", sorted(SCALE_LAYERS))
def test_mask_matches_the_2d_tan_pooling_cascade(n_clips):
    cells = _two_d_tan_cells(n_clips, SCALE_LAYERS[n_clips])
    assert set(map(tuple, proposal_index(n_clips).tolist())) == cells


@pytest.mark.parametrize("n_clips", sorted(SCALE_LAYERS))
def test_mask_shape_short_moments_dense_long_sparse(n_clips):
    mask = proposal_mask(n_clips)
    i, j = np.indices(mask.shape)
    assert not mask[i > j].any()
    assert mask[(i <= j) & (j - i < 16)].all()  # every moment of up to 16 clips
    assert mask[0, n_clips - 1]  # the whole video
    if n_clips > 16:  # 2D-TAN's quirk: its kernel-3 pooling skips moments of exactly 17 clips
        assert not mask.diagonal(16).any() and mask[0, 17]
    strides = []
    for offset in range(n_clips):  # offset = length - 1
        starts = np.flatnonzero(mask.diagonal(offset))
        if starts.size:
            stride = int(starts[1] - starts[0]) if starts.size > 1 else n_clips
            np.testing.assert_array_equal(starts, np.arange(0, n_clips - offset, stride))
            assert starts[-1] + stride + offset >= n_clips  # the sampled starts reach the end
            strides.append(stride)
    assert strides == sorted(strides)  # sparser as moments get longer


def test_small_maps_are_dense_and_schedules_are_explicit():
    assert proposal_mask(5).tolist() == np.triu(np.ones((5, 5), bool)).tolist()
    assert scale_layers_for(64) == (16, 8, 8)
    assert num_proposals(48, scale_layers=(16, 8, 8)) == len(_two_d_tan_cells(48, (16, 8, 8)))
    with pytest.raises(ValueError, match="48 clips"):
        proposal_mask(48)
    with pytest.raises(ValueError, match="n_clips.*0"):
        proposal_index(0)
    with pytest.raises(ValueError, match="scale_layers"):
        proposal_mask(16, scale_layers=(16, 0))
    with pytest.raises(TypeError):
        SCALE_LAYERS[16] = (1,)


def test_mask_is_a_fresh_copy():
    mask = proposal_mask(16)
    mask[:] = False
    assert proposal_mask(16).sum() == 136


@pytest.mark.parametrize("n_clips", [16, 64])
def test_proposal_index_is_row_major(n_clips):
    index = proposal_index(n_clips)
    assert index.dtype == np.int64
    keys = index[:, 0] * n_clips + index[:, 1]
    assert (np.diff(keys) > 0).all()
    np.testing.assert_array_equal(index, np.stack(np.nonzero(proposal_mask(n_clips)), axis=1))


def test_proposal_spans_are_seconds_in_proposal_order():
    spans = proposal_spans(16, 32.0)
    assert spans.shape == (136, 2)
    np.testing.assert_allclose(spans[:2], [[0.0, 2.0], [0.0, 4.0]])
    np.testing.assert_allclose(spans[-1], [30.0, 32.0])
    index = proposal_index(64)
    np.testing.assert_array_equal(
        proposal_spans(64, 120.0), clip_span_to_seconds(index[:, 0], index[:, 1], 64, 120.0)
    )


def _brute_force_map(clips):
    batch, n_clips, dim = clips.shape
    out = torch.zeros(batch, dim, n_clips, n_clips, dtype=clips.dtype)
    for i in range(n_clips):
        for j in range(i, n_clips):
            out[:, :, i, j] = clips[:, i : j + 1].max(dim=1).values
    return out


@pytest.mark.parametrize("n_clips", [1, 2, 7, 16])
def test_map_max_pool_matches_brute_force(n_clips):
    clips = torch.randn(2, n_clips, 3, generator=torch.Generator().manual_seed(n_clips))
    got = map_max_pool(clips)
    assert got.shape == (2, 3, n_clips, n_clips)
    torch.testing.assert_close(got, _brute_force_map(clips), rtol=0, atol=0)


def test_map_max_pool_keeps_dtype_and_gradients():
    clips = torch.randn(1, 5, 4, dtype=torch.float64, requires_grad=True)
    out = map_max_pool(clips)
    assert out.dtype == torch.float64
    out.sum().backward()
    # each clip is the max of at least its own one-clip cell, so every gradient is >= 1
    assert (clips.grad >= 1).all()
    with pytest.raises(ValueError, match=r"\(B, N, D\)"):
        map_max_pool(torch.zeros(5, 4))


@pytest.mark.parametrize("n_clips", [8, 64])
def test_gather_proposals_follows_proposal_index(n_clips):
    map2d = torch.randn(2, 3, n_clips, n_clips, generator=torch.Generator().manual_seed(0))
    got = gather_proposals(map2d, n_clips)
    index = proposal_index(n_clips)
    assert got.shape == (2, len(index), 3)
    for p, (i, j) in enumerate(index):
        torch.testing.assert_close(got[:, p], map2d[:, :, i, j], rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"\(B, D, 16, 16\)"):
        gather_proposals(map2d, 16)
