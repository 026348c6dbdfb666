import itertools
import json

import numpy as np
import pytest
from moment_search.cli.app import main

from moment_search.data.readers import read_jsonl_queries
from moment_search.embed.encoders import MomentEncoder
from moment_search.eval.predictions import score_predictions
from moment_search.models.fvmr import FVMR
from moment_search.search.batch import read_query_file, search_file, write_predictions
from moment_search.search.searcher import Searcher


def brute_force_best(searcher, corpus_dir, text):
    """The best proposal over every video, by explicit inner products."""
    from moment_search.data.corpus_dir import open_corpus

    corpus, store = open_corpus(corpus_dir, feature_rate=1.0)
    model = FVMR.from_pretrained(searcher.index_dir / "model")
    encoder = MomentEncoder(model)
    query = searcher.encoder.encode([text])[0]
    best = (-np.inf, None, None)
    for video in corpus:
        embedded = encoder.embed_clips(encoder.clips(store.load(video.video_id), video)[None])[0]
        scores = embedded @ query
        i = int(scores.argmax())
        if scores[i] > best[0]:
            best = (float(scores[i]), video.video_id, encoder.spans(video.duration)[i])
    return best


def test_top_hit_equals_brute_force(searcher, session_corpus):
    text = "person does action number 3"
    score, video, span = brute_force_best(searcher, session_corpus, text)
    top = searcher.search(text, k=3)[0]
    assert top.video_id == video
    assert top.start_s == pytest.approx(span[0]) and top.end_s == pytest.approx(span[1])
    assert top.score == pytest.approx(score, rel=1e-4)


def test_results_ranked_nms_and_per_video(searcher):
    moments = searcher.search("a person walks", k=20, nms=0.3, per_video=2)
    assert [m.rank for m in moments] == list(range(1, len(moments) + 1))
    assert all(a.score >= b.score for a, b in itertools.pairwise(moments))
    by_video = {}
    for m in moments:
        by_video.setdefault(m.video_id, []).append(m)
    assert max(len(v) for v in by_video.values()) <= 2
    for group in by_video.values():
        for i, a in enumerate(group):
            for b in group[i + 1:]:
                inter = max(0.0, min(a.end_s, b.end_s) - max(a.start_s, b.start_s))
                union = max(a.end_s, b.end_s) - min(a.start_s, b.start_s)
                assert inter / union <= 0.3 + 1e-9


def per_video_counts(moments):
    counts = {}
    for m in moments:
        counts[m.video_id] = counts.get(m.video_id, 0) + 1
    return counts


def test_a_corpus_search_keeps_the_default_cap_then_fills_up_to_k(searcher):
    from moment_search.search.localize import CORPUS_PER_VIDEO

    text = "a person walks"
    n_videos = len(searcher.table.video_names)
    few = searcher.search(text, k=CORPUS_PER_VIDEO * n_videos)  # the cap alone fills k
    assert max(per_video_counts(few).values()) <= CORPUS_PER_VIDEO
    assert all(a.score >= b.score for a, b in itertools.pairwise(few))
    uncapped = searcher.search(text, k=len(few), per_video=len(few))
    assert max(per_video_counts(uncapped).values()) > CORPUS_PER_VIDEO  # the cap did work
    # more than the cap can give: the capped moments first, then the held-back ones by score
    k = CORPUS_PER_VIDEO * n_videos + 5
    many = searcher.search(text, k=k)
    hard = searcher.search(text, k=k, per_video=CORPUS_PER_VIDEO)
    assert len(hard) == CORPUS_PER_VIDEO * n_videos and len(many) == k
    assert [(m.video_id, m.start_s) for m in many[:len(hard)]] == \
        [(m.video_id, m.start_s) for m in hard]
    rest = many[len(hard):]
    assert all(a.score >= b.score for a, b in itertools.pairwise(rest))
    assert [m.rank for m in many] == list(range(1, k + 1))


def test_a_search_within_one_video_has_no_default_cap(searcher):
    moments = searcher.search("a person walks", k=6, video_ids=["vid004"])
    assert len(moments) == 6 and {m.video_id for m in moments} == {"vid004"}


def test_video_restriction(searcher):
    moments = searcher.search("a person walks", k=5, video_ids=["vid004"])
    assert moments and {m.video_id for m in moments} == {"vid004"}


def test_batched_equals_single(searcher):
    texts = ["a person walks", "person does action number 2"]
    batched = searcher.search_many(texts, k=5)
    for text, moments in zip(texts, batched, strict=True):
        single = searcher.search(text, k=5)
        assert [(m.video_id, m.start_s) for m in single] == [
            (m.video_id, m.start_s) for m in moments]


@pytest.mark.parametrize("kwargs, message", [
    ({"text": "   "}, "empty"),
    ({"text": "walk", "k": 0}, "k must be positive"),
    ({"text": "walk", "k": 10**6}, "larger than the index"),
    ({"text": "walk", "video_ids": ["nope"]}, "unknown video"),
])
def test_bad_queries(searcher, kwargs, message):
    with pytest.raises(ValueError, match=message):
        searcher.search(**kwargs)


def test_missing_and_corrupt_index(tmp_path, built_index):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Searcher.open(tmp_path / "nope")
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(built_index, copy)
    next(copy.glob("index-*.faiss")).write_bytes(b"not a faiss index")
    with pytest.raises(ValueError, match="index-"):
        Searcher.open(copy)


def test_batch_file_and_corpus_predictions(tmp_path, searcher, session_corpus):
    results = search_file(searcher, session_corpus / "val.jsonl", k=10)
    assert set(results) == {q.qid for q in read_jsonl_queries(session_corpus / "val.jsonl").queries}
    pred = tmp_path / "pred.jsonl"
    write_predictions(pred, results)
    metrics = score_predictions(pred, read_jsonl_queries(session_corpus / "val.jsonl").queries)
    assert 0 <= metrics["R10@0.5"] <= 100
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "ok"}\n{"qid": 3}\n')
    with pytest.raises(ValueError, match="line 2"):
        read_query_file(bad)


def test_cli_query_json(built_index, capsys):
    code = main(["query", "person does action number 1", "--index", str(built_index),
                 "-k", "3", "--json", "--device", "cpu"])
    assert code == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.strip().splitlines()]
    assert [x["rank"] for x in lines] == [1, 2, 3]
    assert main(["query", "", "--index", str(built_index), "--device", "cpu"]) == 2


def test_a_short_default_cap_is_fetched_again_wider(searcher, monkeypatch):
    from moment_search.search import searcher as searcher_module
    from moment_search.search.localize import CORPUS_PER_VIDEO, short_of_cap

    text, k = "a person walks", 8
    everything = searcher.n_stored
    exact = searcher.search(text, k=k, candidates=everything)  # one fetch of every proposal
    first = searcher.search(text, k=k, candidates=k)  # a first fetch of only k proposals
    assert short_of_cap([m.video_id for m in first], k, CORPUS_PER_VIDEO)  # it falls short
    monkeypatch.setattr(searcher_module, "default_candidates", lambda wanted: wanted)
    widened = searcher.search(text, k=k)  # default: starts from k proposals, then widens
    assert [(m.video_id, m.start_s, m.end_s) for m in widened] == \
        [(m.video_id, m.start_s, m.end_s) for m in exact]
    assert max(per_video_counts(widened).values()) <= CORPUS_PER_VIDEO
    # a caller's candidates are kept as given: no wider fetch
    assert searcher.search(text, k=k, candidates=k) == first


def test_a_batch_widens_its_short_answers_in_one_search_a_round(searcher, monkeypatch):
    from moment_search.search import searcher as searcher_module

    texts, k = ["a person walks", "person does action number 3", "a person walks"], 8
    alone = [searcher.search(text, k=k, candidates=searcher.n_stored) for text in texts]
    monkeypatch.setattr(searcher_module, "default_candidates", lambda wanted: wanted)
    batches = []
    search = searcher.index.search

    def counted(queries, n, *args):  # the real index, its calls recorded
        batches.append((len(queries), n))
        return search(queries, n, *args)

    monkeypatch.setattr(searcher.index, "search", counted)
    together = searcher.search_many(texts, k=k)
    assert [[(m.video_id, m.start_s) for m in answer] for answer in together] == \
        [[(m.video_id, m.start_s) for m in answer] for answer in alone]
    assert batches[0] == (3, k)  # the first fetch; every answer here is short at k
    assert batches[1] == (3, 4 * k)  # the first wider round: all three in one search
    rows = [count for count, _ in batches]
    assert rows == sorted(rows, reverse=True)  # later rounds: only the rows still short
    assert len({n for _, n in batches}) == len(batches)  # never two searches at one width


class ScaledEncoder:
    """The index's own query encoder with its vectors doubled (another encoder to swap in)."""

    def __init__(self, inner):
        self.inner = inner

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def encode(self, texts):
        return 2.0 * self.inner.encode(texts)


def test_setting_another_encoder_forgets_the_cached_search_vectors(searcher):
    text = "a person opens the door"
    original = searcher.encoder
    before = searcher.query_vector(text)  # now cached
    try:
        searcher.encoder = ScaledEncoder(original)
        assert np.allclose(searcher.query_vector(text), 2.0 * before)
    finally:
        searcher.encoder = original
    assert np.allclose(searcher.query_vector(text), before)


def test_the_wider_fetch_keeps_to_the_chosen_videos(searcher, monkeypatch):
    from moment_search.search import searcher as searcher_module

    text, k = "a person walks", 8
    chosen = list(searcher.table.video_names[:4])
    every = sum(searcher.catalog.video(v).n_proposals for v in chosen)
    exact = searcher.search(text, k=k, video_ids=chosen, candidates=every)
    monkeypatch.setattr(searcher_module, "default_candidates", lambda wanted: wanted)
    widened = searcher.search(text, k=k, video_ids=chosen)
    assert [(m.video_id, m.start_s) for m in widened] == [(m.video_id, m.start_s) for m in exact]
    assert {m.video_id for m in widened} <= set(chosen)
    # two videos cannot give k = 8 under a cap of 3: the answer fills up to k from them
    two = chosen[:2]
    filled = searcher.search(text, k=k, video_ids=two)
    assert len(filled) == k and {m.video_id for m in filled} <= set(two)
