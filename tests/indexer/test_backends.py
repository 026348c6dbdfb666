"""The vector stores behind one interface: the same index tests on FAISS and milvus-lite (build,
search, filtered search, add, remove, verify, reopen), a killed Milvus build resumed, and the
error when pymilvus is missing."""

from __future__ import annotations

import shutil
import sys

import numpy as np
import pytest
from moment_search.indexer.build import BuildConfig, build_index
from moment_search.indexer.edit import add_videos, remove_videos
from moment_search.indexer.integrity import index_summary
from moment_search.indexer.repair import repair_index
from moment_search.indexer.verify import verify_index

from moment_search.search.searcher import Searcher

from ..conftest import write_tiny_corpus
from .test_crash import Zygote

QUERY = "person does action number 3"


def config(backend: str, **extra) -> BuildConfig:
    return BuildConfig(shard_videos=2, device="cpu", backend=backend, **extra)


def top(index_dir, k=8, **options):
    searcher = Searcher.open(index_dir, device="cpu")
    return [(m.video_id, round(m.start_s, 3), round(m.score, 4))
            for m in searcher.search(QUERY, k=k, nms=1.0, **options)]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_tiny_corpus(tmp_path_factory.mktemp("backends") / "corpus", n_videos=7)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, corpus, tiny_model_dir):
    """A FAISS index of every video: what both backends must answer."""
    out = tmp_path_factory.mktemp("reference") / "idx"
    build_index(corpus, out, tiny_model_dir, config("faiss"))
    return out


@pytest.mark.parametrize("backend", ["faiss", "milvus"])
def test_build_search_filter_add_remove_reopen(backend, tmp_path, corpus, reference,
                                               tiny_model_dir):
    out = tmp_path / "idx"
    build_index(corpus, out, tiny_model_dir, config(backend, split="train"))
    add_videos(corpus, out, config(backend))  # the val videos
    assert verify_index(out) == [] and index_summary(out)["videos_indexed"] == 7
    assert top(out) == top(reference)
    assert top(out, video_ids=["vid004"]) == top(reference, video_ids=["vid004"])
    assert {v for v, _, _ in top(out, k=5, video_ids=["vid004"])} == {"vid004"}
    assert remove_videos(out, ["vid004", "vid001"]) == 72
    assert verify_index(out) == []
    assert not {v for v, _, _ in top(out, k=30)} & {"vid004", "vid001"}
    assert top(out, k=30) == top(out, k=30)  # a fresh searcher, a fresh client: the same


def test_milvus_params_are_recorded(tmp_path, corpus, tiny_model_dir):
    out = tmp_path / "idx"
    build_index(corpus, out, tiny_model_dir, config("milvus", milvus_uri=str(tmp_path / "m.db")))
    params = index_summary(out)["index_params"]
    assert params["backend"] == "milvus" and params["uri"] == str(tmp_path / "m.db")
    assert params["collection"].startswith("moment_search_")


@pytest.mark.parametrize("kind, params, built", [
    ("ivf", {"nlist": 4, "nprobe": 2}, {"nlist": 4}),
    ("hnsw", {"M": 8, "ef_construction": 24}, {"M": 8, "efConstruction": 24}),
])
def test_milvus_builds_with_the_asked_params(tmp_path, kind, params, built):
    """The collection's index is built with the spec's params, not milvus-lite's defaults
    (milvus-lite 3.x silently dropped them when pymilvus sent them flat)."""
    from types import SimpleNamespace

    from moment_search.indexer.backends.milvus_store import MilvusStore

    spec = SimpleNamespace(kind=kind, params=params)
    store = MilvusStore.create(str(tmp_path / "m.db"), "c", 8, spec, fresh=True)
    name = store.client.list_indexes("c")[0]
    described = store.client.describe_index("c", name)
    stored = described.get("params", described)  # nested (milvus-lite 3.x) or flat
    assert {key: int(stored[key]) for key in built} == built


def test_killed_milvus_build_resumes(tmp_path, corpus, reference, tiny_model_dir):
    zygote = Zygote(tmp_path)
    try:
        args = {"corpus": str(corpus), "model": str(tiny_model_dir),
                "config": {"shard_videos": 2, "device": "cpu", "backend": "milvus"}}
        points = zygote.points("build", {**args, "out": str(tmp_path / "traced")})
        for n in range(2, len(points) + 1, 3):
            out = tmp_path / f"killed-{n}"
            assert zygote.run("build", {**args, "out": str(out)}, crash_at=n)["status"] == \
                "killed"
            if "published" in points[:n]:
                repair_index(out)
            else:
                build_index(corpus, out, tiny_model_dir, config("milvus"), resume=True)
            assert verify_index(out) == [], f"killed at {points[n - 1]}"
            assert top(out) == top(reference)
            shutil.rmtree(out)  # checked: free its disk
    finally:
        zygote.close()


def test_killed_milvus_remove_is_repaired(tmp_path, corpus, tiny_model_dir):
    out = tmp_path / "idx"
    build_index(corpus, out, tiny_model_dir, config("milvus"))
    from moment_search.indexer.backends import open_store
    from moment_search.indexer.catalog import Catalog

    catalog = Catalog.open(out / "catalog.sqlite")
    params = catalog.info().index_params
    # what a kill between the catalog's publish and the delete leaves: vectors of a removed video
    store = open_store(out, params)
    record = catalog.video("vid002")
    vectors, _ = store.vectors(np.arange(record.first_id, record.end_id))
    remove_videos(out, ["vid002"])
    table_rows = np.arange(record.first_id, record.end_id)
    store.upsert(table_rows, vectors, ["vid002"] * len(table_rows), np.zeros(len(table_rows)),
                 np.ones(len(table_rows)))
    store.finish()
    assert any("index repair" in p for p in verify_index(out))
    assert "vid002" not in {v for v, _, _ in top(out, k=30)}  # the catalog filters it anyway
    assert any("deleted 36 Milvus vector" in n for n in repair_index(out))
    assert verify_index(out) == []


def test_missing_pymilvus_names_the_extra(monkeypatch):
    from moment_search.indexer.backends import milvus_store

    monkeypatch.setitem(sys.modules, "pymilvus", None)  # what an absent package looks like
    with pytest.raises(ImportError, match=r"moment-search\[milvus\]"):
        milvus_store.import_milvus()


def test_milvus_auto_keeps_exact_search_where_faiss_would_tune_an_ivf():
    """At 136,000 x 264 FAISS's auto picks an IVF whose nprobe the build tunes; Milvus's
    IVF_FLAT would not be tuned, so auto keeps FLAT there while it fits the budget."""
    from types import SimpleNamespace

    from moment_search.indexer.publish import choose_spec, milvus_spec

    shard = SimpleNamespace(n_proposals=136_000)
    catalog = SimpleNamespace(embedded_shards=lambda: {0: shard},
                              info=lambda: SimpleNamespace(embedding_dim=264))
    auto = BuildConfig(backend="milvus", memory_budget="4G")
    assert choose_spec(catalog, [0], auto).kind == "ivf"
    assert milvus_spec(catalog, [0], auto).kind == "flat"
    assert milvus_spec(catalog, [0], BuildConfig(backend="milvus", index_kind="ivf")).kind == "ivf"
    tight = BuildConfig(backend="milvus", memory_budget="100M")  # flat would not fit
    assert milvus_spec(catalog, [0], tight).kind != "flat"
