"""Synthetic embeddings clustered like proposal embeddings, generated block by block from seeds.

A two-level Gaussian mixture on the unit sphere: topics -> videos -> the ~136 overlapping
proposals of each video (ids contiguous per video); queries lie near unseen videos of the same
topics. Uniform noise would make every ANN look worse than on real embeddings. Nothing of size n
is held: each block is regenerated from ``(seed, block number)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SyntheticEmbeddings:
    """Clustered unit-norm embeddings: topics -> videos -> proposals, generated per block.

    Attributes (spreads are the norm of the Gaussian offset added before normalising):
        dim: embedding width D.
        n_topics: mixture components; topic frequencies fall off as 1/sqrt(rank).
        per_video: proposals per video (a 16-clip 2D map has 136 cells); ids contiguous per video.
        video_spread: a video's centre around its topic (1.0: cosine ~0.7).
        proposal_spread: a proposal around its video centre (0.35: cosine ~0.94).
        query_spread: a query around an unseen video of its topic.
        videos_per_block: generation unit (a block is seeded by ``(seed, block number)``).
        seed: everything derives from it.
    """

    dim: int = 128
    n_topics: int = 1024
    per_video: int = 136
    video_spread: float = 1.0
    proposal_spread: float = 0.35
    query_spread: float = 0.5
    videos_per_block: int = 256
    seed: int = 0

    @property
    def block_size(self) -> int:
        """Vectors per generated block."""
        return self.videos_per_block * self.per_video

    def _topics(self) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([self.seed, 0])
        centres = _unit(rng.standard_normal((self.n_topics, self.dim), dtype=np.float32))
        weights = 1.0 / np.sqrt(np.arange(1, self.n_topics + 1))
        return centres, weights / weights.sum()

    def _video_centres(self, rng: np.random.Generator, count: int) -> np.ndarray:
        centres, weights = self._topics()
        topics = rng.choice(self.n_topics, size=count, p=weights)
        noise = rng.standard_normal((count, self.dim), dtype=np.float32)
        return _unit(centres[topics] + self.video_spread / np.sqrt(self.dim) * noise)

    def block(self, number: int) -> np.ndarray:
        """Block ``number``: (block_size, D) float32 unit vectors, ids from number*block_size."""
        rng = np.random.default_rng([self.seed, 1, number])
        videos = np.repeat(self._video_centres(rng, self.videos_per_block), self.per_video, 0)
        noise = rng.standard_normal(videos.shape, dtype=np.float32)
        return _unit(videos + self.proposal_spread / np.sqrt(self.dim) * noise)

    def blocks(self, n: int) -> Iterator[tuple[int, np.ndarray]]:
        """``(first_id, vectors)`` covering ids ``0 .. n-1`` in order."""
        for number in range(-(-n // self.block_size)):
            first = number * self.block_size
            yield first, self.block(number)[: n - first]

    def queries(self, count: int) -> np.ndarray:
        """(count, D) float32 unit query embeddings, independent of the corpus blocks."""
        rng = np.random.default_rng([self.seed, 2])
        noise = rng.standard_normal((count, self.dim), dtype=np.float32)
        return _unit(self._video_centres(rng, count) + self.query_spread / np.sqrt(self.dim)
                     * noise)


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
