import numpy as np
import pytest
import torch

from moment_search.models.base import CheckpointError
from moment_search.models.drn import (
    DRN,
    DRNConfig,
    decode_boxes,
    level_lengths,
    location_embedding,
    location_layout,
    select_candidates,
)
from moment_search.models.fian import FIAN
from moment_search.train.drn_data import location_targets

CONFIG = DRNConfig(feature_dim=6, token_dim=5, lstm_dim=4, n_segments=8, channels=4, fpn_dim=8,
                   position_dim=3)


def inputs(config=CONFIG, batch=3, length=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    segments = torch.randn(batch, config.n_segments, config.feature_dim, generator=g)
    tokens = torch.randn(batch, length, config.token_dim, generator=g)
    mask = torch.ones(batch, length, dtype=torch.bool)
    if batch > 1:
        mask[1, 3:] = False
    return segments, tokens, mask


def model_for(config=CONFIG, seed=0):
    torch.manual_seed(seed)
    model = DRN(config).eval()
    for p in model.parameters():  # the official init makes the heads near-constant: perturb
        p.data += 0.1 * torch.randn_like(p)
    return model


def test_forward_shapes():
    model = model_for()
    out = model(*inputs())
    assert model.n_locations == 8 + 4 + 2
    assert out.logits.shape == (3, 14) and out.iou_logits.shape == (3, 14)
    assert out.distances.shape == (3, 14, 2) and (out.distances > 0).all()
    assert torch.isfinite(out.logits).all() and torch.isfinite(out.iou_logits).all()


def test_pyramid_level_shapes():
    model = DRN(DRNConfig()).eval()  # the shipped layout: 32 segments, strides 1, 2, 4
    segments, tokens, mask = inputs(DRNConfig(), batch=2)
    levels = model.pyramid(segments, model.encode_query(tokens, mask))
    assert [tuple(p.shape) for p in levels] == [(2, 128, 32), (2, 128, 16), (2, 128, 8)]
    assert model.n_locations == 56
    assert level_lengths(30) == (30, 15, 8)  # an odd length: ceil halves


def test_location_layout_by_hand():
    centres, levels = location_layout(8)
    np.testing.assert_allclose(centres, [0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5,
                                         1, 3, 5, 7, 2, 6])
    np.testing.assert_array_equal(levels, [0] * 8 + [1] * 4 + [2] * 2)
    embedding = location_embedding(4)  # l_t = [(t - 0.5)/T, (t + 0.5)/T, 1/T]
    np.testing.assert_allclose(embedding[0], [0.125, 0.375, 0.25])
    np.testing.assert_allclose(embedding[3], [0.875, 1.125, 0.25])


def test_regression_targets_by_hand():
    centres, levels = location_layout(32)
    low, high = DRNConfig().range_low, DRNConfig().range_high
    # a short moment [2, 5] segments: level-0 locations 2.5, 3.5, 4.5 are inside, max distance
    # 2.5, 1.5, 2.5 lies in [-1, 6]; level-1 location 3 is inside but max(1, 2) < 5.6
    labels, distances = location_targets(np.array([[2.0, 5.0]]), centres, levels, low, high)
    positive = np.flatnonzero(labels)
    np.testing.assert_allclose(centres[positive], [2.5, 3.5, 4.5])
    np.testing.assert_allclose(distances[positive], [[0.5, 2.5], [1.5, 1.5], [2.5, 0.5]])
    outside = np.flatnonzero((centres < 2) | (centres > 5))
    assert labels[outside].sum() == 0 and np.abs(distances[outside]).sum() == 0
    # a long moment [0.5, 31]: level 2 (range [11, inf)) takes it, level 0 ([-1, 6]) does not
    labels, distances = location_targets(np.array([[0.5, 31.0]]), centres, levels, low, high)
    assert labels[levels == 0].sum() == 0
    i = np.flatnonzero((levels == 2) & (centres == 14))[0]
    assert labels[i] == 1 and tuple(distances[i]) == (13.5, 17.0)
    # two windows: a location inside both takes the shorter one
    labels, distances = location_targets(np.array([[0.0, 6.0], [2.0, 5.0]]), centres, levels,
                                         low, high)
    j = np.flatnonzero(centres == 3.5)[0]
    assert tuple(distances[j]) == (1.5, 1.5)
    with pytest.raises(ValueError, match="at least one"):
        location_targets(np.zeros((0, 2)), centres, levels, low, high)


def test_padding_changes_nothing():
    model = model_for()
    segments, tokens, mask = inputs(batch=2, length=4)
    mask[1, 2:] = False
    padded = torch.cat([tokens, torch.randn(2, 3, 5)], 1)  # garbage past each query
    padded_mask = torch.cat([mask, torch.zeros(2, 3, dtype=torch.bool)], 1)
    a, b = model(segments, tokens, mask), model(segments, padded, padded_mask)
    torch.testing.assert_close(a.logits, b.logits)
    torch.testing.assert_close(a.distances, b.distances)
    torch.testing.assert_close(a.iou_logits, b.iou_logits)
    # and a batch row equals the same query alone
    alone = model(segments[1:], tokens[1:, :2], mask[1:, :2])
    torch.testing.assert_close(alone.logits, a.logits[1:], atol=1e-6, rtol=1e-5)


def test_query_and_video_are_read():
    model = model_for()
    segments, tokens, mask = inputs(batch=2)
    base = model(segments, tokens, mask).logits
    assert not torch.allclose(base, model(segments, tokens.flip(0), mask.flip(0)).logits)
    assert not torch.allclose(base, model(segments.flip(0), tokens, mask).logits)


def test_heads_start_from_the_official_prior():
    out = DRN(CONFIG).eval()(*inputs())
    torch.testing.assert_close(torch.sigmoid(out.logits), torch.full((3, 14), 0.01), atol=2e-3,
                               rtol=0)


def test_decode_and_candidates():
    centres = torch.tensor([1.0, 4.0])
    boxes = decode_boxes(centres, torch.tensor([[[2.0, 1.0], [1.0, 9.0]]]), 8)
    torch.testing.assert_close(boxes, torch.tensor([[[0.0, 2.0], [3.0, 8.0]]]))
    matching = torch.tensor([0.01, 0.5, 0.2, 0.9])
    scores = torch.tensor([0.9, 0.1, 0.3, 0.2])
    assert select_candidates(matching, scores, 0.05, 32).tolist() == [2, 3, 1]
    assert select_candidates(matching, scores, 0.05, 2).tolist() == [2, 3]
    assert select_candidates(matching, scores, 0.95, 32).tolist() == [0]  # none passes: the best


def test_final_score_with_and_without_the_iou_head():
    model = model_for()
    segments, tokens, mask = inputs()
    query = model.encode_query(tokens, mask)
    matching, scores, boxes = model.score_encoded(segments, query)
    out = model.localize(segments, query)
    torch.testing.assert_close(scores, matching * torch.sigmoid(out.iou_logits))
    model.config.use_iou_score = False
    assert torch.equal(model.score_encoded(segments, query)[1], matching)
    assert ((boxes[..., 0] >= 0) & (boxes[..., 1] <= 8)).all()


def test_bad_inputs():
    model = model_for()
    segments, tokens, mask = inputs()
    mask[2] = False
    with pytest.raises(ValueError, match="at least one token"):
        model(segments, tokens, mask)
    with pytest.raises(ValueError, match="segments must have shape"):
        model(segments[:, :5], *inputs()[1:])
    with pytest.raises(ValueError, match="range_low"):
        DRNConfig(range_low=(0.0, 1.0))


def test_save_and_load(tmp_path):
    model = model_for()
    model.save_pretrained(tmp_path / "drn", extra={"feature_rate": 1.0})
    loaded = DRN.from_pretrained(tmp_path / "drn")
    assert loaded.config == model.config
    x = inputs()
    torch.testing.assert_close(loaded(*x).logits, model(*x).logits)
    with pytest.raises(CheckpointError, match="expected 'fian'"):
        FIAN.from_pretrained(tmp_path / "drn")
