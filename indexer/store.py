"""The files of an index directory, written atomically (temp file, then rename).

::

    INDEX_DIR/
      catalog.sqlite             the SQL catalog (see catalog.py); any SQLAlchemy URL may replace it
      model/                     the FVMR checkpoint the proposals were embedded with
      index-00003.faiss          the FAISS index the catalog points at (version 3), CPU format;
                                 every change writes a new version, then flips the catalog
      meta/shard-00000.parquet   one row per proposal: id, video_id, start_s, end_s, clip_i, clip_j,
                                 map_size; concatenated in shard order, row number = id = FAISS id;
                                 written once, never changed
      embeddings/shard-00000.npy (P_shard, D) float32 embeddings, kept while building (and after,
                                 with --keep-embeddings)
      plan.json                  the corpus a build was started on (ids, durations, checksums)
      .writer.lock, .writer.json the writer lock and its holder (see lock.py)

The catalog records the sha256 of every Parquet shard and of the FAISS file it points at.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic import atomic_write
from ..errors import DataError
from .catalog import Catalog

META_DIR = "meta"
EMBEDDINGS_DIR = "embeddings"
MODEL_DIR = "model"
INDEX_FILE = "index.faiss"
CATALOG_FILE = "catalog.sqlite"


def open_catalog(index_dir: Path, url: str | None) -> Catalog:
    """The catalog at ``url``, or the SQLite file inside the index directory."""
    return Catalog.open(url or (Path(index_dir) / CATALOG_FILE))


def file_sha256(path: str | Path) -> str:
    """The sha256 hex digest of a file's bytes (read in 4 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def quick_digest(path: str | Path, blocks: int = 64, block_size: int = 1 << 16) -> str:
    """A cheap fingerprint of a large file: sha256 over its size and ``blocks`` evenly spaced
    ``block_size``-byte blocks (the first and the last included). A changed size or a change
    inside a sampled block alters it; :func:`file_sha256` sees every byte."""
    size = Path(path).stat().st_size
    digest = hashlib.sha256(str(size).encode())
    step = max((size - block_size) // max(blocks - 1, 1), 1)
    with open(path, "rb") as handle:
        for offset in sorted({min(i * step, max(size - block_size, 0)) for i in range(blocks)}):
            handle.seek(offset)
            digest.update(handle.read(block_size))
    return digest.hexdigest()


def shard_name(shard: int) -> str:
    """``shard-00012`` for shard 12."""
    return f"shard-{shard:05d}"


@dataclass
class ShardRows:
    """The proposals of one shard, one entry per proposal (all arrays of length P_shard)."""

    ids: np.ndarray  # int64
    video_ids: list[str]
    start_s: np.ndarray  # float64
    end_s: np.ndarray  # float64
    clip_i: np.ndarray  # int32
    clip_j: np.ndarray  # int32
    map_size: int


def write_metadata(index_dir: Path, shard: int, rows: ShardRows) -> Path:
    """Write ``meta/shard-NNNNN.parquet`` atomically; returns its path."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({
        "id": pa.array(rows.ids, pa.int64()),
        "video_id": pa.array(rows.video_ids, pa.string()).dictionary_encode(),
        "start_s": pa.array(rows.start_s, pa.float64()),
        "end_s": pa.array(rows.end_s, pa.float64()),
        "clip_i": pa.array(rows.clip_i, pa.int32()),
        "clip_j": pa.array(rows.clip_j, pa.int32()),
        "map_size": pa.array(np.full(len(rows.ids), rows.map_size, np.int32), pa.int32()),
    })
    target = metadata_path(index_dir, shard)
    target.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(target, lambda temp: pq.write_table(table, temp))


def embeddings_path(index_dir: Path, shard: int) -> Path:
    """``INDEX_DIR/embeddings/shard-NNNNN.npy``."""
    return Path(index_dir) / EMBEDDINGS_DIR / f"{shard_name(shard)}.npy"


def write_embeddings(index_dir: Path, shard: int, embeddings: np.ndarray) -> Path:
    """Write ``embeddings/shard-NNNNN.npy`` (float32) atomically; returns its path."""
    target = embeddings_path(index_dir, shard)
    target.parent.mkdir(parents=True, exist_ok=True)
    array = np.ascontiguousarray(embeddings, dtype=np.float32)

    def write(temp: str) -> None:
        with open(temp, "wb") as handle:  # a handle: np.save(path) would append ".npy"
            np.save(handle, array)
    return atomic_write(target, write)


def read_embeddings(index_dir: Path, shard: int) -> np.ndarray:
    """The shard's (P_shard, D) float32 embeddings, memory-mapped."""
    path = embeddings_path(index_dir, shard)
    if not path.is_file():
        raise FileNotFoundError(f"missing embedding shard {path}")
    return np.load(path, mmap_mode="r")


@dataclass
class ProposalTable:
    """Every proposal of an index, as arrays indexed by row (= id), for search-time lookups."""

    ids: np.ndarray  # (R,) int64, equal to arange(R) for a valid index
    video_index: np.ndarray  # (R,) int32 into ``video_names``
    video_names: list[str]
    start_s: np.ndarray  # (R,) float64
    end_s: np.ndarray  # (R,) float64

    def __len__(self) -> int:
        return len(self.ids)


def metadata_path(index_dir: Path, shard: int) -> Path:
    """``INDEX_DIR/meta/shard-NNNNN.parquet``."""
    return Path(index_dir) / META_DIR / f"{shard_name(shard)}.parquet"


def metadata_paths(index_dir: Path) -> list[Path]:
    """Every Parquet shard file present, in shard order (published or not)."""
    return sorted((Path(index_dir) / META_DIR).glob("shard-*.parquet"))


def _read_shard(path: Path, checksum: str | None):
    """One shard's table; its bytes must hash to ``checksum`` (when given)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not path.is_file():
        raise FileNotFoundError(f"metadata shard {path} is missing: the index is damaged "
                                f"(rebuild it; 'index verify' lists what else is wrong)")
    data = path.read_bytes()
    if checksum and hashlib.sha256(data).hexdigest() != checksum:
        raise DataError(f"metadata shard {path} has changed since it was written (sha256 "
                        f"differs from the catalog's): the index is damaged; rebuild it")
    try:
        # ParquetFile, not read_table: read_table goes through pyarrow.dataset, which imports
        # pandas (0.15 s of every cold query)
        return pq.ParquetFile(pa.BufferReader(data)).read(columns=["id", "video_id", "start_s",
                                                                   "end_s"])
    except (OSError, pa.ArrowException) as e:
        raise DataError(f"cannot read metadata shard {path}: {e}") from e


def read_metadata(index_dir: Path, shards: dict[int, str] | None = None) -> ProposalTable:
    """Concatenate Parquet shards into a :class:`ProposalTable`.

    Args:
        shards: shard number -> sha256 of its file, as the catalog records them: exactly these
            are read, in order, each checked. None: every shard file present, unchecked.

    Raises:
        FileNotFoundError: a listed shard is missing, or no shards. ValueError: a shard was
            changed or cannot be read (names it).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if shards is None:
        paths = {p: None for p in metadata_paths(index_dir)}
    else:
        paths = {metadata_path(index_dir, s): shards[s] for s in sorted(shards)}
    if not paths:
        raise FileNotFoundError(f"{index_dir}: no metadata shards in {META_DIR}/")
    tables = [_read_shard(path, checksum) for path, checksum in paths.items()]
    table = pa.concat_tables(tables, promote_options="permissive")
    encoded = pc.dictionary_encode(table.column("video_id").cast(pa.string())).combine_chunks()
    return ProposalTable(
        ids=_numpy(table.column("id"), np.int64),
        video_index=_numpy(encoded.indices, np.int32),
        video_names=encoded.dictionary.to_pylist(),
        start_s=_numpy(table.column("start_s"), np.float64),
        end_s=_numpy(table.column("end_s"), np.float64),
    )


def _numpy(column, dtype) -> np.ndarray:
    """A null-free Arrow column as a numpy array of ``dtype``, read from its data buffer:
    pyarrow's own ``to_numpy`` imports pandas (0.2 s of every cold query)."""
    import pyarrow as pa

    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    array = array.cast(pa.from_numpy_dtype(np.dtype(dtype)))
    if array.null_count:
        raise ValueError(f"metadata column of type {array.type} has {array.null_count} nulls")
    return np.frombuffer(array.buffers()[1], dtype=dtype, count=len(array),
                         offset=array.offset * np.dtype(dtype).itemsize)
