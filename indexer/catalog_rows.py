"""The catalog's tables, the frozen records read from them, and the row-level checks and writes
that :class:`indexer.catalog.Catalog` runs inside its transactions (see catalog.py for the
model: one id space, shards, video statuses)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from typing import Any, TypeVar

from sqlalchemy import JSON, BigInteger, DateTime, String, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from ..errors import DataError

CATALOG_FILENAME = "catalog.sqlite"
FORMAT_VERSION = 3  # bump when the tables change incompatibly
PENDING, INDEXED, REMOVED = "pending", "indexed", "removed"
STATUSES = (PENDING, INDEXED, REMOVED)
EMBEDDED = "embedded"  # a build_shards row is "pending" until then


class CatalogError(DataError):
    """A catalog operation that would break the index: names the video, shard or model at fault."""


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class _Base(DeclarativeBase):
    pass


class _VideoRow(_Base):
    __tablename__ = "videos"
    video_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    duration: Mapped[float]
    feature_source: Mapped[str] = mapped_column(String(1024))
    feature_rate: Mapped[float | None]
    checksum: Mapped[str] = mapped_column(String(40))
    n_proposals: Mapped[int]
    first_id: Mapped[int] = mapped_column(BigInteger, index=True)
    shard: Mapped[int] = mapped_column(index=True)
    status: Mapped[str] = mapped_column(String(16))
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    video_path: Mapped[str | None] = mapped_column(String(4096))


class _IndexInfoRow(_Base):
    __tablename__ = "index_info"
    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[str] = mapped_column(String(255))
    config_hash: Mapped[str] = mapped_column(String(128))
    map_size: Mapped[int]
    feature_rate: Mapped[float | None]
    embedding_dim: Mapped[int]
    index_type: Mapped[str | None] = mapped_column(String(255))
    index_params: Mapped[dict[str, Any]] = mapped_column(JSON)
    n_videos: Mapped[int]
    n_proposals: Mapped[int] = mapped_column(BigInteger)
    n_removed_proposals: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    format_version: Mapped[int]
    corpus_digest: Mapped[str | None] = mapped_column(String(64))  # of the build plan


class _ShardRow(_Base):
    __tablename__ = "build_shards"
    shard: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    first_id: Mapped[int] = mapped_column(BigInteger)
    n_videos: Mapped[int]
    n_proposals: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))
    checksum: Mapped[str] = mapped_column(String(64))  # sha256 of its Parquet metadata file
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


_Record = TypeVar("_Record")  # one of the frozen record dataclasses below


@dataclass(frozen=True)
class VideoRecord:
    """One indexed video: its proposals are ids ``first_id .. first_id + n_proposals - 1``.

    ``duration`` is in seconds; ``feature_source``/``feature_rate`` as in ``Video`` (rate in
    features/s, None: spread over the duration); ``checksum`` is the sha1 hex digest of the feature
    array bytes embedded; ``shard`` is the build shard it was embedded in.
    """

    video_id: str
    duration: float
    feature_source: str
    feature_rate: float | None
    checksum: str
    n_proposals: int
    first_id: int
    shard: int
    video_path: str | None = None  # the raw video file, when the corpus names one

    @property
    def end_id(self) -> int:
        """One past its last proposal id."""
        return self.first_id + self.n_proposals


@dataclass(frozen=True)
class ShardReplacement:
    """A shard of new embeddings for videos the catalog already holds (indexed ones whose
    features changed, removed ones added back): recorded at publish, in the same transaction,
    its videos taking over their ids. Their old ids are "retired": owned by no video, never
    reused, their vectors out of the index."""

    shard: int
    first_id: int
    videos: list[VideoRecord]
    checksum: str  # sha256 of the shard's Parquet metadata file

    @property
    def n_proposals(self) -> int:
        return sum(v.n_proposals for v in self.videos)


@dataclass(frozen=True)
class ShardRecord:
    """One build shard: ``n_videos`` videos owning ids ``first_id .. first_id+n_proposals-1``."""

    shard: int
    first_id: int
    n_videos: int
    n_proposals: int
    status: str
    checksum: str
    updated_at: datetime


@dataclass(frozen=True)
class IndexInfo:
    """Snapshot of the index_info row: what built the index and what the FAISS index is (times UTC).

    ``index_type`` is None and ``index_params`` empty until :meth:`Catalog.publish`.
    """

    model_id: str
    config_hash: str
    map_size: int
    feature_rate: float | None
    embedding_dim: int
    index_type: str | None
    index_params: dict[str, Any]
    n_videos: int
    n_proposals: int
    n_removed_proposals: int
    created_at: datetime
    updated_at: datetime
    format_version: int
    corpus_digest: str | None


def _snapshot(record_type: type[_Record], row: _Base) -> _Record:
    """A frozen copy of an ORM row's columns that outlives its session (times made UTC)."""
    return record_type(*(_utc(getattr(row, field.name)) for field in fields(record_type)))


def _utc(value: Any) -> Any:
    """Every time stored here is UTC: SQLite drops the time zone (naive: UTC), PostgreSQL returns
    times in the session's time zone (converted back to UTC)."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None \
            else value.astimezone(timezone.utc)
    return value


def _check_shard_ids(shard: int, first_id: int, videos: list[VideoRecord]) -> None:
    """Each video must belong to ``shard`` and the id ranges must tile up from ``first_id``."""
    if shard < 0 or first_id < 0:
        raise CatalogError(f"shard {shard}: shard and first id must be >= 0, got {first_id}")
    expected = first_id
    for video in videos:
        if video.shard != shard:
            raise CatalogError(
                f"video {video.video_id!r} says shard {video.shard}, recorded in shard {shard}"
            )
        if video.first_id != expected or video.n_proposals < 0:
            raise CatalogError(
                f"shard {shard}: video {video.video_id!r} has ids [{video.first_id}, "
                f"{video.end_id}), expected a range from {expected} (ranges must be contiguous)"
            )
        expected = video.end_id


def _check_same_model(recorded: _IndexInfoRow, given: _IndexInfoRow) -> None:
    """Embeddings of another model, config or proposal geometry must not enter an index."""
    if (recorded.model_id, recorded.config_hash) != (given.model_id, given.config_hash):
        raise CatalogError(
            f"refusing to mix embeddings of model {given.model_id} (config {given.config_hash}) "
            f"into an index built with model {recorded.model_id} (config {recorded.config_hash})"
        )
    for name in ("map_size", "feature_rate", "embedding_dim"):
        if getattr(recorded, name) != getattr(given, name):
            raise CatalogError(f"model {given.model_id}: {name} {getattr(given, name)!r} differs "
                               f"from the index's {getattr(recorded, name)!r}")


def _put_shard(session: Session, shard: int, first_id: int, n_videos: int, n_proposals: int,
               checksum: str) -> None:
    """Mark the shard embedded; refuses one already embedded."""
    row = session.get(_ShardRow, shard)
    if row is not None and row.status == EMBEDDED:
        raise CatalogError(f"shard {shard} is already embedded (ids from {row.first_id})")
    session.merge(_ShardRow(shard=shard, first_id=first_id, n_videos=n_videos,
                            n_proposals=n_proposals, status=EMBEDDED, checksum=checksum,
                            updated_at=_utcnow()))
    session.flush()


def _check_free_ids(session: Session, shard: int, first_id: int, end_id: int) -> None:
    """No recorded video (indexed or removed: ids are never reused) may own ids in the range."""
    clash = session.scalars(select(_VideoRow).where(
        _VideoRow.first_id < end_id, _VideoRow.first_id + _VideoRow.n_proposals > first_id,
    ).limit(1)).first()
    if clash is not None:
        raise CatalogError(
            f"shard {shard}: ids [{first_id}, {end_id}) overlap those of video "
            f"{clash.video_id!r} [{clash.first_id}, {clash.first_id + clash.n_proposals})"
        )


def _put_video(session: Session, video: VideoRecord) -> None:
    """Insert one video as pending; a removed one of the same id is replaced (its old ids stay
    unused)."""
    row = session.get(_VideoRow, video.video_id)
    if row is not None and row.status != REMOVED:
        raise CatalogError(
            f"video {video.video_id!r} is already {row.status} (shard {row.shard}, ids from "
            f"{row.first_id}); remove it first"
        )
    session.merge(_VideoRow(**asdict(video), status=PENDING, added_at=_utcnow()))
    session.flush()


def _replace_videos(session: Session, replacement: ShardReplacement) -> None:
    """Record the replacement shard and give its videos their new ids, as indexed (each must
    be indexed or removed now)."""
    _check_shard_ids(replacement.shard, replacement.first_id, replacement.videos)
    end_id = replacement.first_id + replacement.n_proposals
    _put_shard(session, replacement.shard, replacement.first_id, len(replacement.videos),
               replacement.n_proposals, replacement.checksum)
    _check_free_ids(session, replacement.shard, replacement.first_id, end_id)
    for video in replacement.videos:
        row = session.get(_VideoRow, video.video_id)
        if row is None or row.status == PENDING:
            raise CatalogError(f"cannot re-embed video {video.video_id!r}: it is "
                               f"{row.status if row else 'not in the catalog'}")
        session.merge(_VideoRow(**asdict(video), status=INDEXED, added_at=row.added_at))
    session.flush()


def _remove_video(session: Session, video_id: str) -> VideoRecord:
    """Mark one indexed video removed; refuses an unknown, pending or removed one."""
    row = session.get(_VideoRow, video_id)
    if row is None:
        raise CatalogError(f"cannot remove video {video_id!r}: not in the catalog")
    if row.status != INDEXED:
        raise CatalogError(f"cannot remove video {video_id!r}: it is {row.status}")
    row.status = REMOVED
    return _snapshot(VideoRecord, row)


def _counts(session: Session) -> dict[str, int]:
    counts = {f"{what}_{status}": 0 for status in STATUSES for what in ("videos", "proposals")}
    query = select(_VideoRow.status, func.count(), func.sum(_VideoRow.n_proposals))
    for status, n_videos, n_proposals in session.execute(query.group_by(_VideoRow.status)):
        counts[f"videos_{status}"] = int(n_videos)
        counts[f"proposals_{status}"] = int(n_proposals or 0)
    return counts
