"""DRN through the one reranker interface: the cascade, ``evaluate model drn``, the scan."""

import itertools

import numpy as np
import pytest
import torch

from moment_search.data.corpus_dir import open_corpus
from moment_search.eval.runner import evaluate_model, model_names
from moment_search.search.rerank import RerankVideo, load_reranker, log_odds


def test_drn_reranks_inside_the_cascade(searcher, tiny_drn_dir):
    searcher.add_reranker("drn", tiny_drn_dir)
    fast = searcher.search("person does action number 2", k=8)
    fused = searcher.search("person does action number 2", k=8, rerank="drn", rerank_videos=3)
    assert [m.rank for m in fused] == list(range(1, 9))
    reranked = [m for m in fused if m.stage == "drn+fvmr"]
    assert reranked and len({m.video_id for m in reranked}) <= 3
    assert {m.video_id for m in reranked} <= {m.video_id for m in fast}
    assert fused[:len(reranked)] == reranked
    assert all(a.score >= b.score for a, b in itertools.pairwise(reranked))
    assert all(np.isfinite(m.score) and 0.0 <= m.start_s < m.end_s for m in reranked)


def test_fusion_weight_zero_gives_drn_score(searcher, tiny_drn_dir, session_corpus):
    searcher.add_reranker("drn", tiny_drn_dir)
    text = "a person walks"
    fused = searcher.search(text, k=1, per_video=1, rerank="drn", rerank_videos=1,
                            rerank_weight=0.0)
    corpus, store = open_corpus(session_corpus, feature_rate=1.0)
    video = corpus.video(fused[0].video_id)
    own = load_reranker("drn", tiny_drn_dir, "cpu").score_videos(
        text, [RerankVideo(video.video_id, np.asarray(store.load(video.video_id)),
                           video.duration, 1.0)])[0]
    # candidates come best first
    assert fused[0].score == pytest.approx(log_odds(own[0, 2]), rel=1e-5)
    assert (fused[0].start_s, fused[0].end_s) == pytest.approx((own[0, 0], own[0, 1]))


def test_evaluate_model_drn(tiny_corpus, tiny_drn_dir):
    assert "drn" in model_names()
    result = evaluate_model("drn", tiny_corpus, "val", tiny_drn_dir)
    assert result.metrics["n_queries"] == 2
    assert {"TE_ms_median", "CML_ms_median"} <= set(result.timings)


def test_bad_input_through_the_reranker(tiny_drn_dir):
    reranker = load_reranker("drn", tiny_drn_dir, "cpu")
    with pytest.raises(ValueError, match="non-empty"):
        reranker.encode_text("   ")
    # a 2-row video (fewer rows than the 8 segments) is stretched and scored
    short = RerankVideo("short", np.ones((2, 8), np.float32), 2.0, 1.0)
    moments = reranker.score_videos("a person walks", [short])[0]
    assert 1 <= len(moments) <= reranker.model.config.pre_nms_top_k
    assert (moments[:, 0] >= 0).all() and (moments[:, 1] <= 2.0 + 1e-6).all()
    assert (np.diff(moments[:, 2]) <= 0).all()
    with pytest.raises(ValueError, match="T >= 1"):
        reranker.score_videos("a person walks",
                              [RerankVideo("empty", np.zeros((0, 8), np.float32), 2.0, 1.0)])


def test_scan_in_chunks_equals_one_video_at_a_time(tiny_corpus, tiny_drn_dir):
    from moment_search.benchmarks.speed_accuracy import brute_force

    corpus, store = open_corpus(tiny_corpus, split="train", feature_rate=1.0)
    videos = brute_force.load_videos(corpus, store)
    reranker = load_reranker("drn", tiny_drn_dir, "cpu")
    assert brute_force.check_chunking(reranker, corpus.queries[0].text, videos) < 1e-5
    top, times = brute_force.scan(reranker, corpus.queries[0].text, videos, 5)
    assert len(top) == 5 and set(times) == {"TE", "CML", "NMS"}


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_drn_on_cuda_matches_cpu(tiny_corpus, tiny_drn_dir):
    corpus, store = open_corpus(tiny_corpus, split="train", feature_rate=1.0)
    videos = [RerankVideo(v, np.asarray(store.load(v)), corpus.video(v).duration, 1.0)
              for v in corpus.videos]
    text = corpus.queries[0].text
    cpu = load_reranker("drn", tiny_drn_dir, "cpu").score_videos(text, videos)
    reranker = load_reranker("drn", tiny_drn_dir, "cuda")
    assert next(reranker.model.parameters()).is_cuda
    gpu = reranker.score_videos(text, videos)
    for a, b in zip(cpu, gpu, strict=True):
        np.testing.assert_allclose(b, a, atol=1e-4)
