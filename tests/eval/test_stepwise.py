import numpy as np
import pytest

from moment_search.data.corpus_dir import open_corpus
from moment_search.eval.runner import load_localizer
from moment_search.eval.stepwise import StepTimes, localize_stepwise
from moment_search.search.rerank import RerankVideo


def test_step_times_summary_has_median_p95_and_all():
    times = StepTimes({"TE": [1.0, 3.0], "CML": [0.5, 0.5], "NMS": [0.0, 1.0]})
    summary = times.summary()
    assert times.totals() == [1.5, 4.5]
    assert summary["TE_ms_median"] == 2.0 and summary["ALL_ms_median"] == 3.0
    assert summary["ALL_ms_p95"] == pytest.approx(1.5 + 0.95 * 3.0)


def test_every_query_is_timed_once_after_warmup(tiny_corpus, tiny_model_dir):
    corpus, store = open_corpus(tiny_corpus, split="train", feature_rate=1.0)
    model = load_localizer("fvmr", tiny_corpus, tiny_model_dir)
    predictions, times = localize_stepwise(model, corpus.queries, corpus, store, k=5, warmup=2)
    assert set(predictions) == {q.qid for q in corpus.queries}
    assert all(len(v) == len(corpus.queries) for v in times.steps.values())


def test_fvmr_steps_give_the_models_own_scores(tiny_corpus, tiny_model_dir):
    corpus, store = open_corpus(tiny_corpus, split="val", feature_rate=1.0)
    model = load_localizer("fvmr", tiny_corpus, tiny_model_dir)
    query = corpus.queries[0]
    model.prepare(corpus, store, [query.video_id])
    scored = model.score_video(model.encode_query(query.text), query.video_id)
    video = corpus.video(query.video_id)
    clips = model.moments.clips(store.load(query.video_id), video)[None]
    expected = model.moments.embed_clips(clips)[0] @ model.queries.encode([query.text])[0]
    np.testing.assert_allclose(scored[:, 2], expected, rtol=1e-5, atol=1e-6)
    assert scored[:, :2].max() <= video.duration + 1e-6


def test_reranker_steps_equal_score_videos(tiny_corpus, tiny_pln_dir):
    corpus, store = open_corpus(tiny_corpus, split="val", feature_rate=1.0)
    model = load_localizer("pln", tiny_corpus, tiny_pln_dir)
    query = corpus.queries[0]
    model.prepare(corpus, store, [query.video_id])
    video = corpus.video(query.video_id)
    direct = model.reranker.score_videos(
        query.text, [RerankVideo(video.video_id, store.load(video.video_id), video.duration,
                                 video.feature_rate)])[0]
    stepped = model.score_video(model.encode_query(query.text), query.video_id)
    np.testing.assert_allclose(stepped, direct, rtol=1e-5, atol=1e-6)


def test_prior_steps_equal_its_predictions(tiny_corpus):
    corpus, store = open_corpus(tiny_corpus, split="val")
    prior = load_localizer("prior", tiny_corpus, None)
    predictions = prior.localize(corpus.queries, corpus, store, k=5)
    durations = {vid: v.duration for vid, v in corpus.videos.items()}
    expected = prior.prior.predict_queries(corpus.queries, durations, k=5)
    for qid, windows in expected.items():
        np.testing.assert_allclose(predictions[qid], windows)
    assert {"TE_ms_median", "CML_ms_p95", "ALL_ms_median"} <= set(prior.timings)


def test_reranker_pooling_is_prepared_once_per_video(tiny_corpus, tiny_pln_dir):
    corpus, store = open_corpus(tiny_corpus, split="val", feature_rate=1.0)
    model = load_localizer("pln", tiny_corpus, tiny_pln_dir)
    query = corpus.queries[0]
    model.prepare(corpus, store, [query.video_id])
    video = model.videos[query.video_id]
    assert len(video.prepared) == 1
    pooled = model.reranker.prepare_video(video)
    assert model.reranker.prepare_video(video) is pooled
    fresh = RerankVideo(video.video_id, video.features, video.duration, video.feature_rate)
    encoded = model.encode_query(query.text)
    np.testing.assert_allclose(model.reranker.score_encoded(encoded, [fresh])[0],
                               model.score_video(encoded, query.video_id), rtol=1e-6)
