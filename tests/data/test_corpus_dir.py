import json

import numpy as np
import pytest

from moment_search.data.corpus import CorpusError, Query
from moment_search.data.corpus_dir import open_corpus
from moment_search.data.stats import corpus_stats

from ..conftest import CHARADES_CLIP, require_shared_data


def test_split_and_union(tiny_corpus):
    val, store = open_corpus(tiny_corpus, split="val")
    assert len(val) == 2 and len(val.queries) == 2
    video = next(iter(val))
    assert video.feature_source.endswith(".npy")
    assert store.load(video.video_id).shape[1] == 8
    everything, _ = open_corpus(tiny_corpus)
    assert len(everything) == 6 and len(everything.queries) == 6


def test_manifest_only_corpus(tmp_path):
    (tmp_path / "features").mkdir()
    np.save(tmp_path / "features" / "x.npy", np.ones((4, 2), np.float32))
    (tmp_path / "videos.jsonl").write_text(json.dumps({"video_id": "x", "duration": 4.0}) + "\n")
    corpus, _ = open_corpus(tmp_path, feature_rate=1.0)
    assert corpus.video("x").feature_rate == 1.0 and corpus.queries == []


def test_bad_manifest_line_named(tmp_path):
    (tmp_path / "features").mkdir()
    (tmp_path / "videos.jsonl").write_text('{"video_id": "x", "duration": 4}\n{"video_id": "y"}\n')
    with pytest.raises(CorpusError, match=r"videos.jsonl:2"):
        open_corpus(tmp_path)


def test_video_without_features(tiny_corpus):
    (tiny_corpus / "features" / "vid002.npy").unlink()
    with pytest.raises(CorpusError, match="vid002"):
        open_corpus(tiny_corpus, split="val")


def test_unknown_split_and_empty(tiny_corpus, tmp_path):
    with pytest.raises(CorpusError, match="split 'test'"):
        open_corpus(tiny_corpus, split="test")
    (tmp_path / "empty" / "features").mkdir(parents=True)
    with pytest.raises(CorpusError, match="no videos.jsonl manifest"):
        open_corpus(tmp_path / "empty")


def test_query_window_validation():
    with pytest.raises(CorpusError, match="start < end"):
        Query("q", "text", "v", ((5.0, 5.0),))


def test_stats_on_real_val():
    require_shared_data(CHARADES_CLIP)
    corpus, _ = open_corpus(CHARADES_CLIP, split="val")
    stats = corpus_stats(corpus)
    assert stats["videos"] == 150 and stats["queries"] == 453
    assert 20 < stats["duration_s"]["p50"] < 40
    assert 0 < stats["moment_fraction"]["mean"] < 1
