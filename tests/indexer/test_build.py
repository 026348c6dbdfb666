import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest
from moment_search.indexer.build import BuildConfig, build_index
from moment_search.indexer.edit import add_videos, remove_videos
from moment_search.indexer.integrity import index_summary
from moment_search.indexer.store import read_metadata
from moment_search.indexer.verify import verify_index

from ..conftest import write_tiny_corpus

CONFIG = BuildConfig(shard_videos=2, device="cpu")


class Killed(RuntimeError):
    pass


class kill_after:  # noqa: N801 - used like a function
    """Progress that raises after ``n_calls`` embedding steps (an interrupted build; the crash
    tests in test_crash.py kill real processes)."""

    def __init__(self, n_calls):
        self.n_calls, self.calls, self.name = n_calls, 0, ""

    def phase(self, name, total, unit):
        self.name = name

    def advance(self, done):
        if self.name == "embedding":
            self.calls += 1
            if self.calls == self.n_calls:
                raise Killed("simulated kill")


def index_file(index_dir):
    return next(index_dir.glob("index-*.faiss"))


def test_build_info_verify(built_index, session_corpus):
    summary = index_summary(built_index)
    assert summary["videos_indexed"] == 9
    assert summary["proposals_indexed"] == 9 * 36  # N = 8, dense map
    assert summary["index_type"] == "flat"
    assert verify_index(built_index) == []
    assert summary["problems"] == [] and summary["notes"] == []
    table = read_metadata(built_index)
    assert (table.end_s > table.start_s).all()


def test_resume_gives_identical_index(tmp_path, session_corpus, tiny_model_dir):
    whole = tmp_path / "whole"
    build_index(session_corpus, whole, tiny_model_dir, CONFIG)
    broken = tmp_path / "broken"
    with pytest.raises(Killed):
        build_index(session_corpus, broken, tiny_model_dir, CONFIG, progress=kill_after(2))
    assert not list(broken.glob("index-*.faiss"))
    report = build_index(session_corpus, broken, tiny_model_dir, CONFIG, resume=True)
    assert report.shards_skipped == 2
    assert index_file(whole).read_bytes() == index_file(broken).read_bytes()
    for a, b in zip(sorted((whole / "meta").iterdir()), sorted((broken / "meta").iterdir()),
                    strict=True):
        assert pq.read_table(a).equals(pq.read_table(b))
    assert verify_index(broken) == []


def test_refuses_existing_index_and_other_model(tmp_path, session_corpus, tiny_model_dir):
    out = tmp_path / "idx"
    build_index(session_corpus, out, tiny_model_dir, CONFIG)
    before = index_file(out).read_bytes()
    with pytest.raises(ValueError, match="already holds a finished index"):
        build_index(session_corpus, out, tiny_model_dir, CONFIG)
    other = tmp_path / "other-model"
    shutil.copytree(tiny_model_dir, other)
    (other / "config.json").write_text((other / "config.json").read_text().replace(
        '"max_tokens": 32', '"max_tokens": 31'))
    broken = tmp_path / "broken"
    with pytest.raises(Killed):
        build_index(session_corpus, broken, tiny_model_dir, CONFIG, progress=kill_after(1))
    with pytest.raises(ValueError, match="another model"):
        build_index(session_corpus, broken, other, CONFIG, resume=True)
    assert index_file(out).read_bytes() == before


def test_add_then_remove(tmp_path, tiny_model_dir):
    corpus = write_tiny_corpus(tmp_path / "corpus", n_videos=9)
    out = tmp_path / "idx"
    build_index(corpus, out, tiny_model_dir, BuildConfig(shard_videos=2, device="cpu",
                                                        split="train"))
    assert index_summary(out)["videos_indexed"] == 6
    report = add_videos(corpus, out, BuildConfig(shard_videos=2, device="cpu"))
    assert report.n_videos == 3 and "6 video(s) already indexed" in report.notes[0]
    assert index_summary(out)["videos_indexed"] == 9
    assert verify_index(out) == []
    removed = remove_videos(out, ["vid002"])
    assert removed == 36
    summary = index_summary(out)
    assert summary["videos_indexed"] == 8 and summary["proposals_removed"] == 36
    assert verify_index(out) == []


def test_remove_unknown_changes_nothing(tmp_path, session_corpus, tiny_model_dir):
    out = tmp_path / "idx"
    build_index(session_corpus, out, tiny_model_dir, CONFIG)
    before = index_file(out).read_bytes()
    with pytest.raises(ValueError, match="nope"):
        remove_videos(out, ["vid001", "nope"])
    assert index_file(out).read_bytes() == before
    assert index_summary(out)["videos_indexed"] == 9


def test_verify_reports_mismatch(tmp_path, session_corpus, tiny_model_dir):
    out = tmp_path / "idx"
    build_index(session_corpus, out, tiny_model_dir, CONFIG)
    meta = sorted((out / "meta").iterdir())
    meta[-1].unlink()
    problems = verify_index(out)
    assert any("is missing" in p for p in problems)


def test_bad_corpus_and_missing_index(tmp_path, tiny_model_dir):
    (tmp_path / "empty" / "features").mkdir(parents=True)
    with pytest.raises(ValueError, match="no videos.jsonl"):
        build_index(tmp_path / "empty", tmp_path / "out", tiny_model_dir, CONFIG)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        index_summary(tmp_path / "missing")


def test_ann_index_agrees_with_exact(tmp_path, session_corpus, tiny_model_dir):
    exact = tmp_path / "flat"
    ann = tmp_path / "hnsw"
    build_index(session_corpus, exact, tiny_model_dir, CONFIG)
    build_index(session_corpus, ann, tiny_model_dir,
                BuildConfig(shard_videos=2, device="cpu", index_kind="hnsw"))
    from moment_search.search.searcher import Searcher

    a, b = Searcher.open(exact, device="cpu"), Searcher.open(ann, device="cpu")
    for text in ["person does action number 1", "someone opens a door"]:
        top_a = [(m.video_id, m.start_s) for m in a.search(text, k=5, nms=1.0)]
        top_b = [(m.video_id, m.start_s) for m in b.search(text, k=5, nms=1.0)]
        assert top_a == top_b
    np.testing.assert_array_equal(read_metadata(exact).ids, read_metadata(ann).ids)
