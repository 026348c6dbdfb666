"""Check an index: what ``query`` checks when it opens one, ``index info``'s health line, and
``index verify``'s full check.

The catalog records the sha256 of every Parquet shard and of the FAISS file it points at (written
by ``build.py`` / ``publish.py``). Opening an index for queries checks every Parquet shard fully
(they are read anyway) and the FAISS file fully up to ``QUERY_FULL_CHECK_BYTES``, past that by its
size and sampled blocks (``store.quick_digest``), so a changed file never answers silently.
``verify`` also reads every byte, checks that every row lies inside its video, and re-embeds a
sample of videos to compare with the stored vectors.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import DataError
from ..models.base import model_fingerprint
from .catalog import Catalog
from .leftovers import leftovers
from .snapshot import lost_catalog_message
from .store import (
    CATALOG_FILE,
    MODEL_DIR,
    file_sha256,
    metadata_path,
    open_catalog,
    quick_digest,
)

QUERY_FULL_CHECK_BYTES = int(os.environ.get("MOMENT_SEARCH_FULL_CHECK_BYTES", 1 << 30))
ROW_SLACK_S = 1e-6  # rounding slack when checking that a row lies inside its video


def require_index(index_dir: Path, catalog_url: str | None = None) -> tuple[Catalog, dict]:
    """The catalog of a finished index and its published params; clear errors otherwise."""
    index_dir = Path(index_dir)
    if not index_dir.is_dir():
        raise FileNotFoundError(f"index directory {index_dir} does not exist")
    if catalog_url is None and not (index_dir / CATALOG_FILE).is_file():
        raise FileNotFoundError(lost_catalog_message(index_dir, catalog_url)
                                or f"{index_dir}: no {CATALOG_FILE}; not an index directory")
    catalog = open_catalog(index_dir, catalog_url)
    info = catalog.info()
    if info is None and lost_catalog_message(index_dir, catalog_url):
        raise DataError(lost_catalog_message(index_dir, catalog_url))
    if info is None or not info.index_params or "shards" not in info.index_params:
        raise DataError(f"{index_dir}: the index was never finished (run 'index build --resume')")
    return catalog, dict(info.index_params)


def verify_model_matches(index_dir: Path, catalog: Catalog) -> None:
    """Refuse an index whose stored model is not the one its embeddings were made with."""
    info = catalog.info()
    found = model_fingerprint(Path(index_dir) / MODEL_DIR)
    if (info.model_id, info.config_hash) != found:
        raise DataError(f"{index_dir}: model/ is {found[0]} (config {found[1]}) but the index "
                        f"was built with {info.model_id} (config {info.config_hash})")


def published_shards(catalog: Catalog, params: dict) -> dict[int, str]:
    """Shard number -> sha256 of its Parquet file, for the shards the published index holds."""
    records = catalog.embedded_shards()
    missing = [s for s in params["shards"] if s not in records]
    if missing:
        raise DataError(f"catalog {catalog.url}: published shards {missing[:5]} are not "
                        f"recorded; the index is damaged, rebuild it")
    return {s: records[s].checksum for s in params["shards"]}


def faiss_file_problem(index_dir: Path, params: dict, full: bool) -> str | None:
    """Why the published FAISS file is not the one written, or None."""
    if "file" not in params:
        return None  # a Milvus collection: no file (verify counts and samples its vectors)
    path = Path(index_dir) / params["file"]
    if not path.is_file():
        return f"the FAISS file {path} is missing"
    if "file_sha256" not in params:
        return None  # written before checksums were recorded
    if path.stat().st_size != params["file_bytes"]:
        return f"the FAISS file {path} has {path.stat().st_size} bytes, {params['file_bytes']} " \
               f"were written"
    if full and file_sha256(path) != params["file_sha256"]:
        return f"the FAISS file {path} has changed since it was written (sha256 differs)"
    if not full and quick_digest(path) != params["file_quick"]:
        return f"the FAISS file {path} has changed since it was written (sampled digest differs)"
    return None


def shard_problems(index_dir: Path, shards: dict[int, str]) -> list[str]:
    """Each published Parquet shard must exist with the recorded sha256."""
    problems = []
    for shard, checksum in shards.items():
        path = metadata_path(index_dir, shard)
        if not path.is_file():
            problems.append(f"metadata shard {path} is missing")
        elif checksum and file_sha256(path) != checksum:
            problems.append(f"metadata shard {path} has changed since it was written "
                            f"(sha256 differs)")
    return problems


def published_file_problems(index_dir: Path, catalog: Catalog, full: bool) -> list[str]:
    """The published FAISS file and Parquet shards against their checksums."""
    params = dict(catalog.info().index_params)
    problems = shard_problems(index_dir, published_shards(catalog, params))
    faiss_problem = faiss_file_problem(index_dir, params, full)
    return problems + ([faiss_problem] if faiss_problem else [])


def check_for_query(index_dir: Path, params: dict) -> None:
    """What a query checks at open beyond the Parquet shards it reads (see the module doc).

    Raises:
        ValueError: the FAISS file is missing or changed (names it).
    """
    full = int(params.get("file_bytes", 0)) <= QUERY_FULL_CHECK_BYTES
    problem = faiss_file_problem(index_dir, params, full)
    if problem:
        raise DataError(f"{problem}: the index is damaged; 'index verify --index {index_dir}' "
                        f"lists what is wrong (rebuild it, or 'index repair' after a crash)")


def pending_note(catalog: Catalog) -> str | None:
    """A line about pending videos (an interrupted add), or None."""
    counts = catalog.counts()
    if not counts["videos_pending"]:
        return None
    return (f"{counts['videos_pending']} video(s) are pending: an 'index add' embedded them but "
            f"was interrupted before publishing; run 'index add' again to finish them or "
            f"'index repair' to drop them")


def index_summary(index_dir: str | Path, catalog_url: str | None = None) -> dict:
    """What ``index info`` prints: model, index type and parameters, counts, sizes, dates, and
    ``problems`` (published files present and unchanged, leftover files), and ``notes`` (pending
    videos; a FAISS file checked by samples only).

    The published files are checked as ``query`` checks them when it opens the index: every
    Parquet shard and the FAISS file by their sha256 (what ``index verify`` compares), a FAISS
    file larger than ``QUERY_FULL_CHECK_BYTES`` by its size and sampled blocks, with a note."""
    index_dir = Path(index_dir)
    catalog, params = require_index(index_dir, catalog_url)
    info = catalog.info()
    file = index_dir / params.get("file", "")
    full = int(params.get("file_bytes", 0)) <= QUERY_FULL_CHECK_BYTES
    problems = published_file_problems(index_dir, catalog, full=full)
    notes = [note for note in (pending_note(catalog), _sampled_note(params, full)) if note]
    stray = leftovers(index_dir, catalog)
    if stray:
        problems.append(f"{len(stray)} file(s) left by an interrupted writer (e.g. "
                        f"{stray[0].name}); 'index repair' deletes them")
    return {"index_dir": str(index_dir), "model_id": info.model_id,
            "config_hash": info.config_hash, "map_size": info.map_size,
            "feature_rate": info.feature_rate, "embedding_dim": info.embedding_dim,
            "index_type": info.index_type,
            "index_params": {k: v for k, v in params.items() if k != "shards"},
            **catalog.counts(),
            "index_bytes": file.stat().st_size if file.is_file() else None,
            "created_at": str(info.created_at), "updated_at": str(info.updated_at),
            "problems": problems, "notes": notes}


def _sampled_note(params: dict, full: bool) -> str | None:
    """Says that a FAISS file too large to hash at every ``info`` was checked by samples."""
    if full or "file" not in params:
        return None
    return (f"the FAISS file {params['file']} ({int(params['file_bytes']):,} bytes) is larger "
            f"than MOMENT_SEARCH_FULL_CHECK_BYTES ({QUERY_FULL_CHECK_BYTES:,}): info checked its "
            f"size and sampled blocks; 'index verify' reads every byte")
