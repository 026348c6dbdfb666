import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from moment_search.search.localize import (
    CORPUS_PER_VIDEO,
    WIDEN_FACTOR,
    best_across_videos,
    keep_best,
    short_of_cap,
    video_cap,
    widened,
    widened_many,
)


def per_video_then_merge(spans, scores, videos, k, per_video, nms):
    """The definition: keep_best in each video, then the k best of all (ties: video, index)."""
    hits = []
    for video in np.unique(videos):
        rows = np.flatnonzero(videos == video)
        for i in keep_best(spans[rows], scores[rows], per_video, nms):
            hits.append((-scores[rows[i]], video, rows[i]))
    return [index for *_, index in sorted(hits)[:k]]


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 60), k=st.integers(1, 20),
       per_video=st.integers(1, 6), nms=st.sampled_from([0.0, 0.3, 0.5, 0.7, 1.0]))
def test_one_pass_equals_per_video_nms_then_merge(seed, n, k, per_video, nms):
    rng = np.random.default_rng(seed)
    grid = rng.integers(0, 8, size=(n, 2)).astype(np.float64)  # coarse: overlaps and ties
    spans = np.sort(grid, axis=1) + np.array([0.0, 1.0])
    scores = rng.integers(0, 5, size=n).astype(np.float64)  # many tied scores
    videos = rng.integers(0, 4, size=n)
    got = best_across_videos(spans, scores, videos, k, per_video, nms).tolist()
    assert got == per_video_then_merge(spans, scores, videos, k, per_video, nms)


def test_point_spans_suppress_only_themselves():
    spans = np.array([[1.0, 1.0], [1.0, 1.0], [2.0, 2.0]])
    chosen = best_across_videos(spans, np.array([3.0, 2.0, 1.0]), np.zeros(3, int), 3, 3, 0.5)
    assert chosen.tolist() == [0, 2]


def capped_then_held_back(spans, scores, videos, k, per_video, nms):
    """The definition of ``fill``: the capped top k, then the rest of each video's NMS survivors
    (against everything kept before them in its video), best first, up to k."""
    first = per_video_then_merge(spans, scores, videos, k, per_video, nms)
    if len(first) == k:
        return first
    kept = {v: [tuple(spans[i]) for i in first if videos[i] == v] for v in np.unique(videos)}
    rest = []
    order = np.lexsort((np.arange(len(scores)), videos, -scores))
    for i in order.tolist():
        if i in first or len(first) + len(rest) == k:
            continue
        mine = kept[videos[i]]
        if any(iou(spans[i], other) > nms for other in mine):
            continue
        if _survives_alone(i, spans, scores, videos, nms):
            mine.append(tuple(spans[i]))
            rest.append(i)
    return first + rest


def _survives_alone(i, spans, scores, videos, nms):
    """Whether NMS with no cap keeps candidate i in its video."""
    rows = np.flatnonzero(videos == videos[i])
    return rows.tolist().index(i) in keep_best(spans[rows], scores[rows], len(rows), nms).tolist()


def iou(a, b):
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = (a[1] - a[0]) + (b[1] - b[0]) - inter
    return inter / union if union > 0 else float(tuple(a) == tuple(b))


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 60), k=st.integers(1, 20),
       per_video=st.integers(1, 6), nms=st.sampled_from([0.0, 0.3, 0.5, 0.7, 1.0]))
def test_fill_adds_the_held_back_moments_after_the_capped_ones(seed, n, k, per_video, nms):
    rng = np.random.default_rng(seed)
    grid = rng.integers(0, 8, size=(n, 2)).astype(np.float64)
    spans = np.sort(grid, axis=1) + np.array([0.0, 1.0])
    scores = rng.integers(0, 5, size=n).astype(np.float64)
    videos = rng.integers(0, 4, size=n)
    got = best_across_videos(spans, scores, videos, k, per_video, nms, fill=True).tolist()
    assert got == capped_then_held_back(spans, scores, videos, k, per_video, nms)
    # as many as NMS alone leaves, up to k
    uncapped = best_across_videos(spans, scores, videos, k, k, nms)
    assert len(got) == len(uncapped)


def test_fill_on_a_small_corpus():
    # two videos, three moments each, no overlaps: cap 2 keeps four, fill brings the other two
    spans = np.array([[0, 1], [2, 3], [4, 5]] * 2, dtype=np.float64)
    scores = np.array([9.0, 8.0, 7.0, 6.0, 5.0, 4.0])
    videos = np.array([0, 0, 0, 1, 1, 1])
    assert best_across_videos(spans, scores, videos, 6, 2, 0.5).tolist() == [0, 1, 3, 4]
    assert best_across_videos(spans, scores, videos, 6, 2, 0.5, fill=True).tolist() == \
        [0, 1, 3, 4, 2, 5]
    assert best_across_videos(spans, scores, videos, 5, 2, 0.5, fill=True).tolist() == \
        [0, 1, 3, 4, 2]


def test_the_default_cap_holds_over_many_videos_only():
    assert video_cap(None, None) == (CORPUS_PER_VIDEO, True)
    assert video_cap(None, ["a", "b"]) == (CORPUS_PER_VIDEO, True)
    assert video_cap(None, ["a", "a"]) == (None, False)  # one video
    assert video_cap(3, None) == (3, False) and video_cap(1, ["a"]) == (1, False)


def test_short_of_cap_means_too_few_moments_or_a_video_past_the_cap():
    assert not short_of_cap(["a", "b", "a"], 3, 2)
    assert short_of_cap(["a", "b", "a", "a"], 4, 2)  # the fill reached a held-back moment
    assert short_of_cap(["a", "b"], 3, 2)  # fewer than k
    assert not short_of_cap(["a"] * 4, 4, None)  # no cap: only the count matters
    assert short_of_cap([], 1, 2) and not short_of_cap([], 0, 2)


def test_widened_fetches_wider_until_the_cap_holds_or_the_limit():
    # 12 proposals of video 0 score highest, then videos 1-3 alternate; spans never overlap
    videos = np.array([0] * 12 + [1, 2, 3] * 20)
    scores = -np.arange(len(videos), dtype=np.float64)
    spans = np.stack([np.arange(len(videos)), np.arange(len(videos)) + 1.0], axis=1)
    calls = []

    def fetch(n):  # the filled cap's answer from the best n proposals
        calls.append(n)
        return best_across_videos(spans[:n], scores[:n], videos[:n], 6, 2, 0.5, True).tolist()

    start = fetch(2)  # two moments of video 0: fewer than k
    assert widened(start, 2, 1000, 6, 2, fetch, videos.__getitem__) == [0, 1, 12, 13, 14, 15]
    assert calls == [2, 2 * WIDEN_FACTOR, 2 * WIDEN_FACTOR ** 2]  # 8: six of video 0; 32: met
    calls.clear()
    assert widened(start, 2, 8, 6, 2, fetch, videos.__getitem__) == [0, 1, 2, 3, 4, 5]
    assert calls == [8]  # never past the limit: the held-back moments of video 0 fill it
    calls.clear()
    assert widened([0, 12], 2, 1000, 2, 2, fetch, videos.__getitem__) == [0, 12]
    assert calls == []  # nothing short: no fetch


def test_widened_many_fetches_only_the_short_rows_once_a_round():
    # each row's videos, best proposal first; k = 2 moments, at most 1 of a video, then filled
    rankings = {0: [0] * 64, 1: [1, 2] * 32, 2: [5] * 4 + [6, 7] * 30}
    rounds = []

    def answer(row, n):
        kept, held = [], []
        for video in rankings[row][:n]:
            (held if video in kept else kept).append(video)
        return (kept + held)[:2]

    def fetch_many(rows, n):
        rounds.append((list(rows), n))
        return [answer(row, n) for row in rows]

    start = {row: answer(row, 2) for row in rankings}
    got = widened_many(start, 2, 32, 2, 1, fetch_many, lambda video: video)
    assert got == {0: [0, 0], 1: [1, 2], 2: [5, 6]}  # row 0 still short at the limit
    assert rounds == [([0, 2], 8), ([0], 32)]  # one call a round, for the short rows only
    rounds.clear()
    assert widened_many({1: [1, 2]}, 2, 32, 2, 1, fetch_many, lambda video: video) == {1: [1, 2]}
    assert rounds == []
