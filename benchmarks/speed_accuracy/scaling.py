"""Scaling: how the latency of the index and of the scan grows with the corpus.

The index side is measured at every size. The corpus is the real one replicated: the FVMR moment
embeddings of every real video (train and val), then copies of them with a small Gaussian offset
per proposal (``noise`` times the embeddings' RMS), so that sizes of 10^4-10^6 videos keep the
real geometry (136 proposals per video, real score distributions). The index kind and parameters
are the indexer's own choice for that many vectors under the preset's memory budget. Before
timing, recall@10 / @100 of the index is measured against an exhaustive search of the same
vectors (an exact flat index must reach 1.0, else the run stops).

Per query, the index strategy costs TE + FAISS search + post-processing: the FAISS search is
measured at each size; TE and post-processing come from the corpus table (they do not depend on
the corpus size) and the sum is labelled as composed. The cascade adds the measured cost of
re-scoring M videos, also independent of the corpus size. The scan is measured on real videos up
to the number available and extrapolated linearly beyond (labelled ``extrapolated``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ...data.corpus_dir import open_corpus
from ...embed.encoders import MomentEncoder, QueryEncoder
from ...eval.fvmr_localizer import load_checkpoint
from ...indexer import faiss_index as fi
from ...indexer.build import ShardEmbedder
from ...search.options import default_candidates
from ...text.tokens import TokenEncoder
from ..corpus_scale import build_measured, exact_neighbours, latency_ms, recall_at
from ..report import progress
from . import brute_force

K = 100  # neighbours for recall
CANDIDATES = default_candidates(K)  # what the searcher fetches for the corpus table's k = 100
RECALL_TARGET = 0.95  # recall@100 the indexer's defaults are chosen to reach


@dataclass(frozen=True)
class ReplicatedEmbeddings:
    """Real proposal embeddings, replicated with noise: video j is real video ``j % V0``.

    Attributes:
        base: (V0, P, D) float32 proposal embeddings of the real videos.
        noise: per-proposal Gaussian offset of every copy, relative to the embeddings' RMS
            (the first V0 videos are the real ones, unchanged).
        seed: the offsets derive from it (block by block).
        videos_per_block: generation unit.
    """

    base: np.ndarray
    noise: float = 0.05
    seed: int = 0
    videos_per_block: int = 256

    @property
    def dim(self) -> int:
        """Embedding width D."""
        return int(self.base.shape[2])

    @property
    def per_video(self) -> int:
        """Proposals per video P."""
        return int(self.base.shape[1])

    @cached_property
    def rms(self) -> float:
        """Root mean square of the real embeddings' coordinates."""
        return float(np.sqrt(np.mean(self.base ** 2)))

    @property
    def block_size(self) -> int:
        """Vectors per generated block."""
        return self.videos_per_block * self.per_video

    def block(self, number: int) -> np.ndarray:
        """Block ``number``: (block_size, D) float32, ids from ``number * block_size``."""
        videos = np.arange(number * self.videos_per_block, (number + 1) * self.videos_per_block)
        vectors = self.base[videos % len(self.base)].copy()  # (B, P, D)
        copies = videos >= len(self.base)
        if copies.any():
            rng = np.random.default_rng([self.seed, number])
            scale = self.noise * self.rms
            shape = (int(copies.sum()), self.per_video, self.dim)
            vectors[copies] += scale * rng.standard_normal(shape, dtype=np.float32)
        return vectors.reshape(-1, self.dim)

    def blocks(self, n: int):
        """``(first_id, vectors)`` covering ids ``0 .. n-1`` in order."""
        for number in range(-(-n // self.block_size)):
            first = number * self.block_size
            yield first, self.block(number)[: n - first]


def real_embeddings(data, fvmr_dir, split: str, device: str, batch: int = 64):
    """(V0, P, D) moment embeddings of every real video (embedded as the indexer does), (Q, D)
    embeddings of the split's queries, and the videos (features in memory) for the scan."""
    model, max_tokens, rate = load_checkpoint(fvmr_dir, device)
    encoder = MomentEncoder(model)
    corpus, store = open_corpus(data, feature_rate=rate)
    flat, _ = ShardEmbedder(encoder, store, batch).embed(list(corpus.videos.values()))
    base = flat.reshape(len(corpus.videos), -1, flat.shape[-1])
    split_corpus, _ = open_corpus(data, split=split, feature_rate=rate)
    texts = [q.text for q in split_corpus.queries]
    queries = QueryEncoder(model, TokenEncoder(device=encoder.device, max_length=max_tokens))
    scan_corpus, scan_store = open_corpus(data)  # rerankers read videos at their own rate
    return base, queries.encode(texts), brute_force.load_videos(scan_corpus, scan_store), texts


def index_point(videos: int, data: ReplicatedEmbeddings, queries: np.ndarray, budget: str
                ) -> dict:
    """Build the indexer's choice for ``videos`` replicated videos; recall first, then latency."""
    n = videos * data.per_video
    spec = fi.choose_index(n, data.dim, budget)
    progress(f"scaling: index of {videos:,} videos ({n:,} vectors, {spec.kind})")
    index, times = build_measured(spec, n, data)
    k = min(K, n)
    truth = exact_neighbours(data, n, queries, k)[1]
    found = fi.search(index, queries, min(CANDIDATES, n), spec)[1][:, :k]  # the timed search
    row = {"videos": videos, "vectors": n, "index": spec.kind, "params": spec.params,
           "recall_at_10": recall_at(found, truth, min(10, k)),
           "recall_at_100": recall_at(found, truth, k), **times}
    if spec.kind == "flat" and row["recall_at_100"] < 0.999:
        raise RuntimeError(f"exact flat index disagrees with exhaustive search at {videos} videos "
                           f"(recall@100 {row['recall_at_100']:.4f}); the benchmark is broken")
    row["meets_recall_target"] = row["recall_at_100"] >= RECALL_TARGET
    single = latency_ms(index, queries, 1, k=min(CANDIDATES, n), spec=spec)
    row.update(search_ms_p50=float(np.median(single)),
               search_ms_p95=float(np.percentile(single, 95)))
    return row


def linear_fit(points: list[dict]) -> tuple[float, float]:
    """``(intercept_ms, ms_per_video)`` through the measured scan points (least squares)."""
    x = np.array([p["videos"] for p in points], dtype=np.float64)
    y = np.array([p["ms_p50"] for p in points], dtype=np.float64)
    if len(points) == 1:
        return 0.0, float(y[0] / x[0])
    slope, intercept = np.polyfit(x, y, 1)
    return float(intercept), float(slope)


def scan_curve(reranker, videos: list, texts: list[str], sizes: tuple[int, ...],
               measured_sizes: tuple[int, ...]) -> list[dict]:
    """Measured scan points, then the fitted line at every size not measured."""
    usable = sorted({min(s, len(videos)) for s in measured_sizes})
    points = [brute_force.measure(reranker, videos[:s], texts) for s in usable]
    intercept, slope = linear_fit(points)
    extra = [{"videos": s, "ms_p50": intercept + slope * s, "source": "extrapolated"}
             for s in sizes if s not in usable]
    return sorted(points + extra, key=lambda p: p["videos"])
