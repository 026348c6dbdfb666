"""The index catalog: the SQL record of which videos, proposal ids and shards an index holds.

One id space: a video's proposals are ids ``first_id .. first_id + n_proposals - 1``, also their
FAISS ids and Parquet rows. Shards (fixed groups of videos in sorted video-id order) own contiguous
id ranges; a shard is recorded with its videos in one transaction, so an interrupted build resumes
from the shards marked "embedded". A recorded video is "pending" until the FAISS file holding it is
published: :meth:`Catalog.publish` points the catalog at a new FAISS file, makes the pending videos
of its shards "indexed" and the removed ones "removed", all in one transaction. The catalog is
``INDEX_DIR/catalog.sqlite`` by default, but any SQLAlchemy URL works (e.g. PostgreSQL): only
portable column types and SQL are used.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    String,
    create_engine,
    func,
    inspect,
    select,
    text,
)
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

CATALOG_FILENAME = "catalog.sqlite"
FORMAT_VERSION = 3  # bump when the tables change incompatibly
PENDING, INDEXED, REMOVED = "pending", "indexed", "removed"
STATUSES = (PENDING, INDEXED, REMOVED)
EMBEDDED = "embedded"  # a build_shards row is "pending" until then


class CatalogError(ValueError):
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


class Catalog:
    """The SQL catalog of one index (see :meth:`open`); each method runs in one transaction."""

    def __init__(self, url: str) -> None:
        """Connect to the SQLAlchemy ``url``, create the tables if missing, check the format."""
        self.url = url
        self._engine = create_engine(url)
        self._sessions = sessionmaker(self._engine, expire_on_commit=False)
        self._check_format()
        try:
            _Base.metadata.create_all(self._engine)
        except OperationalError as e:
            raise CatalogError(f"catalog {url}: cannot create its tables ({e.orig}); is the "
                               f"index directory or database read-only?") from e

    def _check_format(self) -> None:
        """Refuse a catalog written by another format version (read before the ORM touches it)."""
        try:
            with self._engine.connect() as connection:
                if not inspect(connection).has_table(_IndexInfoRow.__tablename__):
                    return
                found = connection.execute(text("SELECT format_version FROM index_info")).scalar()
        except OperationalError as e:
            raise CatalogError(f"catalog {self.url}: cannot read it ({e.orig})") from e
        if found is not None and found != FORMAT_VERSION:
            raise CatalogError(f"catalog {self.url}: format version {found}, this moment-search "
                               f"reads {FORMAT_VERSION}; rebuild the index")

    @staticmethod
    def sqlite_url(index_dir: str | Path) -> str:
        """The default catalog of an index directory: ``sqlite:///INDEX_DIR/catalog.sqlite``."""
        return f"sqlite:///{Path(index_dir).resolve() / CATALOG_FILENAME}"

    @classmethod
    def open(cls, url_or_path: str | Path) -> Catalog:
        """Open (creating if missing) a catalog from an SQLAlchemy URL or an SQLite file path.

        Raises:
            CatalogError: a path whose parent directory does not exist.
        """
        text = str(url_or_path)
        if "://" in text:
            return cls(text)
        path = Path(text).resolve()
        if not path.parent.is_dir():
            raise CatalogError(f"catalog {path}: directory {path.parent} does not exist")
        return cls(f"sqlite:///{path}")

    def close(self) -> None:
        """Release the connections (the data stays in the database)."""
        self._engine.dispose()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def init_index(self, model_id: str, config_hash: str, map_size: int,
                   feature_rate: float | None, embedding_dim: int,
                   corpus_digest: str | None = None) -> None:
        """Record the model (id, config hash, 2D-map size N in clips, feature rate in features/s
        or None, embedding width D) an index is built with, or check it is the one recorded.

        Raises:
            CatalogError: the catalog already records another model, config or geometry.
        """
        now = _utcnow()
        given = _IndexInfoRow(
            id=1, model_id=model_id, config_hash=config_hash, map_size=map_size,
            feature_rate=feature_rate, embedding_dim=embedding_dim, index_type=None,
            index_params={}, n_videos=0, n_proposals=0, n_removed_proposals=0,
            created_at=now, updated_at=now, format_version=FORMAT_VERSION,
            corpus_digest=corpus_digest,
        )
        with self._writing() as session:
            row = session.get(_IndexInfoRow, 1)
            if row is None:
                session.add(given)
            else:
                _check_same_model(row, given)

    def info(self) -> IndexInfo | None:
        """The index_info snapshot, or None before :meth:`init_index`."""
        with self._sessions.begin() as session:
            row = session.get(_IndexInfoRow, 1)
            return None if row is None else _snapshot(IndexInfo, row)

    def record_shard(self, shard: int, first_id: int, videos: list[VideoRecord],
                     checksum: str = "") -> None:
        """Insert a shard's videos (status "pending") and mark the shard "embedded", atomically;
        ``checksum`` is the sha256 of the shard's Parquet metadata file.

        ``videos`` come in id order; their id ranges must tile up from ``first_id``.

        Raises:
            CatalogError: the shard is already embedded, a video is already indexed (named), or
                the id ranges are not contiguous or overlap recorded ids. Nothing is written then.
        """
        _check_shard_ids(shard, first_id, videos)
        end_id = videos[-1].end_id if videos else first_id
        try:
            with self._writing() as session:
                _put_shard(session, shard, first_id, len(videos), end_id - first_id, checksum)
                _check_free_ids(session, shard, first_id, end_id)
                for video in videos:
                    _put_video(session, video)
        except IntegrityError as e:
            raise CatalogError(f"shard {shard}: the database refused the record: {e.orig}") from e

    def embedded_shards(self) -> dict[int, ShardRecord]:
        """The shards marked "embedded", by shard number."""
        with self._sessions.begin() as session:
            rows = session.scalars(select(_ShardRow).where(_ShardRow.status == EMBEDDED))
            return {row.shard: _snapshot(ShardRecord, row) for row in rows}

    def videos(self, status: str = INDEXED) -> list[VideoRecord]:
        """The videos with ``status`` ("pending", "indexed" or "removed"), by first id."""
        if status not in STATUSES:
            raise CatalogError(f"video status must be one of {STATUSES}, got {status!r}")
        with self._sessions.begin() as session:
            query = select(_VideoRow).where(_VideoRow.status == status).order_by(_VideoRow.first_id)
            return [_snapshot(VideoRecord, row) for row in session.scalars(query)]

    def video(self, video_id: str) -> VideoRecord | None:
        """One video's record (whatever its status), or None if the catalog never saw it."""
        with self._sessions.begin() as session:
            row = session.get(_VideoRow, video_id)
            return None if row is None else _snapshot(VideoRecord, row)

    def video_status(self, video_id: str) -> str | None:
        """One video's status ("pending", "indexed", "removed"), or None if never recorded."""
        with self._sessions.begin() as session:
            row = session.get(_VideoRow, video_id)
            return None if row is None else row.status

    def next_id(self) -> int:
        """The first unused proposal id: max(first_id + n_proposals) over all videos, 0 if none."""
        with self._sessions.begin() as session:
            end = func.max(_VideoRow.first_id + _VideoRow.n_proposals)
            return int(session.scalar(select(func.coalesce(end, 0))))

    def next_shard(self) -> int:
        """One past the highest shard number recorded (pending or embedded), 0 if none."""
        with self._sessions.begin() as session:
            return int(session.scalar(select(func.coalesce(func.max(_ShardRow.shard) + 1, 0))))

    def publish(self, index_type: str, params: dict[str, Any],
                remove: Iterable[str] = ()) -> list[VideoRecord]:
        """Point the catalog at a new FAISS file, in one transaction: record its type and
        JSON-able ``params`` (``params["shards"]``: the shards it holds), make the pending videos
        of those shards "indexed", mark the ``remove`` videos "removed" (their ids stay reserved)
        and update the counts. Returns the removed videos' records.

        Raises:
            CatalogError: before :meth:`init_index`; a video to remove that is unknown, pending,
                already removed or given twice (named). Nothing changes then.
        """
        shards = [int(s) for s in params.get("shards", [])]
        with self._writing() as session:
            row = session.get(_IndexInfoRow, 1)
            if row is None:
                raise CatalogError(f"catalog {self.url}: publish before init_index")
            removed = [_remove_video(session, video_id) for video_id in remove]
            for video in session.scalars(select(_VideoRow).where(
                    _VideoRow.status == PENDING, _VideoRow.shard.in_(shards))):
                video.status = INDEXED
            session.flush()
            counts = _counts(session)
            row.index_type, row.index_params = index_type, dict(params)
            row.n_videos, row.n_proposals = counts["videos_indexed"], counts["proposals_indexed"]
            row.n_removed_proposals = counts["proposals_removed"]
            row.updated_at = _utcnow()
            return removed

    def drop_pending(self) -> list[VideoRecord]:
        """Forget the pending videos and the shards that hold only pending videos (what an
        interrupted add left); returns the videos dropped."""
        with self._writing() as session:
            rows = list(session.scalars(select(_VideoRow).where(_VideoRow.status == PENDING)))
            dropped = [_snapshot(VideoRecord, row) for row in rows]
            shards = {row.shard for row in rows}
            for row in rows:
                session.delete(row)
            session.flush()
            for shard in shards:
                if session.scalar(select(func.count()).where(_VideoRow.shard == shard)) == 0:
                    session.delete(session.get(_ShardRow, shard))
            return dropped

    def drop_shard(self, shard: int) -> None:
        """Forget an embedded shard none of whose videos is recorded (a partial record)."""
        with self._writing() as session:
            if session.scalar(select(func.count()).where(_VideoRow.shard == shard)):
                raise CatalogError(f"shard {shard} still has videos; not dropped")
            row = session.get(_ShardRow, shard)
            if row is not None:
                session.delete(row)

    def counts(self) -> dict[str, int]:
        """Videos and proposals by status: keys ``videos_STATUS`` and ``proposals_STATUS`` for
        STATUS in pending, indexed, removed."""
        with self._sessions.begin() as session:
            return _counts(session)

    @contextmanager
    def _writing(self) -> Iterator[Session]:
        """A write transaction; a read-only database becomes a CatalogError saying so."""
        try:
            with self._sessions.begin() as session:
                yield session
        except OperationalError as e:
            raise CatalogError(f"catalog {self.url}: the write was refused ({e.orig}); is the "
                               f"index read-only? Nothing was changed") from e
