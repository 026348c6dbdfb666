"""The corpus terms of FVMR's search vectors: the fused-score identity, compose, and the index."""

import numpy as np
import pytest
import torch
from moment_search.indexer.build import BuildConfig, build_index

from moment_search.data.corpus_dir import open_corpus
from moment_search.embed.encoders import MomentEncoder
from moment_search.geometry.proposals import proposal_index
from moment_search.models.fvmr import FVMR
from moment_search.models.video_text import VideoText, VideoTextConfig
from moment_search.search.searcher import Searcher
from moment_search.train.compose import compose

BETA, GAMMA, BANK = 0.7, 0.4, 3


@pytest.fixture(scope="module", params=["video", "moment"])
def composed_dir(request, tmp_path_factory, tiny_model_dir, session_corpus):
    torch.manual_seed(1)
    video = VideoText(VideoTextConfig(feature_dim=8, hidden_dim=16, embed_dim=6,
                                      level=request.param))
    video_dir = video.eval().save_pretrained(tmp_path_factory.mktemp("vt") / "video-text")
    out = tmp_path_factory.mktemp("composed") / "search"
    return compose(tiny_model_dir, out, video_dir, BETA, GAMMA, BANK, session_corpus, "train")


def tokens_of(texts):
    from moment_search.text.tokens import TokenEncoder

    batch = TokenEncoder().encode(texts)
    return batch.embeddings, batch.mask


def test_fused_inner_product_is_moment_plus_video_minus_hub(composed_dir):
    model = FVMR.from_pretrained(composed_dir)
    assert model.embedding_dim == 16  # 8 + 6 + 1, zero-padded to a multiple of 8
    clips = torch.randn(3, 8, 8)
    tokens, mask = tokens_of(["person opens a door", "a person is laughing"])
    assert model.encode_moments(clips)[..., 15:].abs().sum() == 0  # the padding
    fused = torch.einsum("vpd,qd->qvp", model.encode_moments(clips),
                         model.encode_queries(tokens, mask))  # (Q, V, P)
    moments = model.moment_cells(clips)[:, model.cells]  # (V, P, D)
    p = torch.einsum("vpd,qd->qvp", moments, model.query_space(tokens, mask))
    video_model = model.video_text
    if video_model.config.level == "moment":  # one vector per proposal, checked span by span
        index = proposal_index(model.config.n_clips)
        vectors = torch.stack([video_model.encode_spans(clips, torch.tensor([list(index[p])] * 3))
                               for p in range(len(index))], 1)  # (V, P, E)
    else:
        vectors = video_model.encode_videos(clips)[:, None].expand(-1, moments.shape[1], -1)
    s_v = torch.einsum("qe,vpe->qvp", video_model.encode_texts(tokens, mask), vectors)
    # b_v: mean over the bank of each video's best (moment + video) score
    bank = model.hub_queries  # (S, D + E)
    plain = torch.cat([moments, BETA ** 0.5 * vectors], -1)
    b_v = torch.einsum("vpd,sd->vps", plain, bank).amax(1).mean(-1)  # (V,)
    expected = p + BETA * s_v - GAMMA * b_v[None, :, None]
    torch.testing.assert_close(fused, expected, rtol=1e-4, atol=1e-4)


def test_compose_keeps_the_fast_path(composed_dir, tiny_model_dir, session_corpus):
    base, fused = FVMR.from_pretrained(tiny_model_dir), FVMR.from_pretrained(composed_dir)
    clips = torch.randn(2, 8, 8)
    tokens, mask = tokens_of(["person opens a door"])
    torch.testing.assert_close(base.encode_moments(clips),
                               fused.encode_moments(clips)[..., :8])
    torch.testing.assert_close(base(clips[:1], tokens, mask).p, fused(clips[:1], tokens, mask).p)
    # the bank: query vectors (without hub column) of the seeded draw of train sentences
    from moment_search.train.compose import bank_sentences

    texts = bank_sentences(session_corpus, "train", BANK, 0)
    tokens, mask = tokens_of(texts)
    torch.testing.assert_close(fused.hub_queries, fused.encode_queries(tokens, mask, False))
    assert fused.hub_queries.shape == (BANK, 8 + 6)


def test_compose_records_what_the_video_text_model_was_trained_on(tiny_model_dir, tmp_path):
    video = VideoText(VideoTextConfig(feature_dim=8, hidden_dim=16, embed_dim=6))
    video_dir = video.eval().save_pretrained(tmp_path / "vt", extra={
        "data": "runs/folds/f0", "train_config": {"fold": None}})
    record = FVMR.read_config(compose(tiny_model_dir, tmp_path / "out", video_dir, 0.5))[1]
    assert record["composed"]["video_text_data"] == "runs/folds/f0"
    assert record["composed"]["video_text_fold"] is None
    alone = FVMR.read_config(compose(tiny_model_dir, tmp_path / "alone"))[1]["composed"]
    assert alone["video_text"] == "None" and "video_text_data" not in alone


def test_compose_rejects_bad_settings(tiny_model_dir, tmp_path):
    with pytest.raises(ValueError, match=">= 0"):
        compose(tiny_model_dir, tmp_path / "x", None, -1.0)
    with pytest.raises(ValueError, match="data_dir"):
        compose(tiny_model_dir, tmp_path / "x", None, 0.0, 1.0, 5)
    with pytest.raises(ValueError, match="needs a video-text checkpoint"):
        compose(tiny_model_dir, tmp_path / "x", None, 0.5)
    other = VideoText(VideoTextConfig(feature_dim=8, hidden_dim=16, embed_dim=6))
    other_dir = other.save_pretrained(tmp_path / "vt32", extra={"train_config": {"n_clips": 32}})
    with pytest.raises(ValueError, match="trained on 32 clips"):
        compose(tiny_model_dir, tmp_path / "x", other_dir, 0.5)


@pytest.mark.parametrize("kind", ["flat", "ivfpq"])
def test_index_of_fused_vectors_equals_exact_fused_scoring(composed_dir, session_corpus,
                                                           tmp_path, kind):
    index_dir = tmp_path / "index"
    build_index(session_corpus, index_dir, composed_dir, BuildConfig(device="cpu",
                                                                     index_kind=kind))
    if kind == "ivfpq":  # builds with D / 4 sub-quantizers (the padding makes D divisible)
        searcher = Searcher.open(index_dir, device="cpu")
        assert searcher.index.d == 16 and searcher.search("someone walks in", k=5)
        return
    searcher = Searcher.open(index_dir, device="cpu")
    corpus, store = open_corpus(session_corpus, feature_rate=1.0)
    encoder = MomentEncoder(FVMR.from_pretrained(composed_dir))
    rows = []  # (score, video, start, end) of every proposal, by exact fused scoring
    texts = ["person does action number 3", "someone walks in"]
    queries = searcher.encoder.encode(texts)
    for video in corpus:
        vectors = encoder.embed_video(store.load(video.video_id), video)  # (P, D')
        spans = encoder.spans(video.duration)
        rows.append((vectors @ queries.T, video.video_id, spans))
    for q, text in enumerate(texts):
        exact = sorted(((float(s[i, q]), vid, *spans[i]) for s, vid, spans in rows
                        for i in range(len(spans))), reverse=True)[:10]
        found = searcher.search(text, k=10, nms=1.0, per_video=10)  # every moment, no cap
        assert [(m.video_id, m.start_s, m.end_s) for m in found] == \
            [(vid, pytest.approx(a), pytest.approx(b)) for _, vid, a, b in exact]
        np.testing.assert_allclose([m.score for m in found], [e[0] for e in exact], rtol=1e-4)


def test_compose_command(tiny_model_dir, session_corpus, tmp_path):
    from moment_search.cli.app import main

    out = tmp_path / "search"
    code = main(["train", "compose", "--fvmr", str(tiny_model_dir), "--out", str(out),
                 "--hub-weight", "0.5", "--hub-bank", "2", "--data", str(session_corpus)])
    assert code == 0
    model = FVMR.from_pretrained(out)
    assert model.video_text is None and model.embedding_dim == 16  # 8 + 1, padded
    assert main(["train", "compose", "--fvmr", str(tiny_model_dir), "--out", str(out),
                 "--hub-bank", "3"]) == 2  # a bank needs --data: a clear error, exit 2
