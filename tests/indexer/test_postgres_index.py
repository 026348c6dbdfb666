"""An index whose catalog is a real PostgreSQL database: build, add, remove, verify, query, each
compared with the same steps on the default SQLite catalog."""

from __future__ import annotations

import json

import pytest
from moment_search.cli.app import main
from moment_search.indexer.build import BuildConfig, build_index
from moment_search.indexer.catalog import Catalog
from moment_search.indexer.edit import add_videos, remove_videos
from moment_search.indexer.integrity import index_summary
from moment_search.indexer.verify import verify_index

from moment_search.search.searcher import Searcher

from ..cli.test_index_cli import manifest_corpus
from ..conftest import write_tiny_corpus

pytestmark = pytest.mark.postgres
QUERIES = ["person does action number 3", "person does action number 6"]


def build_add_remove(tmp_path, name, model_dir, catalog_url):
    """Build 5 videos, add 2, remove vid001; returns the index dir and the query answers."""
    source = tmp_path / "source"
    if not source.exists():
        write_tiny_corpus(source, n_videos=9)
    base = manifest_corpus(tmp_path / name / "base", source, [f"vid00{i}" for i in range(5)])
    extra = manifest_corpus(tmp_path / name / "extra", source, ["vid005", "vid006"])
    index = tmp_path / name / "idx"
    config = BuildConfig(shard_videos=2, device="cpu", catalog_url=catalog_url)
    build_index(base, index, model_dir, config)
    assert add_videos(extra, index, config).n_videos == 2
    assert remove_videos(index, ["vid001"], catalog_url=catalog_url) == 36
    assert verify_index(index, catalog_url=catalog_url) == []
    searcher = Searcher.open(index, device="cpu", catalog_url=catalog_url)
    answers = [[m.to_dict() for m in searcher.search(q, k=5)] for q in QUERIES]
    searcher.catalog.close()
    return index, answers


def test_index_lifecycle_on_postgres_matches_sqlite(tmp_path, tiny_model_dir, postgres_url):
    index, answers = build_add_remove(tmp_path, "pg", tiny_model_dir, postgres_url)
    _, reference = build_add_remove(tmp_path, "sqlite", tiny_model_dir, None)
    assert not (index / "catalog.sqlite").exists()  # the catalog lives in PostgreSQL only
    assert answers == reference and all(len(a) == 5 for a in answers)
    assert "vid001" not in {m["video_id"] for a in answers for m in a}
    summary = index_summary(index, postgres_url)
    assert (summary["videos_indexed"], summary["videos_removed"]) == (6, 1)
    with Catalog.open(postgres_url) as catalog:
        assert [v.video_id for v in catalog.videos("removed")] == ["vid001"]
        assert catalog.info().index_params["shards"] == [0, 1, 2, 3]
    with pytest.raises(FileNotFoundError, match="no catalog.sqlite"):
        Searcher.open(index, device="cpu")  # without --catalog it is not an index


def test_cli_reads_the_postgres_catalog(tmp_path, tiny_model_dir, postgres_url, capsys):
    index, answers = build_add_remove(tmp_path, "pg", tiny_model_dir, postgres_url)
    flags = ["--index", str(index), "--catalog", postgres_url]
    assert main(["index", "info", *flags]) == 0
    assert main(["index", "verify", *flags, "--sample", "2"]) == 0
    assert "checksums match" in " ".join(capsys.readouterr().out.split())
    assert main(["query", QUERIES[0], *flags, "-k", "3", "--json", "--device", "cpu"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line) for line in lines] == answers[0][:3]
