import pytest
import torch

from moment_search.models.base import CheckpointError
from moment_search.models.drn import DRN
from moment_search.models.lpnet import (
    LPNet,
    LPNetConfig,
    proposal_spans,
    sample_proposals,
)

CONFIG = LPNetConfig(feature_dim=6, token_dim=5, hidden_dim=8, n_heads=2, n_conv=2, kernel=3,
                     n_clips=10, n_proposals=7, n_samples=4, dynamic_dim=3)


def inputs(config=CONFIG, batch=3, length=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    clips = torch.randn(batch, config.n_clips, config.feature_dim, generator=g)
    tokens = torch.randn(batch, length, config.token_dim, generator=g)
    mask = torch.ones(batch, length, dtype=torch.bool)
    if batch > 1:
        mask[1, 3:] = False
    return clips, tokens, mask


def model_for(config=CONFIG, seed=0):
    torch.manual_seed(seed)
    return LPNet(config).eval()


def test_forward_shapes_and_ranges():
    model = model_for()
    out = model(*inputs())
    assert out.logits.shape == (3, 7)
    assert out.start_logits.shape == (3, 10) and out.end_logits.shape == (3, 10)
    assert out.spans.shape == (7, 2) and torch.isfinite(out.logits).all()
    centres, half = model.proposal_boxes()
    assert ((centres >= 0) & (centres <= 1)).all()
    assert ((half >= 0) & (half <= 0.25)).all() and half.max() > 0.01
    assert ((out.spans >= 0) & (out.spans <= 1)).all()
    assert (out.spans[:, 1] >= out.spans[:, 0]).all()


def test_padded_tokens_change_nothing():
    model = model_for()
    clips, tokens, mask = inputs(batch=1, length=4)
    padded = torch.cat([tokens, 100 * torch.randn(1, 3, CONFIG.token_dim)], 1)
    padded_mask = torch.cat([mask, torch.zeros(1, 3, dtype=torch.bool)], 1)
    with torch.no_grad():
        a, b = model(clips, tokens, mask), model(clips, padded, padded_mask)
    torch.testing.assert_close(a.logits, b.logits)
    torch.testing.assert_close(a.start_logits, b.start_logits)


def test_batched_equals_one_by_one():
    model = model_for()
    clips, tokens, mask = inputs()
    with torch.no_grad():
        together = model(clips, tokens, mask).logits
        for i in range(3):
            n = int(mask[i].sum())
            alone = model(clips[i:i + 1], tokens[i:i + 1, :n], mask[i:i + 1, :n]).logits
            torch.testing.assert_close(alone[0], together[i], atol=1e-5, rtol=1e-5)


def test_sampling_against_a_hand_computation():
    sequence = torch.arange(5, dtype=torch.float32).reshape(1, 5, 1) ** 2  # 0 1 4 9 16
    spans = torch.tensor([[0.1, 0.6], [0.0, 1.0]])
    out = sample_proposals(sequence, spans, 3)
    # span 0 samples at indices 0.4, 1.4, 2.4 (s (T-1) + j (e-s)(T-1)/(n-1), T-1 = 4)
    hand0 = [0.6 * 0 + 0.4 * 1, 0.6 * 1 + 0.4 * 4, 0.6 * 4 + 0.4 * 9]
    torch.testing.assert_close(out[0, 0, :, 0], torch.tensor(hand0))
    torch.testing.assert_close(out[0, 1, :, 0], torch.tensor([0.0, 4.0, 16.0]))
    # the samples move with the span: the gradient reaches its ends
    spans = spans.clone().requires_grad_()
    sample_proposals(sequence, spans, 3).sum().backward()
    assert spans.grad[0].abs().sum() > 0
    torch.testing.assert_close(proposal_spans(torch.tensor([0.1, 0.9]), torch.tensor([0.2, 0.2])),
                               torch.tensor([[0.0, 0.3], [0.7, 1.0]]))


def test_matching_loss_does_not_move_the_proposals():
    model = model_for().train()
    out = model(*inputs())
    (out.logits.sum() + out.start_logits.sum()).backward()
    assert model.proposal_logits.grad is None or not model.proposal_logits.grad.any()
    assert model.proposal_features.grad is not None and model.proposal_features.grad.any()
    out.spans.sum().backward()  # the boxes themselves are differentiable (the IoU loss)
    assert model.proposal_logits.grad.abs().sum() > 0


def test_errors():
    model = model_for()
    clips, tokens, mask = inputs()
    mask[2] = False
    with pytest.raises(ValueError, match="query 2 has none"):
        model(clips, tokens, mask)
    with pytest.raises(ValueError, match="video clips must have shape"):
        model(clips[:, :4], *inputs()[1:])
    with pytest.raises(ValueError, match="n_heads"):
        LPNetConfig(hidden_dim=10, n_heads=4)


def test_save_and_load_round_trip(tmp_path):
    model = model_for()
    model.save_pretrained(tmp_path / "m")
    loaded = LPNet.from_pretrained(tmp_path / "m")
    with torch.no_grad():
        torch.testing.assert_close(model(*inputs()).logits, loaded(*inputs()).logits)
    with pytest.raises(CheckpointError, match="model_type"):
        DRN.from_pretrained(tmp_path / "m")


def test_moments_are_ranked_in_seconds():
    model = model_for()
    clips, tokens, mask = inputs(batch=1)
    with torch.no_grad():
        scores, spans = model.score_encoded(clips, model.encode_query(tokens, mask))
    moments = model.moments(scores[0], spans, 30.0)
    assert moments.shape == (7, 3) and (moments[:-1, 2] >= moments[1:, 2]).all()
    assert (moments[:, :2] >= 0).all() and (moments[:, :2] <= 30.0).all()
