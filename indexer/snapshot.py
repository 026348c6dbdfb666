"""Catalog snapshots: ``version-NNNNN.json``, the published state of version N, beside its files.

Every publish (``publish.py``) writes the snapshot of the state it is about to publish (index
info, published params with the FAISS file's sha256, the shards with their Parquet sha256, every
published video with its id range and status) atomically before the catalog transaction that
publishes it, and deletes the previous version's snapshot with the previous FAISS file. So an
index whose catalog is lost (a deleted ``catalog.sqlite``, an emptied database) still says what it
published last: ``index repair --rebuild-catalog`` (``recover.py``) restores the catalog from the
newest snapshot after checking the files it names against their checksums, and ``index build``
refuses to "resume" such a folder (that would rebuild it from the first build's corpus).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from pathlib import Path

from ..atomic import atomic_write_text
from ..errors import DataError
from .catalog import CATALOG_FILENAME, INDEXED, PENDING, REMOVED, Catalog, ShardReplacement

SNAPSHOT_FORMAT = 1
_NAME = re.compile(r"^version-(\d{5,})\.json$")


def snapshot_name(version: int) -> str:
    """``version-00003.json`` for version 3."""
    return f"version-{int(version):05d}.json"


def snapshot_versions(index_dir: Path) -> list[int]:
    """The versions whose snapshot is in the folder, newest first."""
    found = [_NAME.match(p.name) for p in Path(index_dir).glob("version-*.json")]
    return sorted((int(m.group(1)) for m in found if m), reverse=True)


def published_videos(catalog: Catalog, shards: list[int], remove: list[str],
                     replacement: ShardReplacement | None = None) -> list[dict]:
    """Every video of the state about to be published, with the status it will have: pending
    videos of the published shards become indexed, ``remove`` removed, the replacement's videos
    indexed under their new ids; other pending videos are not part of it."""
    shards, remove = set(shards), set(remove)
    replaced = {v.video_id: v for v in (replacement.videos if replacement else [])}
    videos = []
    for status in (INDEXED, REMOVED, PENDING):
        for record in catalog.videos(status):
            if status == PENDING and record.shard not in shards:
                continue
            new = REMOVED if record.video_id in remove else (
                INDEXED if status == PENDING or record.video_id in replaced else status)
            videos.append({**asdict(replaced.get(record.video_id, record)), "status": new})
    return sorted(videos, key=lambda v: v["first_id"])


def _shard_rows(catalog: Catalog, shards: list[int],
                replacement: ShardReplacement | None) -> list[dict]:
    records = {s: asdict(r) for s, r in catalog.embedded_shards().items()}
    if replacement is not None:
        records[replacement.shard] = {
            "shard": replacement.shard, "first_id": replacement.first_id,
            "n_videos": len(replacement.videos), "n_proposals": replacement.n_proposals,
            "checksum": replacement.checksum}
    keys = ("shard", "first_id", "n_videos", "n_proposals", "checksum")
    return [{k: records[s][k] for k in keys} for s in shards]


def write_snapshot(index_dir: Path, catalog: Catalog, kind: str, params: dict,
                   remove: list[str] = (), replacement: ShardReplacement | None = None) -> Path:
    """Write the snapshot of the state ``catalog.publish(kind, params, remove, replacement)``
    will publish."""
    info = catalog.info()
    payload = {
        "format": SNAPSHOT_FORMAT, "version": int(params["version"]), "index_type": kind,
        "index_params": params, "catalog": _shown_url(catalog.url),
        "index_info": {"model_id": info.model_id, "config_hash": info.config_hash,
                       "map_size": info.map_size, "feature_rate": info.feature_rate,
                       "embedding_dim": info.embedding_dim, "corpus_digest": info.corpus_digest,
                       "created_at": info.created_at.isoformat()},
        "shards": _shard_rows(catalog, params["shards"], replacement),
        "videos": published_videos(catalog, params["shards"], list(remove), replacement),
    }
    return atomic_write_text(Path(index_dir) / snapshot_name(params["version"]),
                             json.dumps(payload))


def _shown_url(url: str) -> str:
    """The catalog URL without its password."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _external_catalog(index_dir: Path, version: int) -> str | None:
    """The catalog URL a snapshot records, when it is not the folder's own SQLite file."""
    try:
        url = read_snapshot(index_dir, version).get("catalog") or ""
    except ValueError:
        return None
    own = url.startswith("sqlite:") and url.endswith(f"/{CATALOG_FILENAME}")
    return None if own or not url else url


def read_snapshot(index_dir: Path, version: int) -> dict:
    """One version's snapshot.

    Raises:
        ValueError: unreadable, or not a snapshot of this format (names the file).
    """
    path = Path(index_dir) / snapshot_name(version)
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise DataError(f"catalog snapshot {path} cannot be read: {e}") from e
    if not isinstance(payload, dict) or payload.get("format") != SNAPSHOT_FORMAT:
        raise DataError(f"catalog snapshot {path}: expected format {SNAPSHOT_FORMAT}, got "
                        f"{payload.get('format') if isinstance(payload, dict) else payload!r}")
    return payload


def delete_older_snapshots(index_dir: Path, version: int) -> None:
    """Delete the snapshots of versions before ``version`` (after it is published)."""
    for old in snapshot_versions(index_dir):
        if old < version:
            (Path(index_dir) / snapshot_name(old)).unlink(missing_ok=True)


def lost_catalog_message(index_dir: Path, catalog_url: str | None) -> str | None:
    """Why a folder whose catalog is missing or empty must not be resumed or rebuilt over, or
    None when it holds no published state (see the module doc)."""
    where = catalog_url or str(Path(index_dir) / CATALOG_FILENAME)
    versions = snapshot_versions(index_dir)
    external = _external_catalog(index_dir, versions[0]) if versions else None
    if external and catalog_url is None:
        return (f"{index_dir}: no {CATALOG_FILENAME}; this index's catalog is {external}: "
                f"pass it with --catalog URL")
    if versions:
        return (f"{index_dir} holds a published index (version {versions[0]}, "
                f"{snapshot_name(versions[0])}) but its catalog ({where}) is missing or empty; "
                f"resuming the build would start again from the corpus of plan.json and lose "
                f"what was added and removed since. Recover the catalog from the index's files "
                f"with 'moment-search index repair --index {index_dir} --rebuild-catalog' "
                f"(checked against their sha256), or delete the folder and build again")
    faiss_files = sorted(Path(index_dir).glob("index-*.faiss"))
    if faiss_files:
        return (f"{index_dir} holds a published FAISS file ({faiss_files[-1].name}) but its "
                f"catalog ({where}) is missing or empty, and no catalog snapshot (an index "
                f"written before snapshots), so neither a resume nor a repair can restore what "
                f"was published: delete the folder and build again")
    return None
