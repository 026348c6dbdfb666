"""Annotation readers on the real benchmark files: counts, and every file dispatched (skipped
when ../shared/data is absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

from moment_search.data.readers import (
    QUERY_NO_VALID_WINDOW,
    WINDOW_EMPTY,
    read_activitynet_2dtan_with_report,
    read_annotations,
    read_charades_sta_with_report,
    read_jsonl_queries,
    read_jsonl_queries_with_report,
    read_qvhighlights,
    read_tacos_2dtan_with_report,
    read_tvr,
    read_tvr_with_report,
)

from ..conftest import SHARED_DATA, require_shared_data


def shared_data() -> Path:
    """``../shared/data`` beside the repository; skips the test when it is absent."""
    return require_shared_data(SHARED_DATA)


def annotations() -> Path:
    return shared_data() / "annotations"


def count_records(path: Path) -> int:
    """Non-blank lines, counting a last line without a newline (``wc -l`` does not)."""
    return sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())


def test_charades_sta_train_real():
    root = annotations() / "charades-sta"
    result = read_charades_sta_with_report(root / "charades_sta_train.txt",
                                           root / "Charades_v1_train.csv")
    corpus = result.corpus
    # 12,408 lines; 4 have end <= start (e.g. line 8252 "LEOL6 8.0 7.0") and are skipped.
    assert len(corpus.queries) + result.skipped_queries == 12_408
    assert result.skipped == {WINDOW_EMPTY: 4, QUERY_NO_VALID_WINDOW: 4}
    assert len(corpus.queries) == 12_404
    assert len(corpus.videos) == 5_338
    assert result.clipped_windows == 1_802
    first = corpus.queries[0]
    assert (first.qid, first.video_id, first.windows) == ("0", "AO8RW", ((0.0, 6.9),))
    assert first.text == "a person is putting a book on a shelf."
    assert corpus.videos["46GP8"].duration == pytest.approx(24.83)
    assert "8251" not in {q.qid for q in corpus.queries}  # line 8252, the first skipped one
    assert corpus.name == str(root / "charades_sta_train.txt")


def test_tacos_real_seconds_by_hand():
    result = read_tacos_2dtan_with_report(annotations() / "tacos" / "test.json")
    corpus = result.corpus
    assert (len(corpus.videos), len(corpus.queries)) == (25, 4_001)
    # "s30-d52.avi": fps 29.4, num_frames 7346, first timestamp [141, 354], "She took out kiwi"
    video = corpus.videos["s30-d52"]
    assert video.duration == pytest.approx(7346 / 29.4) == pytest.approx(249.8639)
    first = corpus.queries[0]
    assert (first.qid, first.text) == ("s30-d52#0", "She took out kiwi")
    assert first.windows == (pytest.approx((4.7959, 12.0408), abs=1e-4),)
    # five timestamps of s30-d41 end at frame 19154 > num_frames 19147: clipped, not dropped
    assert result.clipped_windows == 5 and result.skipped == {}


def test_activitynet_val_real():
    result = read_activitynet_2dtan_with_report(annotations() / "activitynet" / "val.json")
    corpus = result.corpus
    assert len(corpus.videos) == 4_917
    assert len(corpus.queries) == 17_505
    # 134 window ends pass their video's duration, 129 of them by <= 0.005 s (a duration
    # rounded to 0.01 s): those are kept as written, the other 5 clipped
    assert result.clipped_windows == 5 and result.skipped == {}
    video = corpus.videos["v_uqiMw7tQ1Cc"]
    assert video.duration == pytest.approx(55.15)
    second = corpus.queries[1]
    assert second.qid == "v_uqiMw7tQ1Cc#1"
    assert second.text.startswith("The coach helps")  # leading spaces stripped
    assert second.windows == ((13.79, 54.32),)


def test_qvhighlights_val_real():
    path = annotations() / "qvhighlights" / "highlight_val_release.jsonl"
    corpus = read_qvhighlights(path)
    # The README's 1,549 is `wc -l`: the last of the 1,550 records has no trailing newline.
    assert count_records(path) == 1_550
    assert len(corpus.queries) == 1_550
    assert len(corpus.videos) == 1_519
    first = corpus.queries[0]
    assert (first.qid, first.video_id, first.windows) == (
        2579, "NUsG9BgSes0_210.0_360.0", ((82.0, 150.0),))  # an integer qid stays one
    assert max(len(q.windows) for q in corpus.queries) == 25
    assert read_qvhighlights is read_jsonl_queries


def test_tvr_val_real_with_and_without_duration_file():
    root = annotations() / "tvr"
    path = root / "tvr_val_release.jsonl"
    plain = read_tvr(path)
    # The README's 10,894 is `wc -l`: the last of the 10,895 records has no trailing newline.
    assert count_records(path) == 10_895
    assert len(plain.queries) == 10_895
    assert len(plain.videos) == 2_179
    first = plain.queries[0]
    assert (first.qid, first.video_id, first.windows) == (
        90200, "friends_s01e03_seg02_clip_19", ((16.48, 33.87),))
    with_durations = read_tvr_with_report(path, root / "tvr_video2dur_idx.json")
    assert len(with_durations.corpus.queries) == 10_895 and with_durations.skipped == {}
    for vid, video in plain.videos.items():
        assert with_durations.corpus.videos[vid].duration == pytest.approx(video.duration, abs=0.5)


@pytest.mark.parametrize("split, n_queries, n_videos", [("train", 2_323, 850), ("val", 453, 150)])
def test_charades_sta_clip_real(split, n_queries, n_videos):
    result = read_jsonl_queries_with_report(shared_data() / "charades-sta-clip" / f"{split}.jsonl")
    corpus = result.corpus
    assert (len(corpus.queries), len(corpus.videos)) == (n_queries, n_videos)
    assert result.skipped == {}
    # window ends were written unrounded, durations rounded to 0.01 s: the ends past the
    # rounded duration are kept as written (the ground truth the field's evaluators read)
    assert result.clipped_windows == 0
    past = [q.windows[-1][1] - corpus.videos[q.video_id].duration for q in corpus.queries]
    assert 0 < max(past) <= 0.005
    assert {q.qid for q in corpus.queries} == {f"{split}-{i}" for i in range(n_queries)}


def test_read_annotations_dispatches_every_real_file():
    root = annotations()
    expected = {
        root / "charades-sta" / "charades_sta_train.txt": 12_404,
        root / "tacos" / "test.json": 4_001,
        root / "activitynet" / "val.json": 17_505,
        root / "qvhighlights" / "highlight_val_release.jsonl": 1_550,
        root / "tvr" / "tvr_val_release.jsonl": 10_895,
        shared_data() / "charades-sta-clip" / "val.jsonl": 453,
    }
    for path, n_queries in expected.items():
        assert len(read_annotations(path).queries) == n_queries, path
    tvr = read_annotations(root / "tvr" / "tvr_val_release.jsonl")
    assert tvr.queries[0].qid == 90200  # read as TVR, not as generic JSONL
