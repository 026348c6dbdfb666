"""Files and rows a writer that died left behind, and their cleanup.

Every change publishes in one catalog transaction (``publish.py``), so a crash can leave only
(a) files nothing points at: temp files of an interrupted atomic write, a FAISS file (and its
catalog snapshot, ``snapshot.py``) written but never published (or replaced but not yet deleted),
Parquet / embedding shards never recorded;
and (b) pending videos: shards an ``index add`` embedded and recorded but never published. Every
writer deletes (a) when it starts; the next ``index add`` publishes (b); ``index repair``
(``repair.py``) deletes (a) and drops (b).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ..embed.onnx_encoder import ENCODER_DIR
from .catalog import Catalog
from .snapshot import snapshot_name, snapshot_versions
from .store import EMBEDDINGS_DIR, META_DIR, MODEL_DIR, embeddings_path, metadata_path


def _published_file(catalog: Catalog | None) -> str | None:
    info = catalog.info() if catalog is not None else None
    return (info.index_params or {}).get("file") if info is not None else None


def _temp_files(index_dir: Path) -> list[Path]:
    found = []
    for folder in (index_dir, index_dir / META_DIR, index_dir / EMBEDDINGS_DIR):
        if folder.is_dir():
            found += [p for p in folder.glob(".*.tmp")]
    return found


def _unrecorded_shards(index_dir: Path, catalog: Catalog | None) -> list[Path]:
    recorded = set(catalog.embedded_shards()) if catalog is not None else set()
    found = []
    for folder, pattern in ((META_DIR, "shard-*.parquet"), (EMBEDDINGS_DIR, "shard-*.npy")):
        for path in sorted((index_dir / folder).glob(pattern)):
            if int(path.stem.split("-")[1]) not in recorded:
                found.append(path)
    return found


def _stale_snapshots(index_dir: Path, catalog: Catalog | None) -> list[Path]:
    """Catalog snapshots of versions other than the published one (see snapshot.py)."""
    info = catalog.info() if catalog is not None else None
    version = (info.index_params or {}).get("version") if info is not None else None
    return [index_dir / snapshot_name(v) for v in snapshot_versions(index_dir) if v != version]


def leftovers(index_dir: Path, catalog: Catalog | None) -> list[Path]:
    """Files no published or recorded state points at (see the module doc)."""
    published = _published_file(catalog)
    stale = [p for p in sorted(index_dir.glob("index-*.faiss")) if p.name != published]
    return (_temp_files(index_dir) + stale + _stale_snapshots(index_dir, catalog)
            + _unrecorded_shards(index_dir, catalog))


def restore_encoder(index_dir: Path) -> bool:
    """An export that died between moving the old encoder aside and moving the new one in left
    the old one (complete) under ``atomic.backup_name`` and no ``encoder/``: put it back. True
    when it did."""
    target = index_dir / ENCODER_DIR
    moved_aside = sorted(p for p in index_dir.glob(f".{ENCODER_DIR}.old-*") if p.is_dir())
    if moved_aside and not target.exists():
        moved_aside[-1].rename(target)
        return True
    return False


def clean_leftovers(index_dir: Path, catalog: Catalog | None) -> list[str]:
    """Delete :func:`leftovers` (call it holding the writer lock); returns what was deleted."""
    removed = []
    for path in leftovers(index_dir, catalog):
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
        removed.append(str(path.relative_to(index_dir)))
    restore_encoder(index_dir)
    stagings = [index_dir / f".{MODEL_DIR}.tmp", *index_dir.glob(f".{ENCODER_DIR}.*")]
    for staging in stagings:  # a model copy or an encoder export cut short
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
            removed.append(staging.name)
    return removed


def drop_pending(index_dir: Path, catalog: Catalog) -> list[str]:
    """Forget the pending videos (an interrupted add) and delete their shard files."""
    published = set((catalog.info().index_params or {}).get("shards", []))
    dropped = catalog.drop_pending()
    for shard in {v.shard for v in dropped} - published:
        metadata_path(index_dir, shard).unlink(missing_ok=True)
        embeddings_path(index_dir, shard).unlink(missing_ok=True)
    return [v.video_id for v in dropped]


def clean_milvus(index_dir: Path, catalog: Catalog) -> list[str]:
    """Delete the Milvus vectors no published video owns (an interrupted add's, removed
    videos' and re-embedded videos' old ones not yet deleted). Returns notes; nothing for a
    FAISS index."""
    from .backends import backend_of, open_store

    params = dict(catalog.info().index_params)
    if backend_of(params) != "milvus":
        return []
    store = open_store(index_dir, params)
    end = catalog.next_id()
    stray = [(r.first_id, r.n_proposals) for r in catalog.videos(status="removed")]
    stray += catalog.retired_ranges(params["shards"]) + [(end, 1 << 62)]
    found = store.count(stray)
    if found:
        store.delete_ranges(stray)
        return [f"deleted {found} Milvus vector(s) of removed, re-embedded or unpublished "
                f"videos"]
    return []
