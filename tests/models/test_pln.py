import math

import numpy as np
import pytest
import torch

from moment_search.geometry.proposals import num_proposals, proposal_index, proposal_mask
from moment_search.models.base import CheckpointError
from moment_search.models.fvmr import FVMR
from moment_search.models.pln import PLN, PLNConfig, average_stage_scores, pool_stage_clips
from moment_search.models.pln_blocks import (
    ConditionalFeatureManipulation,
    SentenceEncoder,
    UpsamplingConnection,
    masked_map_max,
    upsample_map,
)
from moment_search.train.pln_trainer import pln_loss

CONFIG = PLNConfig(feature_dim=6, token_dim=5, stage_clips=(4, 8), hidden_dim=8, lstm_layers=2)


def inputs(config=CONFIG, batch=3, length=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    clips = [torch.randn(batch, n, config.feature_dim, generator=g) for n in config.stage_clips]
    tokens = torch.randn(batch, length, config.token_dim, generator=g)
    mask = torch.ones(batch, length, dtype=torch.bool)
    mask[1, 3:] = False
    return clips, tokens, mask


def model_for(config=CONFIG, seed=0):
    torch.manual_seed(seed)
    return PLN(config).eval()


@pytest.mark.parametrize("stage_clips", [(4, 8), (4, 8, 16), (8, 32), (16,)])
def test_forward_shapes_for_each_stage(stage_clips):
    config = PLNConfig(feature_dim=6, token_dim=5, stage_clips=stage_clips, hidden_dim=8,
                       lstm_layers=1)
    model = model_for(config)
    out = model(*inputs(config, batch=2))
    assert len(out.logits) == len(out.masks) == len(stage_clips)
    for logits, mask, n in zip(out.logits, out.masks, stage_clips, strict=True):
        assert logits.shape == (2, n, n) and torch.isfinite(logits).all()
        assert torch.equal(mask, torch.from_numpy(proposal_mask(n)))
    assert model.n_proposals == num_proposals(stage_clips[-1])  # 428 for the sparse 32-map


def test_bad_inputs_and_configs_raise():
    model = model_for()
    clips, tokens, mask = inputs()
    with pytest.raises(ValueError, match="2 stages"):
        model(clips[:1], tokens, mask)
    with pytest.raises(ValueError, match="stage 2"):
        model([clips[0], clips[0]], tokens, mask)
    with pytest.raises(ValueError, match="power of two"):
        PLNConfig(stage_clips=(8, 12))
    with pytest.raises(ValueError, match="strategy"):
        model.score_proposals(clips, tokens, mask, strategy=3)


def test_upsampling_connection_sizes():
    x = torch.rand(2, 3, 4, 4)
    four = UpsamplingConnection(3, 4)
    assert len(four.blocks) == 2  # n = log2(16 / 4) blocks, as the paper's two-stage 32-128
    y = four(x)
    assert y.shape == (2, 3, 16, 16)
    assert (y.tril(-1) == 0).all()  # cells with start > end stay empty
    assert UpsamplingConnection(3, 2)(x).shape == (2, 3, 8, 8)
    same = UpsamplingConnection(3, 1)
    assert len(same.blocks) == 0 and same(x) is x
    with pytest.raises(ValueError, match="power of two"):
        UpsamplingConnection(3, 3)


def test_upsample_map_takes_the_containing_coarse_moment():
    coarse = torch.tensor([[1.0, 2.0], [0.0, 3.0]])
    expected = torch.tensor([[1, 1, 2, 2], [1, 1, 2, 2], [0, 0, 3, 3], [0, 0, 3, 3]]).float()
    assert torch.equal(upsample_map(coarse, 2), expected)
    assert upsample_map(coarse, 1) is coarse


def test_masked_map_max_ignores_padding_cells():
    hidden = torch.tensor([[[[1.0, -2.0], [50.0, 4.0]], [[-1.0, -3.0], [9.0, -5.0]]]])
    mask = torch.tensor([[True, True], [False, True]])
    assert torch.equal(masked_map_max(hidden, mask), torch.tensor([[4.0, -1.0]]))


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def test_cfm_matches_hand_computation():
    cfm = ConditionalFeatureManipulation(2)
    with torch.no_grad():
        cfm.fc.weight.copy_(torch.tensor([[1.0, 0.5], [-1.0, 2.0]]))
        cfm.fc.bias.copy_(torch.tensor([0.1, -0.2]))
    clips = torch.tensor([[[1.0, 2.0], [-1.0, 0.5]]])  # (B=1, N=2, C=2)
    previous = torch.tensor([[[[0.5, 2.0], [99.0, 1.0]],  # channel 0: max valid = 2
                              [[3.0, 0.0], [99.0, 1.5]]]])  # channel 1: max valid = 3
    mask = torch.tensor([[True, True], [False, True]])
    h = (2.0, 3.0)
    expected = []
    for c in ([1.0, 2.0], [-1.0, 0.5]):
        z = [h[0] * c[0], h[1] * c[1]]  # h^{t-1} (.) c_i
        a = [sigmoid(1.0 * z[0] + 0.5 * z[1] + 0.1), sigmoid(-1.0 * z[0] + 2.0 * z[1] - 0.2)]
        expected.append([c[0] * a[0], c[1] * a[1]])  # Eq. 5
    out = cfm(clips, previous, mask)
    torch.testing.assert_close(out, torch.tensor([expected]))


def test_sentence_encoder_ignores_padding():
    torch.manual_seed(0)
    encoder = SentenceEncoder(5, 4, layers=3).eval()
    _, tokens, mask = inputs()
    short = encoder(tokens[1:2, :3], mask[1:2, :3])
    padded = encoder(tokens[1:2], mask[1:2])
    torch.testing.assert_close(short, padded)


def test_strategy_1_is_last_stage_scores_in_proposal_order():
    config = PLNConfig(feature_dim=6, token_dim=5, stage_clips=(8, 32), hidden_dim=8,
                       lstm_layers=1)
    model = model_for(config)
    clips, tokens, mask = inputs(config)
    scores = model.score_proposals(clips, tokens, mask, strategy=1)
    assert scores.shape == (3, num_proposals(32))
    last = model(clips, tokens, mask).logits[-1]
    for p, (i, j) in enumerate(proposal_index(32)[::37]):
        torch.testing.assert_close(scores[:, p * 37], torch.sigmoid(last[:, i, j]))


def test_strategy_2_averages_upsampled_stage_scores_by_hand():
    config = PLNConfig(feature_dim=6, token_dim=5, stage_clips=(2, 4, 8), hidden_dim=8,
                       lstm_layers=1)
    model = model_for(config)
    clips, tokens, mask = inputs(config)
    scores = model.score_proposals(clips, tokens, mask, strategy=2)
    assert scores.shape == (3, num_proposals(8))
    logits = model(clips, tokens, mask).logits
    for p, (a, b) in enumerate(proposal_index(8)):
        # fine moment (a, b) lies in coarse moment (a // r, b // r) of a stage with r = 8 / N
        per_stage = [torch.sigmoid(x[:, a // (8 // n), b // (8 // n)])
                     for x, n in zip(logits, (2, 4, 8), strict=True)]
        torch.testing.assert_close(scores[:, p], sum(per_stage) / 3)


def test_strategy_2_skips_stages_where_the_moment_is_no_proposal():
    logits = [torch.zeros(1, 2, 2), torch.full((1, 4, 4), 2.0)]
    coarse_mask = torch.tensor([[True, False], [False, True]])  # (0, 1) is no coarse proposal
    masks = [coarse_mask, torch.ones(4, 4, dtype=torch.bool).triu()]
    fused = average_stage_scores(logits, masks)[0]
    assert fused[0, 0].item() == pytest.approx((0.5 + sigmoid(2.0)) / 2)
    assert fused[0, 3].item() == pytest.approx(sigmoid(2.0))  # only the fine stage has it
    assert fused[3, 0].item() == 0.0


def test_ablations_cut_the_bridges_between_stages():
    clips, tokens, mask = inputs()
    moved = [clips[0] + 1.0, clips[1]]  # change only the coarse stage's clips
    for use_cfm, use_up, linked in [(True, True, True), (True, False, True),
                                    (False, True, True), (False, False, False)]:
        config = PLNConfig(feature_dim=6, token_dim=5, stage_clips=(4, 8), hidden_dim=8,
                           lstm_layers=1, use_cfm=use_cfm, use_upsampling=use_up)
        model = model_for(config)
        assert len(model.cfms) == int(use_cfm) and len(model.upsamplers) == int(use_up)
        before = model(clips, tokens, mask).logits[1]
        after = model(moved, tokens, mask).logits[1]
        assert (not torch.allclose(before, after)) == linked, (use_cfm, use_up)


def test_save_load_round_trip_gives_identical_scores(tmp_path):
    model = model_for()
    clips, tokens, mask = inputs()
    model.save_pretrained(tmp_path / "pln", extra={"feature_rate": 1.0})
    loaded = PLN.from_pretrained(tmp_path / "pln")
    assert loaded.config == CONFIG and loaded.config.stage_clips == (4, 8)
    for strategy in (1, 2):
        assert torch.equal(model.score_proposals(clips, tokens, mask, strategy),
                           loaded.score_proposals(clips, tokens, mask, strategy))
    with pytest.raises(CheckpointError, match="pln"):
        FVMR.from_pretrained(tmp_path / "pln")


def test_pool_stage_clips_gives_one_tensor_per_stage():
    features = np.arange(30 * 2, dtype=np.float32).reshape(30, 2)
    stages = pool_stage_clips(features, (4, 8), duration=30.0, feature_rate=1.0)
    assert [tuple(s.shape) for s in stages] == [(4, 2), (8, 2)]
    assert stages[0].dtype == torch.float32


def test_training_steps_lower_the_loss():
    model = model_for().train()
    clips, tokens, mask = inputs(batch=4)
    g = torch.Generator().manual_seed(3)
    labels = [torch.rand(4, n, n, generator=g) * torch.from_numpy(proposal_mask(n))
              for n in CONFIG.stage_clips]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        out = model(clips, tokens, mask)
        terms = pln_loss(out.logits, labels, out.masks, (1.0, 1.5))
        optimizer.zero_grad()
        terms["total"].backward()
        optimizer.step()
        losses.append(float(terms["total"].detach()))
    assert set(terms) == {"bce_t1", "bce_t2", "total"}
    assert losses[-1] < 0.9 * losses[0]
