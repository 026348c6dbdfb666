import pytest
import torch

from moment_search.models.base import CheckpointError
from moment_search.models.fvmr import FVMR, FVMRConfig, RoleTreeTensors, SemanticExtractor

CONFIG = FVMRConfig(feature_dim=12, token_dim=10, n_clips=8, hidden_dim=16, space_dim=8,
                    dropout=0.0)


def random_tree(batch: int, length: int, verbs: int = 4, nouns: int = 6) -> RoleTreeTensors:
    g = torch.Generator().manual_seed(1)
    verb_mask = torch.zeros(batch, verbs, dtype=torch.bool)
    verb_mask[:, 0] = True
    verb_mask[0, 1] = True
    noun_mask = torch.rand(batch, nouns, generator=g) > 0.5
    return RoleTreeTensors(
        verb_weights=torch.rand(batch, verbs, length, generator=g) * verb_mask[..., None],
        verb_mask=verb_mask,
        noun_weights=torch.rand(batch, nouns, length, generator=g) * noun_mask[..., None],
        noun_mask=noun_mask,
        edges=torch.rand(batch, verbs, nouns, generator=g) > 0.3,
    )


def inputs(batch=3, length=7):
    torch.manual_seed(0)
    clips = torch.randn(batch, CONFIG.n_clips, CONFIG.feature_dim)
    tokens = torch.randn(batch, length, CONFIG.token_dim)
    mask = torch.ones(batch, length, dtype=torch.bool)
    mask[1, 4:] = False
    return clips, tokens, mask


def test_forward_shapes():
    model = FVMR(CONFIG).eval()
    clips, tokens, mask = inputs()
    out = model(clips, tokens, mask, random_tree(3, 7))
    p_count = model.n_proposals
    assert p_count == 36  # dense 8x8 upper triangle
    assert out.p.shape == (3, p_count) and out.q.shape == (3, p_count)
    assert out.moments.shape == (3, p_count, 8) and out.queries.shape == (3, 8)
    assert torch.isfinite(out.q).all()


def test_fast_path_is_inner_product_of_encoders():
    model = FVMR(CONFIG).eval()
    clips, tokens, mask = inputs()
    out = model(clips, tokens, mask)
    manual = torch.einsum("bpd,bd->bp", model.encode_moments(clips),
                          model.encode_queries(tokens, mask))
    torch.testing.assert_close(out.p, manual)
    assert out.q is None


def test_query_encoding_ignores_padding():
    model = FVMR(CONFIG).eval()
    _, tokens, mask = inputs()
    short = model.encode_queries(tokens[1:2, :4], mask[1:2, :4])
    padded = model.encode_queries(tokens[1:2], mask[1:2])
    torch.testing.assert_close(short, padded)


def test_semantic_extractor_hand_case():
    # One verb with no nouns: the phrase is the verb node, so u = g_s * g_v.
    extractor = SemanticExtractor(token_dim=4, dim=6).eval()
    tokens = torch.randn(1, 3, 4)
    mask = torch.ones(1, 3, dtype=torch.bool)
    tree = RoleTreeTensors(
        verb_weights=torch.tensor([[[0.0, 1.0, 0.0]]]), verb_mask=torch.tensor([[True]]),
        noun_weights=torch.zeros(1, 1, 3), noun_mask=torch.tensor([[False]]),
        edges=torch.zeros(1, 1, 1, dtype=torch.bool))
    words = extractor.gru(tokens)[0]
    expected = words.mean(1) * words[:, 1]
    torch.testing.assert_close(extractor(tokens, mask, tree), expected)


def test_save_load_round_trip(tmp_path):
    model = FVMR(CONFIG).eval()
    clips, tokens, mask = inputs()
    before = model(clips, tokens, mask).p
    model.save_pretrained(tmp_path / "ckpt", extra={"max_tokens": 32})
    loaded = FVMR.from_pretrained(tmp_path / "ckpt")
    torch.testing.assert_close(loaded(clips, tokens, mask).p, before)
    assert FVMR.read_config(tmp_path / "ckpt")[1] == {"max_tokens": 32}


def test_half_checkpoint_close(tmp_path):
    model = FVMR(CONFIG).eval()
    clips, tokens, mask = inputs()
    model.save_pretrained(tmp_path / "half", half=True)
    loaded = FVMR.from_pretrained(tmp_path / "half")
    torch.testing.assert_close(loaded(clips, tokens, mask).p, model(clips, tokens, mask).p,
                               atol=2e-2, rtol=2e-2)


def test_bad_checkpoints(tmp_path):
    with pytest.raises(CheckpointError, match="no config.json"):
        FVMR.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text('{"model_type": "pln", "config": {}}')
    with pytest.raises(CheckpointError, match="expected 'fvmr'"):
        FVMR.from_pretrained(tmp_path)


def test_clip_norm_option_round_trip(tmp_path):
    model = FVMR(FVMRConfig(feature_dim=12, token_dim=10, n_clips=8, hidden_dim=16, space_dim=8,
                            dropout=0.0, clip_norm=True)).eval()
    clips, tokens, mask = inputs()
    # a LayerNorm makes the moment embeddings invariant to the scale of the input features
    torch.testing.assert_close(model.encode_moments(clips), model.encode_moments(clips * 25),
                               atol=1e-4, rtol=1e-4)
    model.save_pretrained(tmp_path / "norm")
    loaded = FVMR.from_pretrained(tmp_path / "norm")
    torch.testing.assert_close(loaded(clips, tokens, mask).p, model(clips, tokens, mask).p)
