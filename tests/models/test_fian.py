import numpy as np
import pytest
import torch

from moment_search.models.base import CheckpointError
from moment_search.models.fian import (
    FIAN,
    FIANConfig,
    anchor_layout,
    anchor_strides,
    decode_spans,
    moments_in_seconds,
    pool_video_steps,
)
from moment_search.models.fian_blocks import CrossModalGuidedAttention, LengthProjection
from moment_search.models.pln import PLN
from moment_search.train.fian_trainer import fian_loss

CONFIG = FIANConfig(feature_dim=6, token_dim=5, hidden_dim=8, heads=2, n_steps=16,
                    kernels=(4, 6), max_tokens=8, dropout=0.0)


def inputs(config=CONFIG, batch=3, length=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    steps = torch.randn(batch, config.n_steps, config.feature_dim, generator=g)
    tokens = torch.randn(batch, length, config.token_dim, generator=g)
    mask = torch.ones(batch, length, dtype=torch.bool)
    if batch > 1:
        mask[1, 3:] = False
    return steps, tokens, mask


def model_for(config=CONFIG, seed=0):
    torch.manual_seed(seed)
    return FIAN(config).eval()


def test_forward_shapes():
    model = model_for()
    out = model(*inputs())
    assert model.n_anchors == 13 + 11  # strides max(1, round(4 / 8)) = 1 and round(6 / 8) = 1
    assert out.logits.shape == (3, model.n_anchors) and torch.isfinite(out.logits).all()
    assert out.offsets.shape == (3, model.n_anchors, 2)


def test_anchor_layout_of_the_paper_by_hand():
    # Charades-STA: 64 steps, windows 16, 24, 32, 40, stride 1/8 of the window
    assert anchor_strides((16, 24, 32, 40), 0.125) == (2, 3, 4, 5)
    anchors = anchor_layout(64, (16, 24, 32, 40), 0.125)
    counts = [(64 - 16) // 2 + 1, (64 - 24) // 3 + 1, (64 - 32) // 4 + 1, (64 - 40) // 5 + 1]
    assert counts == [25, 14, 9, 5] and len(anchors) == 53
    expected_heads = {0: [0, 16], 1: [2, 18], 24: [48, 64], 25: [0, 24], 38: [39, 63],
                      39: [0, 32], 47: [32, 64], 48: [0, 40], 52: [20, 60]}
    for row, span in expected_heads.items():
        assert anchors[row].tolist() == span
    # the paper's Fig. 5: C_2 = (1 + d - p, 2d - p) (1-based, inclusive) with overlap p = d - s
    d, p = 16, 16 - 2
    assert anchors[1].tolist() == [1 + d - p - 1, 2 * d - p]
    # small case: 10 steps, window 4, stride 2
    assert anchor_layout(10, (4,), 0.5).tolist() == [[0, 4], [2, 6], [4, 8], [6, 10]]


def test_anchor_layout_matches_the_convolution_outputs():
    config = FIANConfig(feature_dim=6, token_dim=5, hidden_dim=8, heads=2, max_tokens=8)
    model = model_for(config)  # the paper's 64 steps and windows
    assert model.n_anchors == 53
    assert model(*inputs(config, batch=2)).logits.shape == (2, 53)
    assert model_for().n_anchors == len(anchor_layout(16, (4, 6), 0.125))


def test_padded_tokens_change_nothing():
    model = model_for()
    steps, tokens, mask = inputs(batch=1, length=4)
    mask[:] = True
    padded = torch.cat([tokens, 100 * torch.randn(1, 3, CONFIG.token_dim)], 1)
    padded_mask = torch.cat([mask, torch.zeros(1, 3, dtype=torch.bool)], 1)
    alone = model(steps, tokens, mask)
    with_padding = model(steps, padded, padded_mask)
    torch.testing.assert_close(alone.logits, with_padding.logits)
    torch.testing.assert_close(alone.offsets, with_padding.offsets)
    # in a batch with a longer query, the short one's answer is its answer alone
    other_steps, other_tokens, _ = inputs(batch=1, length=7, seed=5)
    batch = model(torch.cat([steps, other_steps]),
                  torch.cat([padded, other_tokens]),
                  torch.cat([torch.cat([padded_mask, torch.zeros(1, 0, dtype=torch.bool)], 1),
                             torch.ones(1, 7, dtype=torch.bool)]))
    torch.testing.assert_close(batch.logits[:1], alone.logits)


def test_length_projection_ignores_padded_rows_and_maps_tokens_to_steps():
    projection = LengthProjection(max_tokens=4, n_steps=3)
    with torch.no_grad():
        projection.weight.copy_(torch.arange(12.0).reshape(3, 4))
        projection.bias.copy_(torch.tensor([[1.0], [0.0], [-1.0]]))
    query = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [99.0, 99.0]]])  # (1, 3, 2), last row padding
    mask = torch.tensor([[True, True, False]])
    out = projection(query, mask)
    # step v: sum_q W[v, q] * Q[q] + b[v] over the two real tokens
    expected = [[0 * 1 + 1 * 3 + 1, 0 * 2 + 1 * 4 + 1], [4 * 1 + 5 * 3, 4 * 2 + 5 * 4],
                [8 * 1 + 9 * 3 - 1, 8 * 2 + 9 * 4 - 1]]
    torch.testing.assert_close(out, torch.tensor([expected], dtype=torch.float32))


def test_cga_is_the_gated_multi_head_attention():
    torch.manual_seed(0)
    cga = CrossModalGuidedAttention(4, 2).eval()
    query, value = torch.randn(1, 3, 4), torch.randn(1, 5, 4)
    mask = torch.tensor([[True, True, True, False, False]])
    attended = cga.cma(query, value[:, :3], value[:, :3], need_weights=False)[0]  # Eq. 4-5
    both = cga.gate(torch.cat([query, attended], -1))
    information, gate = both[..., :4], both[..., 4:]
    torch.testing.assert_close(cga(query, value, mask), information * torch.sigmoid(gate))


def test_decode_spans_by_hand():
    anchors = torch.tensor([[0, 4], [4, 8]])
    offsets = torch.tensor([[[-1.5, 0.5], [3.0, -3.5]]])  # the second one crosses its ends
    spans = decode_spans(anchors, offsets, n_steps=8)
    assert spans.tolist() == [[[0.0, 4.5], [4.5, 7.0]]]
    # end before start after clamping: a one-step span inside the video
    assert decode_spans(anchors, torch.tensor([[[9.0, 9.0], [0.0, 0.0]]]), 8).tolist()[0][0] \
        == [7.0, 8.0]
    moments = moments_in_seconds(torch.tensor([0.2, 0.9]), spans[0], duration=16.0, n_steps=8)
    np.testing.assert_allclose(moments, [[0.0, 9.0, 0.2], [9.0, 14.0, 0.9]], rtol=1e-6)


def test_bad_inputs_raise_clear_errors():
    model = model_for()
    steps, tokens, mask = inputs()
    empty = mask.clone()
    empty[2] = False
    with pytest.raises(ValueError, match="query 2 has none"):
        model(steps, tokens, empty)
    with pytest.raises(ValueError, match="max_tokens"):
        model(steps, torch.randn(3, 9, 5), torch.ones(3, 9, dtype=torch.bool))
    with pytest.raises(ValueError, match="pool_video_steps"):
        model(steps[:, :10], tokens, mask)
    with pytest.raises(ValueError, match="kernels"):
        FIANConfig(n_steps=16, kernels=(8, 24))
    with pytest.raises(ValueError, match="branches"):
        FIANConfig(branches=("video", "video"))
    with pytest.raises(ValueError, match="heads"):
        FIAN(FIANConfig(hidden_dim=10, heads=4))


def test_a_video_shorter_than_the_smallest_kernel_is_stretched_to_the_steps():
    features = np.arange(3 * 6, dtype=np.float32).reshape(3, 6)  # 3 rows, kernels of 4 and 6
    steps = pool_video_steps(features, 16, duration=3.0, feature_rate=1.0)
    assert steps.shape == (16, 6)
    np.testing.assert_array_equal(steps[0].numpy(), features[0])
    np.testing.assert_array_equal(steps[-1].numpy(), features[-1])
    _, tokens, mask = inputs(batch=1)
    assert torch.isfinite(model_for()(steps[None], tokens, mask).logits).all()
    with pytest.raises(ValueError, match="T >= 1"):
        pool_video_steps(np.zeros((0, 6), np.float32), 16, duration=3.0)


@pytest.mark.parametrize("branches", [("video",), ("query",)])
def test_one_branch_ablation(branches):
    config = FIANConfig(feature_dim=6, token_dim=5, hidden_dim=8, heads=2, n_steps=16,
                        kernels=(4, 6), max_tokens=8, branches=branches)
    model = model_for(config)
    assert len(model.branches) == 1 and model.branches[0].first == branches[0]
    assert model.integration.norm.normalized_shape == (8,)
    assert model(*inputs(config)).logits.shape == (3, model.n_anchors)


def test_save_load_round_trip_gives_identical_scores(tmp_path):
    model = model_for()
    steps, tokens, mask = inputs()
    model.save_pretrained(tmp_path / "fian", extra={"feature_rate": 1.0})
    loaded = FIAN.from_pretrained(tmp_path / "fian")
    assert loaded.config == CONFIG and loaded.config.kernels == (4, 6)
    query = model.encode_query(tokens, mask)
    for a, b in zip(model.score_encoded(steps, query),
                    loaded.score_encoded(steps, loaded.encode_query(tokens, mask)), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(CheckpointError, match="fian"):
        PLN.from_pretrained(tmp_path / "fian")


def test_training_steps_lower_the_loss():
    model = model_for().train()
    steps, tokens, mask = inputs(batch=4)
    g = torch.Generator().manual_seed(3)
    iou = torch.rand(4, model.n_anchors, generator=g)
    targets = torch.randn(4, model.n_anchors, 2, generator=g)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        out = model(steps, tokens, mask)
        terms = fian_loss(out.logits, out.offsets, iou, targets, tau=0.55, alpha=0.5)
        optimizer.zero_grad()
        terms["total"].backward()
        optimizer.step()
        losses.append(float(terms["total"].detach()))
    assert set(terms) == {"align", "boundary", "total"}
    assert losses[-1] < 0.9 * losses[0]
