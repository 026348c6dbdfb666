"""The files of an index directory, written atomically (temp file, then rename).

::

    INDEX_DIR/
      catalog.sqlite             the SQL catalog (see catalog.py); any SQLAlchemy URL may replace it
      model/                     the FVMR checkpoint the proposals were embedded with
      index.faiss                the FAISS index, always in CPU format
      meta/shard-00000.parquet   one row per proposal: id, video_id, start_s, end_s, clip_i, clip_j,
                                 map_size; concatenated in shard order, row number = id = FAISS id
      embeddings/shard-00000.npy (P_shard, D) float32 embeddings, kept while building (and after,
                                 with --keep-embeddings)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic import atomic_write

META_DIR = "meta"
EMBEDDINGS_DIR = "embeddings"
MODEL_DIR = "model"
INDEX_FILE = "index.faiss"
CATALOG_FILE = "catalog.sqlite"


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
    target = Path(index_dir) / META_DIR / f"{shard_name(shard)}.parquet"
    target.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(target, lambda temp: pq.write_table(table, temp))


def write_embeddings(index_dir: Path, shard: int, embeddings: np.ndarray) -> Path:
    """Write ``embeddings/shard-NNNNN.npy`` (float32) atomically; returns its path."""
    target = Path(index_dir) / EMBEDDINGS_DIR / f"{shard_name(shard)}.npy"
    target.parent.mkdir(parents=True, exist_ok=True)
    array = np.ascontiguousarray(embeddings, dtype=np.float32)

    def write(temp: str) -> None:
        with open(temp, "wb") as handle:  # a handle: np.save(path) would append ".npy"
            np.save(handle, array)
    return atomic_write(target, write)


def read_embeddings(index_dir: Path, shard: int) -> np.ndarray:
    """The shard's (P_shard, D) float32 embeddings, memory-mapped."""
    path = Path(index_dir) / EMBEDDINGS_DIR / f"{shard_name(shard)}.npy"
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


def metadata_paths(index_dir: Path) -> list[Path]:
    """The Parquet shards, in shard order."""
    return sorted((Path(index_dir) / META_DIR).glob("shard-*.parquet"))


def read_metadata(index_dir: Path) -> ProposalTable:
    """Concatenate every Parquet shard into a :class:`ProposalTable`.

    Raises:
        FileNotFoundError: no shards. ValueError: a shard cannot be read (names it).
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    paths = metadata_paths(index_dir)
    if not paths:
        raise FileNotFoundError(f"{index_dir}: no metadata shards in {META_DIR}/")
    tables = []
    for path in paths:
        try:
            tables.append(pq.read_table(path, columns=["id", "video_id", "start_s", "end_s"]))
        except (OSError, pa.ArrowException) as e:
            raise ValueError(f"cannot read metadata shard {path}: {e}") from e
    table = pa.concat_tables(tables, promote_options="permissive")
    encoded = pc.dictionary_encode(table.column("video_id").cast(pa.string())).combine_chunks()
    return ProposalTable(
        ids=table.column("id").to_numpy(),
        video_index=encoded.indices.to_numpy().astype(np.int32),
        video_names=encoded.dictionary.to_pylist(),
        start_s=table.column("start_s").to_numpy(),
        end_s=table.column("end_s").to_numpy(),
    )
