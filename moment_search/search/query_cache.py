"""An LRU cache of search vectors by sentence, shared by the threads of one searcher: a repeated
query (a popular search, a page reloaded) skips the query encoder."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from ..errors import InputError

QUERY_CACHE_SIZE = 4096  # sentences; about 1 KB each at width 264


class QueryCache:
    """Sentence -> (D,) search vector, least recently used first out; ``size`` 0 keeps none."""

    def __init__(self, size: int = QUERY_CACHE_SIZE):
        if size < 0:
            raise InputError(f"query cache size must be >= 0, got {size}")
        self.size = size
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def encode(self, encoder, texts: Sequence[str]) -> np.ndarray:
        """(B, D) vectors of ``texts``: cached ones as they are, the others from ``encoder``
        (in one call) and remembered."""
        if not self.size:
            return encoder.encode(texts)
        with self._lock:
            found = {t: self._vectors[t] for t in texts if t in self._vectors}
            for text in found:
                self._vectors.move_to_end(text)
        missing = [t for t in dict.fromkeys(texts) if t not in found]
        if missing:
            for text, vector in zip(missing, encoder.encode(missing), strict=True):
                found[text] = vector
            self._remember({t: found[t] for t in missing})
        with self._lock:
            self.hits += len(texts) - len(missing)
            self.misses += len(missing)
        return np.stack([found[t] for t in texts]) if texts else encoder.encode(texts)

    def _remember(self, vectors: dict[str, np.ndarray]) -> None:
        with self._lock:
            self._vectors.update(vectors)
            while len(self._vectors) > self.size:
                self._vectors.popitem(last=False)

    def clear(self) -> None:
        """Forget every sentence (and the hit counts)."""
        with self._lock:
            self._vectors.clear()
            self.hits = self.misses = 0
