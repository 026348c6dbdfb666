"""The FAISS vector store: a FAISS index read from the published file (see faiss_index)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import faiss_index
from ..faiss_core import _is_gpu
from ..faiss_search import GPU_MAX_K


class FaissStore:
    """A FAISS index (CPU, or copied to a GPU when one is there) behind the store interface."""

    kind = "faiss"

    def __init__(self, index):
        self.faiss = index

    @classmethod
    def open(cls, path: Path, device: str = "cpu", mmap: bool = False) -> FaissStore:
        """The index at ``path``. ``mmap`` maps the file instead of reading it: a one-shot query
        then touches only the lists it probes (a cold CLI query: ~0.3 s and ~150 MB less on the
        1,000-video index) but each search is slower (IVF nprobe 256: 1.4 vs 0.7 ms measured),
        so long-lived searchers read it. Published files are never rewritten, so a mapping stays
        valid."""
        index = faiss_index.read_index(path, mmap=mmap)
        return cls(faiss_index.to_device(index, faiss_index.resolve_placement(device)))

    @property
    def d(self) -> int:
        return int(self.faiss.d)

    def count(self) -> int:
        return int(self.faiss.ntotal)

    @property
    def max_k(self) -> int | None:
        """The most results one search returns (a GPU index's k-selection limit), or None."""
        return GPU_MAX_K if _is_gpu(self.faiss) else None

    def search(self, queries: np.ndarray, k: int, params: dict | None = None,
               ranges: list[tuple[int, int]] | None = None) -> tuple[np.ndarray, np.ndarray]:
        return faiss_index.search(self.faiss, queries, k, params, ranges)

    def stored_vectors(self, first_id: int, count: int) -> np.ndarray | None:
        """Exact stored vectors of an id range, or None where FAISS keeps no exact copy."""
        return faiss_index.stored_vectors(self.faiss, first_id, count)

    def vectors(self, ids: np.ndarray) -> tuple[np.ndarray, bool]:
        return faiss_index.reconstruct(faiss_index.to_cpu(self.faiss), ids)

    def supports_remove(self) -> bool:
        return faiss_index.supports_remove(self.faiss)
