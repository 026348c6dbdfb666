import itertools

import numpy as np
import pytest

from moment_search.eval.runner import evaluate_model
from moment_search.search.localize import CORPUS_PER_VIDEO
from moment_search.search.rerank import fast_scores_for, fuse, load_reranker, log_odds


def test_rerank_cascade_end_to_end(searcher, tiny_pln_dir):
    searcher.add_reranker("pln", tiny_pln_dir)
    k = 3 * CORPUS_PER_VIDEO  # room for the three reranked videos' moments
    fast = searcher.search("person does action number 2", k=k)
    fused = searcher.search("person does action number 2", k=k, rerank="pln", rerank_videos=3)
    assert [m.rank for m in fused] == list(range(1, k + 1))
    reranked = [m for m in fused if m.stage == "pln+fvmr"]
    assert reranked and {m.video_id for m in reranked} <= {m.video_id for m in fast}
    assert len({m.video_id for m in reranked}) <= 3
    # each reranked video keeps the default per-video cap (more where the fast path's top k,
    # filled up to k, held more of it)
    kept = {video: sum(m.video_id == video for m in reranked) for video in
            {m.video_id for m in reranked}}
    for video, n in kept.items():
        assert n == max(CORPUS_PER_VIDEO, sum(m.video_id == video for m in fast))
    assert max(kept.values()) == CORPUS_PER_VIDEO  # the corpus is large enough for the cap
    # a cap the caller gives is a hard one
    capped = searcher.search("person does action number 2", k=k, rerank="pln",
                             rerank_videos=3, per_video=1)
    assert all(sum(m.video_id == v for m in capped) == 1 for v in {m.video_id for m in capped})
    assert all(np.isfinite(m.score) for m in reranked)
    # the reranked block is sorted by fused score and comes first
    assert fused[:len(reranked)] == reranked
    assert all(a.score >= b.score for a, b in itertools.pairwise(reranked))
    assert "rerank_ms" in searcher.timings.extra


def test_weight_one_keeps_fast_path_order(searcher, tiny_pln_dir):
    searcher.add_reranker("pln", tiny_pln_dir)
    text = "a person walks"
    fast = searcher.search(text, k=1, per_video=1)
    fused = searcher.search(text, k=1, per_video=1, rerank="pln", rerank_videos=5,
                            rerank_weight=1.0)
    assert (fused[0].video_id, fused[0].start_s) == (fast[0].video_id, fast[0].start_s)
    assert fused[0].score == pytest.approx(fast[0].score, rel=1e-4)  # w = 1: p itself


def test_a_checkpoint_stored_fusion_weight_is_the_default(searcher, tiny_pln_dir, tmp_path):
    import json
    import shutil

    stored = tmp_path / "pln-w1"
    shutil.copytree(tiny_pln_dir, stored)
    config = json.loads((stored / "config.json").read_text())
    config["extra"]["fusion_weight"] = 1.0
    (stored / "config.json").write_text(json.dumps(config))
    searcher.add_reranker("pln", stored)
    assert searcher.rerankers["pln"].fusion_weight == 1.0
    text = "a person walks"
    options = dict(k=1, per_video=1, rerank="pln", rerank_videos=5)
    fast = searcher.search(text, k=1, per_video=1)
    try:
        stored_w = searcher.search(text, **options)  # w = 1: the fast path's order and score
        given = searcher.search(text, **options, rerank_weight=0.0)  # the caller's w wins
    finally:
        searcher.add_reranker("pln", tiny_pln_dir)  # the searcher is shared by the session
    assert (stored_w[0].video_id, stored_w[0].start_s) == (fast[0].video_id, fast[0].start_s)
    assert stored_w[0].score == pytest.approx(fast[0].score, rel=1e-4)
    assert given[0].score != pytest.approx(stored_w[0].score)

    config["extra"]["fusion_weight"] = 2.0
    (stored / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="fusion_weight must be in \\[0, 1\\], got 2.0"):
        load_reranker("pln", stored, "cpu")


def test_fusion_helpers():
    spans = np.array([[0.0, 2.0], [2.0, 4.0]])
    np.testing.assert_array_equal(fast_scores_for(spans[::-1], spans, np.array([0.1, 0.9])),
                                  [0.9, 0.1])
    # log-odds: w * p + (1 - w) * logit(r)
    np.testing.assert_allclose(fuse(np.array([2.0, 2.0]), np.array([0.5, 0.9]), 0.25),
                               [0.5, 0.5 + 0.75 * np.log(9.0)])
    np.testing.assert_allclose(fuse(np.array([7.0]), np.array([0.9]), 1.0), [7.0])
    np.testing.assert_allclose(fuse(np.array([7.0]), np.array([0.9]), 0.0), [np.log(9.0)])
    # a probability of 0 or 1 stays finite
    assert np.isfinite(log_odds(np.array([0.0, 1.0]))).all()
    assert log_odds(np.array([0.0]))[0] < -13 < 13 < log_odds(np.array([1.0]))[0]
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        fuse(np.array([1.0]), np.array([0.0]), 1.5)
    with pytest.raises(ValueError, match="unknown reranker"):
        load_reranker("nope")


def test_pln_localizer(tiny_corpus, tiny_pln_dir):
    for name in ("pln", "pln-s2"):
        result = evaluate_model(name, tiny_corpus, "val", tiny_pln_dir)
        assert result.metrics["n_queries"] == 2


def test_fast_logits_read_back_from_the_index_equal_recomputed(searcher, session_corpus,
                                                               monkeypatch):
    from moment_search.indexer import faiss_index

    from moment_search.data.corpus_dir import open_corpus
    from moment_search.search.cascade import candidate_videos, fast_logits

    corpus, _ = open_corpus(session_corpus)
    ids = list(corpus.videos)[:3]
    query = searcher.encoder.encode(["person does action number 2"])[0]
    videos = candidate_videos(searcher, ids)
    record = searcher.catalog.video(ids[0])
    assert searcher.index.stored_vectors(record.first_id, record.n_proposals
                                         ).shape == (record.n_proposals, len(query))
    records = [searcher.catalog.video(v) for v in ids]
    stored = fast_logits(searcher, query, videos, records)
    # an index without exact copies (IVF kinds): the cascade computes the embeddings again
    monkeypatch.setattr(faiss_index, "stored_vectors", lambda *args: None)
    computed = fast_logits(searcher, query, videos, records)
    for (spans_a, probs_a), (spans_b, probs_b) in zip(stored, computed, strict=True):
        np.testing.assert_allclose(spans_a, spans_b)
        np.testing.assert_allclose(probs_a, probs_b, rtol=1e-5, atol=1e-6)


def test_reranker_shares_the_search_text_encoder(built_index, tmp_path, tiny_pln_dir):
    """An index without an ONNX encoder encodes with PyTorch: the reranker then shares it."""
    import shutil

    from moment_search.indexer.query_encoder import PyTorchFallbackWarning

    from moment_search.search.searcher import Searcher

    index = shutil.copytree(built_index, tmp_path / "index")
    shutil.rmtree(index / "encoder")
    with pytest.warns(PyTorchFallbackWarning):
        searcher = Searcher.open(index, device="cpu")
    searcher.add_reranker("pln", tiny_pln_dir)
    reranker = searcher.rerankers["pln"]
    assert reranker.tokens is searcher.encoder.tokens
    searcher.encoder.tokens.clear_cache()
    searcher.search("person does action number 3", k=5, rerank="pln", rerank_videos=2)
    info = searcher.encoder.tokens.cache_info()
    assert (info.misses, info.hits) == (1, 1)  # MiniLM ran once for both models


def test_a_reranked_video_keeps_the_cap_or_what_the_filled_fast_path_gave_it():
    from moment_search.search.cascade import video_budget

    assert video_budget(None, 0, False) == 1 and video_budget(None, 3, False) == 3  # one video
    assert video_budget(2, 5, False) == 2  # the caller's cap is a hard one
    assert video_budget(2, 1, True) == 2 and video_budget(2, 5, True) == 5  # the default cap


def test_the_cascade_fills_k_on_a_small_corpus(searcher, tiny_pln_dir):
    searcher.add_reranker("pln", tiny_pln_dir)
    n_videos = len(searcher.table.video_names)
    k = CORPUS_PER_VIDEO * n_videos + 4
    fused = searcher.search("a person walks", k=k, rerank="pln", rerank_videos=n_videos)
    assert len(fused) == k and all(m.stage == "pln+fvmr" for m in fused)
