import numpy as np
import pytest

from moment_search.data.corpus_dir import open_corpus
from moment_search.eval.controls import apply_control, video_derangement


def test_derangement_has_no_fixed_point():
    ids = [f"v{i}" for i in range(7)]
    mapping = video_derangement(ids, seed=3)
    assert sorted(mapping) == ids and sorted(mapping.values()) == ids
    assert all(a != b for a, b in mapping.items())
    with pytest.raises(ValueError, match="two videos"):
        video_derangement(["only"])


def test_shuffled_video_swaps_features(tiny_corpus):
    corpus, store = open_corpus(tiny_corpus)
    same, swapped = apply_control(corpus, store, "shuffled-video")
    assert same is corpus
    for vid in corpus.videos:
        assert not np.array_equal(swapped.load(vid), store.load(vid))


def test_shuffled_query_takes_other_videos_sentences(tiny_corpus):
    corpus, store = open_corpus(tiny_corpus)
    shuffled, same_store = apply_control(corpus, store, "shuffled-query")
    assert same_store is store
    own = {v: {q.text for q in qs} for v, qs in corpus.queries_by_video().items()}
    for before, after in zip(corpus.queries, shuffled.queries, strict=True):
        assert after.qid == before.qid and after.windows == before.windows
        assert after.text not in own[before.video_id]


def test_unknown_control(tiny_corpus):
    corpus, store = open_corpus(tiny_corpus)
    with pytest.raises(ValueError, match="unknown control"):
        apply_control(corpus, store, "nope")
