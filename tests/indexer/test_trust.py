"""Trust: one test per item of the index-safety list (locks, resume identity, pending state,
content checks, length checks, clear errors, no-op adds). Crash loops: test_crash.py."""

from __future__ import annotations

import json
import os
import shutil

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from moment_search.indexer.build import BuildConfig, build_index
from moment_search.indexer.catalog import Catalog
from moment_search.indexer.edit import add_videos, remove_videos
from moment_search.indexer.integrity import index_summary
from moment_search.indexer.lock import IndexBusyError, writer_lock
from moment_search.indexer.repair import repair_index
from moment_search.indexer.store import file_sha256, quick_digest
from moment_search.indexer.verify import verify_index

from moment_search.search.searcher import Searcher

from ..conftest import write_tiny_corpus
from .test_build import Killed, kill_after

CONFIG = BuildConfig(shard_videos=2, device="cpu")


@pytest.fixture()
def index(tmp_path, session_corpus, tiny_model_dir):
    out = tmp_path / "idx"
    build_index(session_corpus, out, tiny_model_dir, CONFIG)
    return out


def catalog_of(index_dir):
    return Catalog.open(index_dir / "catalog.sqlite")


def published(index_dir):
    return catalog_of(index_dir).info().index_params


def test_second_writer_fails_naming_the_holder_and_readers_do_not_block(index, session_corpus):
    with writer_lock(index, "index add"):
        with pytest.raises(IndexBusyError, match=rf"pid {os.getpid()} on host .*'index add'"):
            remove_videos(index, ["vid001"])
        with pytest.raises(IndexBusyError, match="being changed"):
            add_videos(session_corpus, index, CONFIG)
        assert Searcher.open(index, device="cpu").search("person", k=3)  # readers go on
    assert remove_videos(index, ["vid001"]) == 36  # free again


def test_resume_refuses_another_corpus_or_settings(tmp_path, tiny_model_dir):
    corpus = write_tiny_corpus(tmp_path / "corpus", n_videos=6)
    out = tmp_path / "idx"
    with pytest.raises(Killed):
        build_index(corpus, out, tiny_model_dir, CONFIG, progress=kill_after(1))
    with pytest.raises(ValueError, match="holds an interrupted build; continue it with --resume"):
        build_index(corpus, out, tiny_model_dir, CONFIG)
    other = BuildConfig(shard_videos=3, device="cpu")
    with pytest.raises(ValueError, match="setting shard_videos: 2 then, 3 now"):
        build_index(corpus, out, tiny_model_dir, other, resume=True)
    (corpus / "features" / "vid004.npy").unlink()
    for split in ("train", "val"):
        path = corpus / f"{split}.jsonl"
        rows = [r for r in path.read_text().splitlines() if '"vid004"' not in r]
        path.write_text("\n".join(rows) + "\n")
    with pytest.raises(ValueError, match=r"1 video\(s\) dropped: vid004"):
        build_index(corpus, out, tiny_model_dir, CONFIG, resume=True)
    features = np.load(corpus / "features" / "vid003.npy")
    write_tiny_corpus(tmp_path / "again", n_videos=6)  # restore vid004 and change vid003
    shutil.copy(tmp_path / "again" / "features" / "vid004.npy", corpus / "features")
    for split in ("train", "val"):
        shutil.copy(tmp_path / "again" / f"{split}.jsonl", corpus)
    np.save(corpus / "features" / "vid003.npy", features + 1)
    with pytest.raises(ValueError, match=r"changed \(duration, rate or features\): vid003"):
        build_index(corpus, out, tiny_model_dir, CONFIG, resume=True)
    np.save(corpus / "features" / "vid003.npy", features)
    build_index(corpus, out, tiny_model_dir, CONFIG, resume=True)
    assert verify_index(out) == []


def interrupted_add(tmp_path, tiny_model_dir):
    corpus = write_tiny_corpus(tmp_path / "corpus", n_videos=9)
    out = tmp_path / "idx"
    build_index(corpus, out, tiny_model_dir, BuildConfig(shard_videos=2, device="cpu",
                                                        split="train"))
    with pytest.raises(Killed):
        add_videos(corpus, out, CONFIG, progress=kill_after(1))  # one new shard recorded
    return corpus, out


def test_pending_videos_are_a_visible_state(tmp_path, tiny_model_dir):
    corpus, out = interrupted_add(tmp_path, tiny_model_dir)
    summary = index_summary(out)
    assert (summary["videos_indexed"], summary["videos_pending"]) == (6, 2)
    assert "pending" in summary["notes"][0] and summary["problems"] == []
    pending = [v.video_id for v in catalog_of(out).videos("pending")]
    searcher = Searcher.open(out, device="cpu")
    with pytest.raises(ValueError, match="pending: an 'index add' embedded them"):
        searcher.search("person", k=3, video_ids=pending[:1])
    with pytest.raises(ValueError, match="pending"):
        remove_videos(out, pending[:1])
    assert any("pending" in p for p in verify_index(out))
    report = add_videos(corpus, out, CONFIG)  # finishes them and adds the last video
    assert any("finished 2 pending" in n for n in report.notes)
    assert index_summary(out)["videos_indexed"] == 9 and verify_index(out) == []


def test_repair_drops_pending_videos(tmp_path, tiny_model_dir):
    _, out = interrupted_add(tmp_path, tiny_model_dir)
    notes = repair_index(out)
    assert any("dropped 2 pending" in n for n in notes)
    assert index_summary(out)["videos_pending"] == 0 and verify_index(out) == []
    assert repair_index(out) == ["nothing to repair: the index is its last published state"]


def rewrite_shard_times(index_dir, video_id, start, end):
    """Set every row of one video to start-end seconds in its Parquet shard (a planted fault)."""
    record = catalog_of(index_dir).video(video_id)
    path = index_dir / "meta" / f"shard-{record.shard:05d}.parquet"
    table = pq.read_table(path)
    mine = pa.compute.equal(table.column("video_id").cast(pa.string()), video_id)
    for name, value in (("start_s", start), ("end_s", end)):
        column = pa.compute.if_else(mine, value, table.column(name))
        table = table.set_column(table.schema.get_field_index(name), name, column)
    pq.write_table(table, path)
    return path, record


def accept_files(index_dir, shard=None, path=None):
    """Record the current checksums as if the damage had been written by the indexer itself."""
    import sqlite3

    connection = sqlite3.connect(index_dir / "catalog.sqlite")
    if shard is not None:
        connection.execute("UPDATE build_shards SET checksum = ? WHERE shard = ?",
                           (file_sha256(path), shard))
    else:
        params = published(index_dir)
        params.update(file_sha256=file_sha256(path), file_quick=quick_digest(path))
        connection.execute("UPDATE index_info SET index_params = ?", (json.dumps(params),))
    connection.commit()
    connection.close()


def test_changed_times_are_caught_by_checksum_then_by_the_row_check(index):
    path, record = rewrite_shard_times(index, "vid002", 100.0, 200.0)
    problems = verify_index(index)
    assert any("has changed since it was written" in p for p in problems)
    with pytest.raises(ValueError, match="has changed since it was written"):
        Searcher.open(index, device="cpu")
    assert index_summary(index)["problems"]
    accept_files(index, shard=record.shard, path=path)
    assert any(f"'vid002' ({record.duration:g} s): 36 row(s) outside the video" in p
               for p in verify_index(index))


def test_permuted_faiss_vectors_are_caught(index):
    path = index / published(index)["file"]
    size = path.stat().st_size
    original = faiss.read_index(str(path))
    ids = faiss.vector_to_array(original.id_map)
    vectors = original.reconstruct_batch(ids)
    permuted = faiss.IndexIDMap2(faiss.IndexFlatIP(original.d))
    permuted.add_with_ids(vectors[np.random.default_rng(0).permutation(len(ids))], ids)
    faiss.write_index(permuted, str(path))
    assert path.stat().st_size == size
    assert any("FAISS file" in p and "has changed" in p for p in verify_index(index))
    with pytest.raises(ValueError, match="FAISS file .* has changed"):
        Searcher.open(index, device="cpu")
    accept_files(index, path=path)
    problems = verify_index(index, sample_videos=3)
    assert len(problems) == 3 and all("differ from fresh embeddings" in p for p in problems)


def test_lost_parquet_shard_is_a_clear_error(index):
    (index / "meta" / "shard-00001.parquet").unlink()
    with pytest.raises(FileNotFoundError, match="shard-00001.parquet is missing"):
        Searcher.open(index, device="cpu")
    assert any("shard-00001.parquet is missing" in p for p in verify_index(index))
    with pytest.raises(ValueError, match="cannot repair: .*missing"):
        repair_index(index)


def test_duration_that_disagrees_with_the_features_is_refused(tmp_path, tiny_model_dir):
    corpus = tmp_path / "corpus"
    (corpus / "features").mkdir(parents=True)
    np.save(corpus / "features" / "long.npy", np.ones((33, 8), np.float32))
    np.save(corpus / "features" / "fine.npy", np.ones((20, 8), np.float32))
    (corpus / "videos.jsonl").write_text(
        '{"video_id": "fine", "duration": 19.6, "feature_rate": 1.0}\n'
        '{"video_id": "long", "duration": 100000, "feature_rate": 1.0}\n')
    with pytest.raises(ValueError, match=r"'long' .*long.npy\): 33 feature rows, but a 100000 s "
                                         r"video at 1 features/s should have about 100000.0"):
        build_index(corpus, tmp_path / "idx", tiny_model_dir, CONFIG)
    assert not (tmp_path / "idx").exists()  # a failed build leaves nothing behind


def test_wrong_widths_and_garbage_files_are_named(tmp_path, tiny_model_dir):
    corpus = write_tiny_corpus(tmp_path / "corpus", n_videos=4, width=6)
    with pytest.raises(ValueError, match=r"4 of 4 videos have features of the wrong width for "
                                         r"the model, which expects 8: .*vid000.npy \(6 wide\)"):
        build_index(corpus, tmp_path / "a", tiny_model_dir, CONFIG)
    corpus = write_tiny_corpus(tmp_path / "corpus8", n_videos=4)
    np.save(corpus / "features" / "vid002.npy", np.ones((20, 5), np.float32))
    with pytest.raises(ValueError, match=r"1 of 4 videos .*vid002.npy \(5 wide\)"):
        build_index(corpus, tmp_path / "b", tiny_model_dir, CONFIG)
    (corpus / "features" / "vid002.npy").write_bytes(b"not an array at all")
    with pytest.raises(ValueError, match="vid002.npy: not a numeric array") as caught:
        build_index(corpus, tmp_path / "c", tiny_model_dir, CONFIG)
    assert "pickle" not in str(caught.value)
    empty = tmp_path / "empty-out"
    empty.mkdir()
    with pytest.raises(ValueError):
        build_index(corpus, empty, tiny_model_dir, CONFIG)
    assert sorted(p.name for p in empty.iterdir()) in ([], [".writer.lock"])  # no model/ left


def test_targets_a_build_must_refuse(tmp_path, index, session_corpus, tiny_model_dir):
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    with pytest.raises(ValueError, match="is a file, not a directory"):
        build_index(session_corpus, a_file, tiny_model_dir, CONFIG)
    other = tmp_path / "photos"
    other.mkdir()
    (other / "holiday.jpg").write_text("x")
    with pytest.raises(ValueError, match="non-empty folder that is not an index .*holiday.jpg"):
        build_index(session_corpus, other, tiny_model_dir, CONFIG)
    assert sorted(p.name for p in other.iterdir()) == ["holiday.jpg"]
    with pytest.raises(ValueError, match="already holds a finished index, so there is nothing "
                                         "to resume"):
        build_index(session_corpus, index, tiny_model_dir, CONFIG, resume=True)


def test_remove_twice_the_same_id_and_bad_nms(index):
    assert remove_videos(index, ["vid003", "vid003"]) == 36
    with pytest.raises(ValueError, match=r"\['vid003'\] already removed"):
        remove_videos(index, ["vid003"])
    searcher = Searcher.open(index, device="cpu")
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match=r"nms must be an IoU threshold in \(0, 1\]"):
            searcher.search("person", k=3, nms=bad)


def test_disk_full_names_the_file_and_keeps_the_old_content(tmp_path):
    from moment_search.atomic import atomic_write

    target = tmp_path / "kept.bin"
    target.write_bytes(b"old")

    def fill(temp):  # a real ENOSPC from the kernel: /dev/full refuses every write
        with open("/dev/full", "wb") as handle:
            handle.write(b"x" * 65536)
    with pytest.raises(OSError, match=r"no space left on the device while writing .*kept.bin"):
        atomic_write(target, fill)
    assert target.read_bytes() == b"old" and sorted(tmp_path.iterdir()) == [target]


def test_noop_add_keeps_the_file_and_changed_features_are_named(tmp_path, tiny_model_dir):
    corpus = write_tiny_corpus(tmp_path / "corpus", n_videos=4)
    out = tmp_path / "idx"
    build_index(corpus, out, tiny_model_dir, CONFIG)
    before = published(out)
    report = add_videos(corpus, out, CONFIG)
    assert report.notes[-1] == "nothing to add: the index is unchanged"
    assert published(out) == before
    np.save(corpus / "features" / "vid001.npy", np.load(corpus / "features" / "vid001.npy") * 2)
    report = add_videos(corpus, out, CONFIG)
    assert any("1 of them have different features now" in n and "vid001" in n
               for n in report.notes)


def test_read_only_catalog_is_a_clear_error(index):
    url = f"sqlite:///file:{index / 'catalog.sqlite'}?mode=ro&uri=true"
    catalog = Catalog.open(url)  # a real read-only SQLite connection (refuses even root)
    with pytest.raises(ValueError, match="the write was refused .*read-only.*Nothing was changed"):
        catalog.publish("flat", published(index), remove=["vid001"])
    assert catalog_of(index).video_status("vid001") == "indexed"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders anyway")
def test_read_only_index_folder_is_a_clear_error(index):
    os.chmod(index, 0o555)
    try:
        with pytest.raises(PermissionError, match="read-only .*nothing was changed"):
            remove_videos(index, ["vid001"])
    finally:
        os.chmod(index, 0o755)
