from types import SimpleNamespace

import numpy as np
from moment_search.benchmarks import position_bias_search

from moment_search.search.localize import CORPUS_PER_VIDEO, best_across_videos


def test_the_position_bias_search_widens_a_short_cap_as_the_searcher_does(monkeypatch):
    rng = np.random.default_rng(0)
    n_videos, n_cells, width, k = 6, 10, 4, 8
    moments = rng.normal(size=(n_videos, n_cells, width))
    moments[0] += 3.0  # every proposal of video 0 outscores the rest
    cells = np.stack([np.arange(n_cells), np.arange(n_cells) + 1.0], axis=1)  # disjoint
    split = SimpleNamespace(moments=moments, spans=np.tile(cells, (n_videos, 1, 1)),
                            queries=np.ones((2, width)))
    videos = np.repeat(np.arange(n_videos), n_cells)
    flat = moments.reshape(-1, width)
    monkeypatch.setattr(position_bias_search, "default_candidates", lambda wanted: wanted)
    got = position_bias_search.search(split, None, k=k)  # first fetch: k proposals, all video 0
    for query, ranked in zip(split.queries, got, strict=True):
        scores = flat @ query
        exact = best_across_videos(split.spans.reshape(-1, 2), scores, videos, k,
                                   CORPUS_PER_VIDEO, 0.5, True)  # over every proposal
        assert ranked.tolist() == exact.tolist()
        assert np.bincount(videos[ranked]).max() <= CORPUS_PER_VIDEO
