"""``index info`` checks the published files as ``index verify`` and ``query`` do (issue 23,
item 4): one flipped byte in the middle of a FAISS file that sampled blocks miss is a problem."""

from __future__ import annotations

import json
import sqlite3

import faiss
import numpy as np
import pytest
from moment_search.cli.app import main
from moment_search.indexer import integrity
from moment_search.indexer.build import BuildConfig, build_index
from moment_search.indexer.catalog import Catalog
from moment_search.indexer.integrity import index_summary
from moment_search.indexer.store import file_sha256, quick_digest
from moment_search.indexer.verify import verify_index

BLOCK = 1 << 16  # quick_digest's block size


@pytest.fixture()
def large_index(tmp_path, session_corpus, tiny_model_dir):
    """An index whose published FAISS file is replaced by a 6 MB one (a real flat index of
    seeded vectors), its checksums recorded as if the indexer had written it: large enough that
    quick_digest samples only part of it."""
    out = tmp_path / "idx"
    build_index(session_corpus, out, tiny_model_dir, BuildConfig(shard_videos=4, device="cpu"))
    catalog = Catalog.open(out / "catalog.sqlite")
    params = dict(catalog.info().index_params)
    path = out / params["file"]
    index = faiss.IndexIDMap2(faiss.IndexFlatIP(8))
    vectors = np.random.default_rng(0).normal(size=(150_000, 8)).astype(np.float32)
    index.add_with_ids(vectors, np.arange(len(vectors), dtype=np.int64))
    faiss.write_index(index, str(path))
    params.update(file_sha256=file_sha256(path), file_quick=quick_digest(path),
                  file_bytes=path.stat().st_size)
    connection = sqlite3.connect(out / "catalog.sqlite")
    connection.execute("UPDATE index_info SET index_params = ?", (json.dumps(params),))
    connection.commit()
    connection.close()
    return out, path


def unsampled_middle_offset(size: int, blocks: int = 64) -> int:
    """A byte offset near the middle of a file that quick_digest's sampled blocks skip."""
    step = max((size - BLOCK) // max(blocks - 1, 1), 1)
    starts = sorted({min(i * step, max(size - BLOCK, 0)) for i in range(blocks)})
    covered = np.zeros(size, bool)
    for start in starts:
        covered[start:start + BLOCK] = True
    free = np.flatnonzero(~covered)
    assert len(free), "the file is too small for sampled blocks to skip any byte"
    return int(free[np.abs(free - size // 2).argmin()])


def flip_byte(path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_info_catches_a_flipped_byte_in_the_middle_of_the_faiss_file(large_index, capsys):
    index_dir, path = large_index
    assert index_summary(index_dir)["problems"] == []
    assert main(["index", "info", "--index", str(index_dir)]) == 0
    quick_before = quick_digest(path)
    flip_byte(path, unsampled_middle_offset(path.stat().st_size))
    assert quick_digest(path) == quick_before  # sampled blocks alone would not see it
    problems = index_summary(index_dir)["problems"]
    assert len(problems) == 1 and f"FAISS file {path}" in problems[0]
    assert "has changed since it was written (sha256 differs)" in problems[0]
    assert any("sha256 differs" in p for p in verify_index(index_dir))
    capsys.readouterr()
    assert main(["index", "info", "--index", str(index_dir)]) == 1
    assert "sha256 differs" in " ".join(capsys.readouterr().out.split())


def test_info_says_when_a_file_past_the_full_check_size_was_sampled(large_index, monkeypatch):
    index_dir, path = large_index
    monkeypatch.setattr(integrity, "QUERY_FULL_CHECK_BYTES", 1 << 20)
    summary = index_summary(index_dir)
    assert summary["problems"] == []
    assert any("checked its size and sampled blocks; 'index verify' reads every byte" in n
               for n in summary["notes"])
