"""Re-embedding in place (issue 23, item 8): ``index add`` brings a removed video back and
``index update`` re-embeds changed features, for every index kind and Milvus, answering as a
fresh build of the same corpus (exactly for flat; for Milvus's exact index the same moments, scores
within 2e-4; within ANN tolerance otherwise); a kill at any crash point of an update leaves the old
published state."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from moment_search.cli.app import main
from moment_search.indexer.build import BuildConfig, build_index
from moment_search.indexer.catalog import Catalog
from moment_search.indexer.edit import add_videos, remove_videos
from moment_search.indexer.integrity import index_summary
from moment_search.indexer.reembed import update_videos
from moment_search.indexer.repair import repair_index
from moment_search.indexer.verify import verify_index

from moment_search.search.searcher import Searcher

from ..conftest import write_tiny_corpus
from .test_crash import Zygote

QUERIES = ("person does action number 3", "person does action number 5", "someone waves")
K = 20


def config(kind: str, **extra) -> BuildConfig:
    return BuildConfig(shard_videos=3, device="cpu", index_kind=kind, **extra)


def answers(index_dir) -> list[list[tuple]]:
    """Top K (video, start, end, score) of each query, every moment kept (no NMS, no per-video
    cap: the index's contents are compared, not the cap's choice among them)."""
    searcher = Searcher.open(index_dir, device="cpu")
    return [[(m.video_id, round(m.start_s, 4), round(m.end_s, 4), round(m.score, 4))
             for m in searcher.search(q, k=K, nms=1.0, per_video=K)] for q in QUERIES]


def overlap(got, want) -> float:
    """Mean fraction of the reference's top-K moments (video, start, end) found."""
    return float(np.mean([len({m[:3] for m in g} & {m[:3] for m in w}) / len(w)
                          for g, w in zip(got, want, strict=True)]))


def change_features(corpus, video_id: str) -> None:
    path = corpus / "features" / f"{video_id}.npy"
    features = np.load(path)
    np.save(path, np.roll(features, 3, axis=0) * 1.5)


def assert_same_answers(kind: str, got, want) -> None:
    if kind == "flat":
        assert got == want
    elif kind == "milvus":  # exact search in another engine: its float sums differ in the 5th digit
        for g, w in zip(got, want, strict=True):
            scores, reference = dict((m[:3], m[3]) for m in g), dict((m[:3], m[3]) for m in w)
            assert scores.keys() == reference.keys()
            assert all(abs(scores[m] - reference[m]) <= 2e-4 for m in scores)
    else:  # approximate: the same moments, nearly
        assert overlap(got, want) >= 0.9


@pytest.mark.parametrize("kind", ["flat", "ivf", "ivfpq", "hnsw", "milvus"])
def test_readd_and_update_answer_as_a_fresh_build(kind, tmp_path, tiny_model_dir):
    backend = {"backend": "milvus", "milvus_uri": str(tmp_path / "m.db")} \
        if kind == "milvus" else {}
    kind_of = "flat" if kind == "milvus" else kind  # Milvus builds its FLAT (exact) index
    corpus = write_tiny_corpus(tmp_path / "corpus", n_videos=9)
    out, fresh = tmp_path / "idx", tmp_path / "fresh"
    build_index(corpus, out, tiny_model_dir, config(kind_of, **backend))
    build_index(corpus, fresh, tiny_model_dir, config(kind_of))
    remove_videos(out, ["vid003", "vid006"])
    report = add_videos(corpus, out, config(kind_of))
    assert any("added back 2 removed video(s)" in n for n in report.notes)
    assert verify_index(out) == []
    summary = index_summary(out)
    assert (summary["videos_indexed"], summary["videos_removed"]) == (9, 0)
    assert_same_answers(kind, answers(out), answers(fresh))

    change_features(corpus, "vid005")
    report = add_videos(corpus, out, config(kind_of))
    assert any("'index update vid005' re-embeds them" in n for n in report.notes)
    report = update_videos(out, ["vid005", "vid001"], config=config(kind_of))
    assert report.n_videos == 1 and any("kept: vid001" in n for n in report.notes)
    assert verify_index(out) == []
    changed = tmp_path / "changed"
    build_index(corpus, changed, tiny_model_dir, config(kind_of))
    assert_same_answers(kind, answers(out), answers(changed))
    catalog = Catalog.open(out / "catalog.sqlite")
    assert len(catalog.retired_ranges()) == 3  # vid003, vid006, then vid005's first ids
    searcher = Searcher.open(out, device="cpu")
    only = searcher.search(QUERIES[0], k=5, video_ids=["vid005"], nms=1.0)
    assert [m.proposal_id >= catalog.video("vid005").first_id for m in only] == [True] * 5


def test_update_refuses_what_is_not_indexed_and_says_when_nothing_changed(tmp_path,
                                                                           tiny_model_dir,
                                                                           capsys):
    corpus = write_tiny_corpus(tmp_path / "corpus", n_videos=6)
    out = tmp_path / "idx"
    build_index(corpus, out, tiny_model_dir, config("flat"))
    remove_videos(out, ["vid002"])
    with pytest.raises(ValueError, match=r"nothing updated: 'vid002' is removed \(bring it back "
                                         r"with 'index add CORPUS'\); 'nope' is not in the index"):
        update_videos(out, ["vid001", "vid002", "nope"])
    before = Catalog.open(out / "catalog.sqlite").info().index_params
    report = update_videos(out, ["vid001"])
    assert report.notes[-1] == "nothing to update: the index is unchanged"
    assert Catalog.open(out / "catalog.sqlite").info().index_params == before
    change_features(corpus, "vid004")
    assert main(["index", "update", "vid004", "--index", str(out), "--corpus", str(corpus)]) == 0
    assert "re-embedded 1 video(s)" in capsys.readouterr().out
    assert main(["index", "update", "vid002", "--index", str(out)]) == 2
    assert "'vid002' is removed" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_killed_update_leaves_the_old_published_state(kind, tmp_path, tiny_model_dir):
    corpus = write_tiny_corpus(tmp_path / "corpus", n_videos=6)
    base = tmp_path / "base"
    build_index(corpus, base, tiny_model_dir, config(kind))
    before = answers(base)
    change_features(corpus, "vid004")
    full = tmp_path / "full"
    shutil.copytree(base, full)
    update_videos(full, ["vid004"], config=config(kind))
    after = answers(full)
    assert after != before
    zygote = Zygote(tmp_path)
    try:
        args = {"videos": ["vid004"], "config": {"shard_videos": 3, "device": "cpu",
                                                  "index_kind": kind}}
        traced = tmp_path / "traced"
        shutil.copytree(base, traced)
        points = zygote.points("update", {**args, "index": str(traced)})
        assert "published" in points
        for n in range(1, len(points) + 1):
            index = tmp_path / f"killed-{n}"
            shutil.copytree(base, index)
            reply = zygote.run("update", {**args, "index": str(index)}, crash_at=n)
            assert reply["status"] == "killed"
            published = "published" in points[:n]
            assert answers(index) == (after if published else before), points[n - 1]
            repair_index(index)
            problems = verify_index(index)  # before the publish: vid004's features changed
            assert problems == [] if published else all(
                "'vid004': stored vectors differ from fresh embeddings" in p for p in problems
            ), f"killed at {n}: {points[n - 1]}: {problems}"
            assert answers(index) == (after if published else before)
            assert len(list(index.glob("index-*.faiss"))) == 1
            shutil.rmtree(index)  # checked: free its disk
    finally:
        zygote.close()
