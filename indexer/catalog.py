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
from dataclasses import fields
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, inspect, select, text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from .catalog_rows import (  # noqa: F401 (re-exported: the catalog's public names)
    CATALOG_FILENAME,
    EMBEDDED,
    FORMAT_VERSION,
    INDEXED,
    PENDING,
    REMOVED,
    STATUSES,
    CatalogError,
    IndexInfo,
    ShardRecord,
    ShardReplacement,
    VideoRecord,
    _Base,
    _check_free_ids,
    _check_same_model,
    _check_shard_ids,
    _counts,
    _IndexInfoRow,
    _put_shard,
    _put_video,
    _remove_video,
    _replace_videos,
    _ShardRow,
    _snapshot,
    _utcnow,
    _VideoRow,
)


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

    def publish(self, index_type: str, params: dict[str, Any], remove: Iterable[str] = (),
                replacement: ShardReplacement | None = None) -> list[VideoRecord]:
        """Point the catalog at a new FAISS file, in one transaction: record its type and
        JSON-able ``params`` (``params["shards"]``: the shards it holds), make the pending videos
        of those shards "indexed", mark the ``remove`` videos "removed" (their ids stay reserved),
        record ``replacement`` (its videos indexed under their new ids, their old ids retired)
        and update the counts. Returns the removed videos' records.

        Raises:
            CatalogError: before :meth:`init_index`; a video to remove that is unknown, pending,
                already removed or given twice (named); a replaced video that is pending or
                unknown. Nothing changes then.
        """
        shards = [int(s) for s in params.get("shards", [])]
        with self._writing() as session:
            row = session.get(_IndexInfoRow, 1)
            if row is None:
                raise CatalogError(f"catalog {self.url}: publish before init_index")
            removed = [_remove_video(session, video_id) for video_id in remove]
            if replacement is not None:
                _replace_videos(session, replacement)
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

    def restore(self, snapshot: dict[str, Any]) -> None:
        """Fill an empty catalog with a published state, in one transaction: ``snapshot`` as
        ``indexer.snapshot`` writes it (index info, type and params, shards, videos with their
        statuses).

        Raises:
            CatalogError: the catalog already records an index or videos (nothing changes).
        """
        info, now = snapshot["index_info"], _utcnow()
        video_fields = {f.name for f in fields(VideoRecord)}
        with self._writing() as session:
            if session.get(_IndexInfoRow, 1) is not None or session.scalar(
                    select(func.count()).select_from(_VideoRow)):
                raise CatalogError(f"catalog {self.url} is not empty; a snapshot is restored "
                                   f"only into a missing or empty catalog")
            for shard in snapshot["shards"]:
                session.add(_ShardRow(**shard, status=EMBEDDED, updated_at=now))
            for video in snapshot["videos"]:
                session.add(_VideoRow(**{k: v for k, v in video.items() if k in video_fields},
                                      status=video["status"], added_at=now))
            session.flush()
            counts = _counts(session)
            session.add(_IndexInfoRow(
                id=1, model_id=info["model_id"], config_hash=info["config_hash"],
                map_size=info["map_size"], feature_rate=info["feature_rate"],
                embedding_dim=info["embedding_dim"], index_type=snapshot["index_type"],
                index_params=dict(snapshot["index_params"]), n_videos=counts["videos_indexed"],
                n_proposals=counts["proposals_indexed"],
                n_removed_proposals=counts["proposals_removed"],
                created_at=datetime.fromisoformat(info["created_at"]), updated_at=now,
                format_version=FORMAT_VERSION, corpus_digest=info["corpus_digest"]))

    def retired_ranges(self, shards: Iterable[int] | None = None) -> list[tuple[int, int]]:
        """``(first_id, count)`` id ranges of the (given) embedded shards that no video owns any
        more: the old ids of re-embedded videos (see :class:`ShardReplacement`)."""
        records = self.embedded_shards()
        owned: dict[int, list[tuple[int, int]]] = {}
        for status in (PENDING, INDEXED, REMOVED):
            for video in self.videos(status):
                owned.setdefault(video.shard, []).append((video.first_id, video.end_id))
        retired = []
        for shard in sorted(records if shards is None else shards):
            start, end = records[shard].first_id, records[shard].first_id + \
                records[shard].n_proposals
            for first, stop in sorted(owned.get(shard, [])) + [(end, end)]:
                if first > start:
                    retired.append((start, first - start))
                start = max(start, stop)
        return retired

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
