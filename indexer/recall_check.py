"""The build-time recall check of an approximate index: its recall against exact search on real
query vectors, and the search parameter (IVF ``nprobe``, HNSW ``efSearch``) that reaches a target.

The check queries are the corpus's sentences (``query_encoder.check_sentences``: its val split)
plus the built-in ``encoder_export.CHECK_SENTENCES``, encoded by the index's own query encoder.
With fewer than :data:`MIN_CHECK_QUERIES` sentences (a corpus without annotations) the rest are
stored proposal vectors with Gaussian noise of :data:`NOISE_SCALE` times the per-dimension spread
added (a stored vector itself would find itself first); ``recall_source`` in the published params
says which. Exact neighbours come from ``faiss.contrib.exhaustive_search.knn_ground_truth`` over
the embedding shards; recall@k is ``faiss.contrib.evaluation.knn_intersection_measure``.

Recall is checked at k = 100 (the issue's measure) and k = 200: the searcher fetches
``default_candidates(k) = max(200, 20 k)`` proposals before its per-video NMS, so the 200 are the
candidates a default query sees. The parameter starts low and doubles until both reach the
target; past its cap the check fails (:class:`RecallError`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import DataError, InputError
from .faiss_core import _unwrap, import_faiss, index_kind
from .faiss_search import search
from .index_choice import IndexSpec, estimated_bytes, format_bytes, parse_bytes

RECALL_TARGET = 0.98  # recall@k against exact search that an auto-tuned index must reach
RECALL_KS = (100, 200)  # 100: the recall@100; 200: default_candidates(k <= 10)
MIN_CHECK_QUERIES = 200  # fewer sentences than this: made up with perturbed stored vectors
MAX_CHECK_QUERIES = 1_000  # more are subsampled (seeded): exact search costs queries x corpus
NOISE_SCALE = 0.5  # perturbed stored vectors: noise std = 0.5 x the per-dimension std
NPROBE_START = 16  # IVF: 16, 32, 64, ... lists probed
NPROBE_MAX_SHARE = 4  # ... up to nlist / 4: past it, an IVF scans a quarter of the corpus
EF_SEARCH_MAX = 4_096  # HNSW: efSearch from max k, doubling up to this


class RecallError(DataError):
    """An approximate index that does not reach the recall target within its parameter cap."""


@dataclass
class RecallCheck:
    """The outcome of a recall check.

    Attributes:
        param: the search parameter tuned, "nprobe" or "ef_search".
        value: its final value (the one published).
        recall: ``{k: recall@k}`` at ``value``, against exact search.
        n_queries: how many check queries.
        source: where they came from, e.g. "467 sentences" or "14 sentences + 186 perturbed
            stored vectors".
        target: the recall the check aimed at (None: measured only).
        tried: ``[(value, {k: recall@k}), ...]`` for every value tried, in order.
    """

    param: str
    value: int
    recall: dict[int, float]
    n_queries: int
    source: str
    target: float | None = None
    tried: list[tuple[int, dict[int, float]]] = field(default_factory=list)

    def reached(self) -> bool:
        """True when every recall@k reaches the target (or there is none)."""
        return self.target is None or min(self.recall.values()) >= self.target

    def params(self) -> dict:
        """The JSON-ready entries this check adds to the published index params."""
        out = {self.param: int(self.value)}
        out.update({f"recall_at_{k}": round(float(r), 4) for k, r in self.recall.items()})
        out.update({"recall_queries": int(self.n_queries), "recall_source": self.source})
        if self.target is not None:
            out["recall_target"] = float(self.target)
        return out

    def summary(self) -> str:
        """``"recall@100 0.990, recall@200 0.986 against exact search on 467 sentences"``."""
        figures = ", ".join(f"recall@{k} {r:.3f}" for k, r in self.recall.items())
        return f"{figures} against exact search on {self.source}"


def check_queries(sentence_vectors: np.ndarray, stored: np.ndarray, seed: int = 0
                  ) -> tuple[np.ndarray, str]:
    """The check queries: the encoded sentences, made up to :data:`MIN_CHECK_QUERIES` with
    perturbed stored vectors, at most :data:`MAX_CHECK_QUERIES` (a seeded subsample).

    Args:
        sentence_vectors: (S, D) float32 encoded sentences (S may be 0).
        stored: (M, D) float32 stored vectors to perturb (a sample of the index's).
        seed: for the subsample and the noise.

    Returns:
        queries (Q, D) float32 and a description of their source.
    """
    rng = np.random.default_rng(seed)
    sentences = np.asarray(sentence_vectors, dtype=np.float32).reshape(-1, stored.shape[1])
    if len(sentences) > MAX_CHECK_QUERIES:
        sentences = sentences[np.sort(rng.choice(len(sentences), MAX_CHECK_QUERIES, False))]
    missing = min(max(0, MIN_CHECK_QUERIES - len(sentences)), len(stored))
    if not missing:
        return np.ascontiguousarray(sentences), f"{len(sentences)} sentences"
    picked = stored[rng.choice(len(stored), missing, replace=False)]
    noise = rng.normal(size=picked.shape) * NOISE_SCALE * stored.std(axis=0)  # (missing, D)
    queries = np.concatenate([sentences, (picked + noise).astype(np.float32)])
    return np.ascontiguousarray(queries), (f"{len(sentences)} sentences + {missing} perturbed "
                                           f"stored vectors")


def exact_neighbours(queries: np.ndarray, blocks: Iterable[tuple[np.ndarray, np.ndarray]],
                     k: int) -> np.ndarray:
    """Ids (Q, k) int64 of the exact top-k inner products, best first, over ``blocks`` of
    ``(ids (N,), vectors (N, D))``; -1 where fewer than k vectors exist."""
    from faiss.contrib.exhaustive_search import knn_ground_truth

    faiss = import_faiss()
    id_parts: list[np.ndarray] = []

    def vectors() -> Iterable[np.ndarray]:
        for ids, block in blocks:
            id_parts.append(np.asarray(ids, dtype=np.int64))
            yield np.ascontiguousarray(block, dtype=np.float32)

    _, positions = knn_ground_truth(np.ascontiguousarray(queries, dtype=np.float32), vectors(),
                                    k, faiss.METRIC_INNER_PRODUCT, ngpu=0)
    all_ids = np.concatenate(id_parts) if id_parts else np.zeros(0, np.int64)
    return np.where(positions >= 0, all_ids[np.maximum(positions, 0)], -1)


def measure_recall(index, queries: np.ndarray, truth: np.ndarray, params: dict,
                   ks: Sequence[int] = RECALL_KS) -> dict[int, float]:
    """``{k: recall@k}`` of ``faiss_search.search`` (the path queries take) with ``params``,
    against ``truth`` (Q, >= max k) exact ids; k above the index size is lowered to it."""
    from faiss.contrib.evaluation import knn_intersection_measure

    top = min(max(ks), truth.shape[1], int(index.ntotal))
    _, found = search(index, queries, top, params)
    return {k: float(knn_intersection_measure(found[:, :min(k, top)], truth[:, :min(k, top)]))
            for k in ks}


def search_parameter(spec: IndexSpec, ks: Sequence[int] = RECALL_KS) -> tuple[str, int, int]:
    """``(name, first value, cap)`` of the parameter tuned for ``spec``'s kind.

    Raises:
        ValueError: a flat spec (exact: nothing to tune).
    """
    if spec.kind == "hnsw":
        return "ef_search", max(ks), max(EF_SEARCH_MAX, max(ks))
    if spec.kind in ("ivf", "ivfpq"):
        nlist = int(spec.params["nlist"])
        return "nprobe", min(NPROBE_START, nlist), max(1, nlist // NPROBE_MAX_SHARE)
    raise InputError(f"a {spec.kind} index is exact: it has no search parameter to tune")


def tune_search(index, spec: IndexSpec, queries: np.ndarray, truth: np.ndarray, source: str,
                target: float = RECALL_TARGET, cap: int | None = None,
                ks: Sequence[int] = RECALL_KS) -> RecallCheck:
    """Raise ``spec``'s search parameter step by step (doubling) until every recall@k reaches
    ``target``; the index's stored parameter is set to the value found.

    Args:
        index: the filled CPU index of ``spec``.
        queries: (Q, D) float32 check queries; ``truth``: their exact ids (Q, >= max k).
        source: a description of the queries (recorded).
        target: recall@k to reach at every k of ``ks``.
        cap: the largest value to try (default: :func:`search_parameter`'s).

    Raises:
        RecallError: the cap is reached below the target (names the recall, the value, the cap).
    """
    name, value, default_cap = search_parameter(spec, ks)
    cap = default_cap if cap is None else int(cap)
    check = RecallCheck(name, value, {}, len(queries), source, target)
    while True:
        value = min(value, cap)
        check.value, check.recall = value, measure_recall(index, queries, truth,
                                                          {**spec.params, name: value}, ks)
        check.tried.append((value, check.recall))
        if check.reached():
            set_stored_parameter(index, name, value)
            return check
        if value >= cap:
            raise RecallError(f"{spec.kind} index: {check.summary()} at {name}={value}, below "
                              f"the target {target} at the cap {name}={cap}; build it with "
                              f"--index flat, or give it more memory / another kind")
        value *= 2


def measure_search(index, spec: IndexSpec, queries: np.ndarray, truth: np.ndarray, source: str,
                   ks: Sequence[int] = RECALL_KS) -> RecallCheck:
    """Recall of ``spec`` at its own search parameter, without tuning (target None)."""
    name, _, _ = search_parameter(spec, ks)
    value = int(spec.params[name])
    recall = measure_recall(index, queries, truth, spec.params, ks)
    return RecallCheck(name, value, recall, len(queries), source, None, [(value, recall)])


def set_stored_parameter(index, name: str, value: int) -> None:
    """Store ``nprobe`` / ``ef_search`` in the index itself, so its file searches the same way."""
    faiss = import_faiss()
    _, core = _unwrap(index)
    if name == "ef_search" and index_kind(index) == "hnsw":
        core.hnsw.efSearch = int(value)
    elif name == "nprobe":
        faiss.extract_index_ivf(index).nprobe = int(value)


def encode_sentences(encode: Callable[[list[str]], np.ndarray], sentences: Sequence[str],
                     batch: int = 64) -> np.ndarray:
    """(S, D) float32: ``encode`` over ``sentences`` in batches (empty sentences skipped)."""
    texts = [s for s in dict.fromkeys(sentences) if s.strip()]
    parts = [np.asarray(encode(texts[i:i + batch]), dtype=np.float32)
             for i in range(0, len(texts), batch)]
    return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)


def shard_blocks(index_dir, catalog, shards: Sequence[int]
                 ) -> Iterable[tuple[np.ndarray, np.ndarray]]:
    """``(ids (N,), vectors (N, D))`` of each embedding shard, in order."""
    from .store import read_embeddings

    records = catalog.embedded_shards()
    for shard in shards:
        vectors = read_embeddings(index_dir, shard)
        first = records[shard].first_id
        yield np.arange(first, first + len(vectors), dtype=np.int64), vectors


def index_check_queries(index_dir, catalog, shards: Sequence[int], corpus_dir=None,
                        seed: int = 0) -> tuple[np.ndarray, str]:
    """The check queries of an index being built: the corpus's check sentences and the
    built-in ones, encoded by the index's query encoder on the CPU, made up with perturbed
    stored vectors (see :func:`check_queries`)."""
    from ..embed.encoder_export import CHECK_SENTENCES
    from .query_encoder import check_sentences, open_query_encoder

    encoder = open_query_encoder(index_dir, catalog.info(), "cpu")
    sentences = [*check_sentences(corpus_dir), *CHECK_SENTENCES]
    vectors = encode_sentences(encoder.encode, sentences)
    rng = np.random.default_rng(seed)
    per_shard = max(1, 4 * MIN_CHECK_QUERIES // max(1, len(shards)))
    stored = np.concatenate([block[rng.choice(len(block), min(per_shard, len(block)), False)]
                             for _, block in shard_blocks(index_dir, catalog, shards)])
    return check_queries(vectors, stored, seed)


def check_built_index(index, spec: IndexSpec, queries: np.ndarray, source: str,
                      blocks: Iterable[tuple[np.ndarray, np.ndarray]], tune: bool,
                      target: float = RECALL_TARGET) -> RecallCheck:
    """The recall check of a filled CPU index: tuned to ``target`` (``tune``) or measured at
    the spec's own parameter. An IVF-PQ without a refine stage (chosen when the full vectors do
    not fit the budget, its reason saying that recall drops) is measured only.

    Raises:
        RecallError: ``tune`` and the target is out of reach (see :func:`tune_search`).
    """
    truth = exact_neighbours(queries, blocks, max(RECALL_KS))
    lossy = spec.kind == "ivfpq" and spec.params.get("refine") != "flat"
    if tune and not lossy:  # 8-bit PQ scores alone cannot reach it: measured and recorded only
        return tune_search(index, spec, queries, truth, source, target)
    return measure_search(index, spec, queries, truth, source)


def flat_fallback(error: RecallError, n: int, dim: int, memory_budget: str | int | None
                  ) -> IndexSpec:
    """The exact flat spec that replaces an ``auto`` index failing its recall check, its reason
    saying why.

    Raises:
        RecallError: ``error`` again when flat does not fit the memory budget either.
    """
    flat = IndexSpec("flat")
    need, budget = estimated_bytes(flat, n, dim), parse_bytes(memory_budget)
    if budget is not None and need > budget:
        raise RecallError(f"{error}; exact flat search (~{format_bytes(need)}) does not fit the "
                          f"{format_bytes(budget)} memory budget either") from error
    return IndexSpec("flat", {}, f"exact flat inner-product search for {n:,} vectors of width "
                                 f"{dim} (~{format_bytes(need)}), slower than ~1 ms per query: "
                                 f"the approximate index failed its recall check ({error})")
