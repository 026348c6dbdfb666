"""The index catalog: persistence, model-mixing refusal, atomic shard records, removal, ids."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from moment_search.indexer.catalog import Catalog, CatalogError, VideoRecord
from sqlalchemy import create_engine, text


def make_videos(shard: int, first_id: int, sizes: list[int], prefix: str = "vid"
                ) -> list[VideoRecord]:
    """Videos of one shard whose id ranges tile up from ``first_id``."""
    videos, next_id = [], first_id
    for i, n in enumerate(sizes):
        videos.append(VideoRecord(
            video_id=f"{prefix}{shard}-{i}", duration=10.0 + i, feature_source=f"f/{i}.npy",
            feature_rate=None if i % 2 else 1.0, checksum=f"{i:040x}", n_proposals=n,
            first_id=next_id, shard=shard,
        ))
        next_id += n
    return videos


def recorded(catalog, shard, first_id, sizes, prefix="vid"):
    """Record a shard and publish it (its videos become indexed)."""
    videos = make_videos(shard, first_id, sizes, prefix)
    catalog.record_shard(shard, first_id, videos, checksum=f"{shard:064x}")
    if catalog.info() is None:
        catalog.init_index("fvmr-a", "abc", 16, 1.0, 8)
    published = (catalog.info().index_params or {}).get("shards", [])
    catalog.publish("flat", {"shards": published + [shard]})
    return videos


ZERO = {f"{what}_{status}": 0 for status in ("pending", "indexed", "removed")
        for what in ("videos", "proposals")}


POSTGRES = pytest.param("postgresql", marks=pytest.mark.postgres)


def target_url(kind: str, request, tmp_path) -> str:
    """An empty catalog's URL: an SQLite file, SQLite in memory, or a fresh PostgreSQL database."""
    if kind == "postgresql":
        return request.getfixturevalue("postgres_url")
    return str(tmp_path / "catalog.sqlite") if kind == "file" else "sqlite://"


@pytest.fixture(params=["file", "memory", POSTGRES])
def catalog(request, tmp_path):
    """A fresh catalog in an SQLite file, in SQLite memory and in a PostgreSQL database."""
    with Catalog.open(target_url(request.param, request, tmp_path)) as opened:
        yield opened


@pytest.fixture(params=["file", POSTGRES])
def durable_url(request, tmp_path):
    """The URL of an empty catalog that outlives its connections (not SQLite memory)."""
    return target_url(request.param, request, tmp_path)


def test_sqlite_url_and_missing_directory(tmp_path):
    assert Catalog.sqlite_url(tmp_path) == f"sqlite:///{tmp_path.resolve()}/catalog.sqlite"
    with pytest.raises(CatalogError, match="does not exist"):
        Catalog.open(tmp_path / "absent" / "catalog.sqlite")


def test_empty_catalog(catalog):
    assert catalog.info() is None
    assert catalog.next_id() == 0 and catalog.next_shard() == 0
    assert catalog.videos() == [] and catalog.embedded_shards() == {}
    assert catalog.counts() == ZERO


def test_reopen_keeps_everything(durable_url):
    videos = make_videos(0, 0, [3, 5])
    before = datetime.now(timezone.utc)
    with Catalog.open(durable_url) as catalog:
        catalog.init_index("fvmr-a", "abc", 16, 1.0, 8)
        catalog.record_shard(0, 0, videos, checksum="ab" * 32)
        catalog.publish("Flat", {"metric": "ip", "shards": [0]})
    with Catalog.open(durable_url) as catalog:
        info = catalog.info()
        assert (info.model_id, info.config_hash, info.map_size, info.embedding_dim) == (
            "fvmr-a", "abc", 16, 8)
        assert info.index_type == "Flat" and info.n_proposals == 8 and info.format_version == 3
        assert info.created_at.tzinfo == timezone.utc and info.updated_at.tzinfo == timezone.utc
        assert before <= info.created_at <= info.updated_at <= datetime.now(timezone.utc)
        assert catalog.embedded_shards()[0].updated_at.tzinfo == timezone.utc
        assert catalog.videos() == videos
        assert catalog.video("vid0-1") == videos[1]
        assert catalog.embedded_shards()[0].n_proposals == 8
        assert catalog.embedded_shards()[0].checksum == "ab" * 32


def test_init_index_refuses_another_model(catalog):
    catalog.init_index("fvmr-a", "abc", 16, 1.0, 8)
    catalog.init_index("fvmr-a", "abc", 16, 1.0, 8)  # same model: fine
    refusal = r"model fvmr-b \(config def\) into an index built with model fvmr-a \(config abc\)"
    with pytest.raises(CatalogError, match=refusal):
        catalog.init_index("fvmr-b", "def", 16, 1.0, 8)
    with pytest.raises(CatalogError, match="map_size 32 differs"):
        catalog.init_index("fvmr-a", "abc", 32, 1.0, 8)
    assert catalog.info().model_id == "fvmr-a"


def test_publish_json_params_round_trip(catalog):
    with pytest.raises(CatalogError, match="before init_index"):
        catalog.publish("Flat", {})
    catalog.init_index("fvmr-a", "abc", 16, None, 8)
    info = catalog.info()
    assert info.index_type is None and info.index_params == {} and info.feature_rate is None
    params = {"nlist": 64, "nprobe": 8, "factory": "IVF64,PQ8", "gpu": False, "ratio": 0.5,
              "shape": [3, 4], "nested": {"a": None}}
    catalog.publish("IVF64,PQ8", params)
    info = catalog.info()
    assert info.index_params == params
    assert (info.n_videos, info.n_proposals, info.n_removed_proposals) == (0, 0, 0)
    assert info.updated_at >= info.created_at


def test_record_shard_and_ids(catalog):
    catalog.record_shard(0, 0, make_videos(0, 0, [3, 5]))
    catalog.record_shard(2, 20, make_videos(2, 20, [4]))  # out of order: shard 1 comes later
    assert catalog.next_id() == 24 and catalog.next_shard() == 3
    catalog.record_shard(1, 8, make_videos(1, 8, [6, 6]))
    assert catalog.next_id() == 24
    assert [v.first_id for v in catalog.videos("pending")] == [0, 3, 8, 14, 20]
    assert catalog.videos() == []  # indexed only once published
    shards = catalog.embedded_shards()
    assert sorted(shards) == [0, 1, 2]
    assert (shards[1].first_id, shards[1].n_videos, shards[1].n_proposals) == (8, 2, 12)
    assert shards[1].status == "embedded"
    with pytest.raises(CatalogError, match="shard 1 is already embedded"):
        catalog.record_shard(1, 24, make_videos(1, 24, [2], prefix="other"))


def test_record_shard_is_atomic(catalog):
    videos = make_videos(0, 0, [3, 5, 2])
    duplicate = VideoRecord(**{**videos[1].__dict__, "first_id": 10})
    with pytest.raises(CatalogError, match="'vid0-1' is already pending"):
        catalog.record_shard(0, 0, videos + [duplicate])
    # The shard row and the first videos were written inside the failed transaction: all gone.
    assert catalog.embedded_shards() == {} and catalog.next_shard() == 0
    assert catalog.video("vid0-0") is None and catalog.videos() == []
    catalog.record_shard(0, 0, videos)  # and the shard can be recorded afterwards
    assert len(catalog.videos("pending")) == 3


def test_record_shard_refuses_indexed_video_and_bad_ranges(catalog):
    recorded(catalog, 0, 0, [3])
    again = make_videos(1, 3, [2]) + [VideoRecord(**{**make_videos(0, 0, [3])[0].__dict__,
                                                     "first_id": 5, "shard": 1})]
    with pytest.raises(CatalogError, match="'vid0-0' is already indexed"):
        catalog.record_shard(1, 3, again)
    with pytest.raises(CatalogError, match="contiguous"):
        catalog.record_shard(1, 4, make_videos(1, 3, [2]))
    with pytest.raises(CatalogError, match="says shard 2"):
        catalog.record_shard(1, 3, make_videos(2, 3, [2]))
    with pytest.raises(CatalogError, match="overlap .* 'vid0-0'"):
        catalog.record_shard(1, 1, make_videos(1, 1, [2]))
    assert catalog.next_shard() == 1 and catalog.next_id() == 3


def test_publish_removes_all_or_nothing(catalog):
    recorded(catalog, 0, 0, [3, 5, 2])
    params = catalog.info().index_params
    for bad, why in ((["vid0-0", "nope"], "'nope': not in the catalog"),
                     (["vid0-1", "vid0-1"], "'vid0-1': it is removed")):
        with pytest.raises(CatalogError, match=why):
            catalog.publish("flat", params, remove=bad)
        assert len(catalog.videos()) == 3 and catalog.videos("removed") == []
    removed = catalog.publish("flat", params, remove=["vid0-2", "vid0-0"])
    assert [v.video_id for v in removed] == ["vid0-2", "vid0-0"]
    assert [v.video_id for v in catalog.videos("removed")] == ["vid0-0", "vid0-2"]
    assert [v.video_id for v in catalog.videos()] == ["vid0-1"]
    assert catalog.counts() == {**ZERO, "videos_indexed": 1, "videos_removed": 2,
                                "proposals_indexed": 5, "proposals_removed": 5}
    assert catalog.info().n_removed_proposals == 5
    assert catalog.next_id() == 10  # removed ids stay reserved
    with pytest.raises(CatalogError, match="it is removed"):
        catalog.publish("flat", params, remove=["vid0-0"])
    with pytest.raises(CatalogError, match="status"):
        catalog.videos("gone")


def test_removed_video_can_be_recorded_again(catalog):
    recorded(catalog, 0, 0, [3, 5])
    catalog.publish("flat", catalog.info().index_params, remove=["vid0-0"])
    readded = VideoRecord(**{**make_videos(0, 0, [3])[0].__dict__, "first_id": 8, "shard": 1})
    catalog.record_shard(1, 8, [readded])
    assert catalog.video("vid0-0") == readded and catalog.video_status("vid0-0") == "pending"
    assert catalog.next_id() == 11


def test_pending_until_published_and_dropped(catalog):
    recorded(catalog, 0, 0, [3, 5])
    catalog.record_shard(1, 8, make_videos(1, 8, [4, 4]), checksum="c" * 64)
    counts = catalog.counts()
    assert (counts["videos_indexed"], counts["videos_pending"], counts["proposals_pending"]) \
        == (2, 2, 8)
    with pytest.raises(CatalogError, match="'vid1-0': it is pending"):
        catalog.publish("flat", catalog.info().index_params, remove=["vid1-0"])
    dropped = catalog.drop_pending()
    assert [v.video_id for v in dropped] == ["vid1-0", "vid1-1"]
    assert sorted(catalog.embedded_shards()) == [0] and catalog.next_id() == 8
    catalog.record_shard(1, 8, make_videos(1, 8, [4]), checksum="d" * 64)
    catalog.publish("flat", {"shards": [0, 1]})
    assert catalog.video_status("vid1-0") == "indexed" and catalog.info().n_videos == 3


def test_other_format_version_is_refused(durable_url):
    with Catalog.open(durable_url) as catalog:
        catalog.init_index("fvmr-a", "abc", 16, 1.0, 8)
    engine = create_engine(catalog.url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE index_info SET format_version = 99"))
    engine.dispose()
    with pytest.raises(CatalogError, match="format version 99"):
        Catalog.open(durable_url)


@pytest.mark.postgres
def test_missing_postgres_database_is_named(postgres_url):
    absent = postgres_url.replace("/t", "/absent_t", 1)
    with pytest.raises(CatalogError, match="absent_t.*cannot read it"):
        Catalog.open(absent)


def test_missing_postgres_skips_or_fails_as_asked(monkeypatch, tmp_path):
    from ..postgres import REQUIRE_ENV, require_postgres

    monkeypatch.setenv("PATH", str(tmp_path))  # no initdb on PATH either
    monkeypatch.delenv(REQUIRE_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="initdb, pg_ctl.*not found"):
        require_postgres(str(tmp_path / "absent" / "*" / "bin"))
    monkeypatch.setenv(REQUIRE_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match="must run"):
        require_postgres(str(tmp_path / "absent" / "*" / "bin"))
