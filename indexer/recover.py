"""``index repair --rebuild-catalog``: restore a lost catalog from the index's own files.

The newest catalog snapshot (``snapshot.py``) names the published FAISS file and Parquet shards
with their sha256 and every published video with its id range and status. Before anything is
written, those files are checked against the snapshot: the model fingerprint, every shard's and
the FAISS file's sha256, and each video's id range holding exactly its rows in the Parquet
metadata. Then the catalog is filled in one transaction and the files no published state points
at (older versions, unrecorded shards) are deleted, as after any writer.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError
from .integrity import faiss_file_problem, shard_problems
from .snapshot import read_snapshot, snapshot_name, snapshot_versions
from .store import MODEL_DIR, read_metadata


def snapshot_problems(index_dir: Path, snapshot: dict) -> list[str]:
    """What in the folder disagrees with the snapshot (empty: it can be restored)."""
    from ..models.base import model_fingerprint

    info, params = snapshot["index_info"], snapshot["index_params"]
    problems = []
    found = model_fingerprint(index_dir / MODEL_DIR)
    if found != (info["model_id"], info["config_hash"]):
        problems.append(f"model/ is {found[0]} (config {found[1]}), the snapshot says "
                        f"{info['model_id']} (config {info['config_hash']})")
    shards = {int(s["shard"]): s["checksum"] for s in snapshot["shards"]}
    problems += shard_problems(index_dir, shards)
    faiss_problem = faiss_file_problem(index_dir, params, full=True)
    if faiss_problem:
        problems.append(faiss_problem)
    return problems or range_problems(index_dir, snapshot, shards)


def range_problems(index_dir: Path, snapshot: dict, shards: dict[int, str]) -> list[str]:
    """Each video's id range must hold exactly its rows of the (checked) Parquet shards."""
    table = read_metadata(index_dir, shards)
    problems = []
    for video in snapshot["videos"]:
        rows = slice(video["first_id"], video["first_id"] + video["n_proposals"])
        names = {table.video_names[c] for c in np.unique(table.video_index[rows])}
        if rows.stop > len(table) or names != {video["video_id"]}:
            problems.append(f"video {video['video_id']!r}: ids {rows.start}..{rows.stop - 1} "
                            f"hold rows of {sorted(names)[:3]} in the Parquet metadata")
    return problems


def rebuild_catalog(index_dir: str | Path, catalog_url: str | None = None, wait: float = 0.0
                    ) -> list[str]:
    """Restore a missing or empty catalog from the newest snapshot; returns notes.

    Raises:
        FileNotFoundError: no such folder, or no snapshot in it. ValueError: the catalog is not
            empty, or the files disagree with the snapshot (each problem named); nothing is
            written then.
    """
    from .build import open_catalog
    from .leftovers import clean_leftovers
    from .lock import writer_lock

    index_dir = Path(index_dir)
    if not index_dir.is_dir():
        raise FileNotFoundError(f"index directory {index_dir} does not exist")
    with writer_lock(index_dir, "index repair --rebuild-catalog", wait):
        versions = snapshot_versions(index_dir)
        if not versions:
            raise FileNotFoundError(f"{index_dir}: no catalog snapshot (version-NNNNN.json), so "
                                    f"the catalog cannot be rebuilt; build the index again")
        catalog = open_catalog(index_dir, catalog_url)
        if catalog.info() is not None:
            raise InputError(f"catalog {catalog.url} is not empty: --rebuild-catalog only "
                             f"restores a missing or empty catalog ('index repair' without it "
                             f"returns a damaged index to its last published state)")
        name = snapshot_name(versions[0])
        snapshot = read_snapshot(index_dir, versions[0])
        problems = snapshot_problems(index_dir, snapshot)
        if problems:
            raise InputError(f"cannot rebuild the catalog from {index_dir / name}: "
                             + "; ".join(problems[:5]) + "; delete the folder and build again")
        catalog.restore(snapshot)
        deleted = clean_leftovers(index_dir, catalog)
    counts = catalog.counts()
    notes = [f"rebuilt the catalog {catalog.url} from {name} (version {versions[0]}, "
             f"checked against the sha256 of its files): {counts['videos_indexed']} indexed and "
             f"{counts['videos_removed']} removed video(s)"]
    return notes + [f"deleted {d}" for d in deleted]
