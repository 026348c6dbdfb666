"""The searcher's query cache, and searches from many threads at once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from moment_search.search.query_cache import QueryCache
from moment_search.search.searcher import Searcher


class CountingEncoder:
    """A real encoder behind a counter of the sentences it was asked to encode."""

    def __init__(self, encoder):
        self.encoder, self.calls = encoder, []

    def encode(self, texts):
        self.calls.append(list(texts))
        return self.encoder.encode(texts)


def test_cached_vectors_equal_fresh_ones_and_the_encoder_runs_once_per_sentence(searcher):
    encoder = CountingEncoder(searcher.encoder)
    cache = QueryCache(8)
    texts = ["person does action number 1", "person does action number 2"]
    first = cache.encode(encoder, texts)
    again = cache.encode(encoder, [texts[1], texts[0], texts[1]])
    np.testing.assert_array_equal(again, first[[1, 0, 1]])
    assert encoder.calls == [texts]  # the second call never reached the encoder
    assert (cache.hits, cache.misses) == (3, 2)


def test_the_least_recently_used_sentence_goes_first_and_size_0_keeps_none(searcher):
    encoder = CountingEncoder(searcher.encoder)
    cache = QueryCache(2)
    for text in ("a", "b", "a", "c", "a", "b"):
        cache.encode(encoder, [text])
    assert [call[0] for call in encoder.calls] == ["a", "b", "c", "b"]  # b was evicted by c
    none = QueryCache(0)
    none.encode(encoder, ["a"])
    none.encode(encoder, ["a"])
    assert [call[0] for call in encoder.calls[-2:]] == ["a", "a"]
    with pytest.raises(ValueError, match=">= 0"):
        QueryCache(-1)


def test_threads_searching_at_once_get_what_one_thread_gets(built_index):
    searcher = Searcher.open(built_index, device="cpu", query_cache=0)
    texts = [f"person does action number {i % 8}" for i in range(48)]
    alone = [searcher.search(t, k=5) for t in texts]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda t: searcher.search_timed([t], k=5)[0][0], texts))
    assert together == alone


def test_a_mapped_index_answers_as_a_read_one(built_index):
    read = Searcher.open(built_index, device="cpu").search("person does action number 5", k=6)
    mapped = Searcher.open(built_index, device="cpu", mmap=True)
    assert mapped.search("person does action number 5", k=6) == read
