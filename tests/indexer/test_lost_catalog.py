"""A deleted catalog is never "resumed" into an older index (issue 23, item 2): the folder's
catalog snapshot says what was published; ``index build`` refuses and ``index repair
--rebuild-catalog`` restores the catalog, checked against the files' sha256."""

from __future__ import annotations

import pytest
from moment_search.cli.app import main
from moment_search.indexer.build import BuildConfig, build_index
from moment_search.indexer.catalog import Catalog
from moment_search.indexer.edit import add_videos, remove_videos
from moment_search.indexer.recover import rebuild_catalog
from moment_search.indexer.verify import verify_index

from moment_search.search.searcher import Searcher

from ..conftest import write_tiny_corpus

QUERIES = ("person does action number 3", "person does action number 6", "someone")


def answers(index_dir) -> list[list[tuple]]:
    searcher = Searcher.open(index_dir, device="cpu")
    return [[(m.video_id, m.start_s, m.end_s, round(m.score, 5)) for m in
             searcher.search(q, k=30, nms=1.0)] for q in QUERIES]


def statuses(index_dir) -> dict[str, list[str]]:
    catalog = Catalog.open(index_dir / "catalog.sqlite")
    return {s: sorted(v.video_id for v in catalog.videos(s)) for s in ("indexed", "removed")}


@pytest.fixture(params=["flat", "hnsw"])
def edited_index(request, tmp_path, tiny_model_dir):
    """Built on the train split, then the val videos added and vid001 removed."""
    corpus = write_tiny_corpus(tmp_path / "corpus", n_videos=9)
    out = tmp_path / "idx"
    config = BuildConfig(shard_videos=2, device="cpu", index_kind=request.param)
    build_index(corpus, out, tiny_model_dir, BuildConfig(**{**config.__dict__, "split": "train"}))
    add_videos(corpus, out, config)
    remove_videos(out, ["vid001"])
    return corpus, out, config


def test_lost_catalog_is_refused_then_rebuilt_to_the_same_index(edited_index, tiny_model_dir,
                                                               capsys):
    corpus, out, config = edited_index
    before, held = answers(out), statuses(out)
    assert held["removed"] == ["vid001"] and len(held["indexed"]) == 8
    published = sorted(p.name for p in out.iterdir())
    (out / "catalog.sqlite").unlink()
    train = BuildConfig(**{**config.__dict__, "split": "train"})
    for resume in (False, True):
        with pytest.raises(ValueError, match=r"holds a published index \(version 3, "
                                             r"version-00003.json\) but its catalog .* is missing "
                                             r".*lose what was added and removed since.*"
                                             r"--rebuild-catalog"):
            build_index(corpus, out, tiny_model_dir, train, resume=resume)
    assert sorted(p.name for p in out.iterdir()) == [n for n in published
                                                     if n != "catalog.sqlite"]
    capsys.readouterr()
    assert main(["index", "build", str(corpus), "--out", str(out), "--resume"]) == 2
    assert "--rebuild-catalog" in " ".join(capsys.readouterr().err.split())
    assert main(["query", "someone", "--index", str(out)]) == 2
    assert "--rebuild-catalog" in " ".join(capsys.readouterr().err.split())

    assert main(["index", "repair", "--index", str(out), "--rebuild-catalog"]) == 0
    assert "8 indexed and 1 removed video(s)" in " ".join(capsys.readouterr().out.split())
    assert statuses(out) == held
    assert answers(out) == before
    assert verify_index(out) == []
    with pytest.raises(ValueError, match="is not empty: --rebuild-catalog only restores"):
        rebuild_catalog(out)
    remove_videos(out, ["vid002"])  # a working index again: writers go on
    add_videos(corpus, out, config)  # both come back, re-embedded under new ids
    assert statuses(out)["removed"] == [] and verify_index(out) == []
    again = answers(out)
    (out / "catalog.sqlite").unlink()  # lost again, with retired ids this time
    assert main(["index", "repair", "--index", str(out), "--rebuild-catalog"]) == 0
    assert answers(out) == again and verify_index(out) == []


def test_rebuild_refuses_files_that_differ_from_the_snapshot(tmp_path, session_corpus,
                                                             tiny_model_dir):
    out = tmp_path / "idx"
    build_index(session_corpus, out, tiny_model_dir, BuildConfig(shard_videos=4, device="cpu"))
    (out / "catalog.sqlite").unlink()
    faiss_file = next(out.glob("index-*.faiss"))
    data = bytearray(faiss_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    faiss_file.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"cannot rebuild the catalog from .*version-00001.json: "
                                         r"the FAISS file .* has changed since it was written"):
        rebuild_catalog(out)
    assert Catalog.open(out / "catalog.sqlite").info() is None  # nothing restored


def test_an_index_without_snapshot_is_refused_without_offering_a_resume(tmp_path, session_corpus,
                                                                        tiny_model_dir):
    out = tmp_path / "idx"
    config = BuildConfig(shard_videos=4, device="cpu")
    build_index(session_corpus, out, tiny_model_dir, config)
    (out / "catalog.sqlite").unlink()
    for snapshot in out.glob("version-*.json"):  # as an index written before snapshots
        snapshot.unlink()
    with pytest.raises(ValueError, match=r"holds a published FAISS file \(index-00001.faiss\) "
                                         r"but its catalog .* no catalog snapshot"):
        build_index(session_corpus, out, tiny_model_dir, config, resume=True)
    with pytest.raises(FileNotFoundError, match="no catalog snapshot"):
        rebuild_catalog(out)
