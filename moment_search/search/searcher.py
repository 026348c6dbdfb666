"""Search an index: encode the sentence, find the best proposals, NMS per video, top k moments.

    >>> searcher = Searcher.open("moment-index")
    >>> for moment in searcher.search("person opens a cabinet", k=5):
    ...     print(moment.video_id, moment.start_s, moment.end_s, moment.score)
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from functools import partial
from operator import attrgetter
from pathlib import Path

import numpy as np

from ..errors import DataError, InputError
from ..indexer.catalog import Catalog
from ..indexer.query_encoder import open_query_encoder
from ..indexer.store import ProposalTable, read_metadata
from .checks import check_count, check_nms, check_sentence
from .localize import (
    WIDEST_FETCH,
    best_across_videos,
    one_video,
    short_of_cap,
    video_cap,
    widened_many,
)
from .options import Moment, SearchOptions, Timings, default_candidates  # re-exported
from .query_cache import QUERY_CACHE_SIZE, QueryCache
from .relevance import RelevanceModel, read_relevance
from .rerank import same_text_encoder


class Searcher:
    """An opened index: the FAISS index, the proposal table, the catalog and the query encoder."""

    def __init__(self, index, table: ProposalTable, catalog: Catalog, encoder, params: dict,
                 index_dir: Path):
        self.index = index  # a vector store (indexer.backends): FAISS or Milvus
        self.n_stored = index.count()
        self.table = table
        self.catalog = catalog
        self.query_cache = QueryCache(QUERY_CACHE_SIZE)  # first: setting the encoder renews it
        self.encoder = encoder  # OnnxQueryEncoder, or the PyTorch QueryEncoder of an old index
        self.params = params
        self.index_dir = index_dir
        self.video_position = {name: i for i, name in enumerate(table.video_names)}
        self.removed = self._removed_mask()
        # proposals searchable (removed ones excluded): fixed for this version, and read by
        # every search's checks, so counted once here
        self.n_proposals = int(len(table) - self.removed[table.video_index].sum())
        self.timings = Timings()
        self.rerankers: dict[str, object] = {}
        self.device = "cpu"
        self._moment_encoder = None
        self.relevance: RelevanceModel | None = None  # the model's calibration, if it has one

    @property
    def encoder(self):
        """The query encoder; setting another one forgets the cached search vectors."""
        return self._encoder

    @encoder.setter
    def encoder(self, encoder) -> None:
        # a new cache rather than a cleared one: a search already under way puts what it encodes
        # into the cache it read, which is then no longer the searcher's
        self._encoder = encoder
        self.query_cache = QueryCache(self.query_cache.size)

    @classmethod
    def open(cls, index_dir: str | Path, device: str = "auto", catalog_url: str | None = None,
             encoder: str | None = None, mmap: bool = False,
             query_cache: int = QUERY_CACHE_SIZE) -> Searcher:
        """Open an index directory built by ``moment-search index build``: the state the catalog
        points at, checked (see ``indexer.integrity``). A writer that publishes a new state
        meanwhile is met by reading the catalog again.

        Queries are encoded by the ONNX encoder the index carries (``encoder``: its precision,
        ``fp32`` or ``int8``; None: the folder's default), without PyTorch; an index built
        before encoders were exported falls back to PyTorch, with a warning saying how to add
        one (``moment-search index export-encoder``).

        ``mmap`` maps the FAISS file instead of reading it (for a one-shot query, see
        ``FaissStore.open``). ``query_cache``: sentences whose search vectors are kept (LRU; 0:
        none), so a repeated query skips the encoder.

        Raises:
            FileNotFoundError / DataError: a missing, unfinished, changed or corrupt index
                (names the file).
        """
        from ..indexer.integrity import require_index

        index_dir = Path(index_dir)
        for attempt in range(3):
            catalog, params = require_index(index_dir, catalog_url)
            try:
                searcher = cls._open_published(index_dir, catalog, params, device,
                                               encoder_precision=encoder, mmap=mmap,
                                               query_cache=query_cache)
            except (FileNotFoundError, ValueError):
                _, now = require_index(index_dir, catalog_url)
                if now.get("version") == params.get("version") or attempt == 2:
                    raise  # not a concurrent publish: the files are damaged
            else:
                return searcher
        raise AssertionError("unreachable")

    def reopen_if_changed(self) -> Searcher:
        """This searcher, or, when a writer has published a new version of the index since it
        was opened, a new one over that version (sharing the model, text encoder and rerankers:
        add and remove never change the model)."""
        params = dict(self.catalog.info().index_params or {})
        if params.get("version") == self.params.get("version"):
            return self
        fresh = self._open_published(self.index_dir, self.catalog, params, self.device,
                                     self.encoder)
        fresh.rerankers, fresh.query_cache = self.rerankers, self.query_cache
        fresh.relevance = self.relevance
        return fresh

    def video_profile(self, query: np.ndarray, video_id: str) -> np.ndarray:
        """The fast-path score along one video: for each second t, the best score of a proposal
        covering t + 0.5 s (for the last, partial second: its end; NaN where none does).
        ``query`` is an encoded sentence (D,)."""
        self._check_videos([video_id])
        record = self.catalog.video(video_id)
        scores, ids = self.index.search(query[None], record.n_proposals, self.params,
                                        [(record.first_id, record.n_proposals)])
        keep = ids[0] >= 0
        scores, ids = scores[0][keep], ids[0][keep]
        seconds = np.arange(int(np.ceil(record.duration)))
        middle = np.minimum(seconds + 0.5, record.duration - 1e-6)  # (S,) inside the video
        covers = ((self.table.start_s[ids][:, None] <= middle)
                  & (middle < self.table.end_s[ids][:, None]))  # (P, S)
        best = np.where(covers, scores[:, None], -np.inf).max(axis=0, initial=-np.inf)
        return np.where(np.isfinite(best), best, np.nan)

    @classmethod
    def _open_published(cls, index_dir: Path, catalog: Catalog, params: dict, device: str,
                        encoder=None, encoder_precision: str | None = None,
                        mmap: bool = False, query_cache: int = QUERY_CACHE_SIZE) -> Searcher:
        from ..indexer.backends import open_store
        from ..indexer.integrity import check_for_query, published_shards, verify_model_matches
        from ..indexer.store import MODEL_DIR

        verify_model_matches(index_dir, catalog)
        check_for_query(index_dir, params)
        table = read_metadata(index_dir, published_shards(catalog, params))
        # FAISS: on a GPU when one is there and the FAISS build has GPU support, else the CPU
        index = open_store(index_dir, params, device, mmap)
        first_open = encoder is None
        if first_open:
            # with no query cache, the PyTorch encoder keeps no sentence cache either
            encoder = open_query_encoder(index_dir, catalog.info(), device, encoder_precision,
                                         token_cache=None if query_cache else 0)
        if encoder.dim != index.d:
            raise DataError(f"{index_dir}: query embedding width {encoder.dim} "
                            f"does not match the index width {index.d}")
        searcher = cls(index, table, catalog, encoder, params, index_dir)
        searcher.device = device
        if first_open:  # a reopened version shares the model, hence the calibration
            info = catalog.info()
            searcher.relevance = read_relevance(index_dir / MODEL_DIR, info.model_id,
                                                info.config_hash)
        searcher.query_cache = QueryCache(query_cache)
        return searcher

    def moment_encoder(self):
        """The index's FVMR model on the moment side (a ``MomentEncoder``), loaded on first use:
        the cascade embeds videos again where the index keeps no exact vectors. Imports torch."""
        if self._moment_encoder is None:
            from ..embed.encoders import MomentEncoder
            from ..indexer.store import MODEL_DIR
            from ..models.fvmr import FVMR

            model = getattr(self.encoder, "model", None)  # the PyTorch query encoder holds it
            if model is None:
                model = FVMR.from_pretrained(self.index_dir / MODEL_DIR, "cpu")
            self._moment_encoder = MomentEncoder(model)
        return self._moment_encoder

    def add_reranker(self, name: str, model_dir: str | Path | None = None) -> None:
        """Load reranker ``name`` (default: its shipped checkpoint) for ``rerank=name``."""
        from .rerank import load_reranker

        reranker = load_reranker(name, model_dir, self.device)
        self._share_text_encoder(reranker)
        self.rerankers[name] = reranker

    def _share_text_encoder(self, reranker) -> None:
        """Give the reranker the search's own token encoder when both run the same text model
        with the same settings: a query then goes through MiniLM once (the reranker's call hits
        the sentence cache) and the process holds one copy of it."""
        mine = getattr(self.encoder, "tokens", None)  # the ONNX encoder holds no TokenEncoder
        if same_text_encoder(mine, getattr(reranker, "tokens", None)):
            reranker.tokens = mine

    def _removed_mask(self) -> np.ndarray:
        """(V,) bool over ``table.video_names``: True for videos removed from the index."""
        mask = np.zeros(len(self.table.video_names), dtype=bool)
        for record in self.catalog.videos(status="removed"):
            if record.video_id in self.video_position:
                mask[self.video_position[record.video_id]] = True
        return mask

    def search(self, text: str, k: int = 10, **options) -> list[Moment]:
        """The top ``k`` moments for one sentence (see :class:`SearchOptions` for options)."""
        return self.search_many([text], k=k, **options)[0]

    def search_many(self, texts: Sequence[str], k: int = 10, **options) -> list[list[Moment]]:
        """Batched search: one ranked moment list per sentence (``self.timings`` says where
        the time went; threads sharing a searcher use :meth:`search_timed` instead).

        Raises:
            InputError: an empty sentence, k <= 0 or larger than the index, unknown video
                ids (``parameter`` names the option).
        """
        results, self.timings = self.search_timed(texts, k, **options)
        return results

    def search_timed(self, texts: Sequence[str], k: int = 10, **options
                     ) -> tuple[list[list[Moment]], Timings]:
        """:meth:`search_many` and its timings, without touching the searcher's state: safe to
        call from several threads at once (ONNX Runtime and FAISS release the GIL)."""
        opts = SearchOptions(k=k, **options)
        self._check(texts, opts)
        start = time.perf_counter()
        queries = self.query_cache.encode(self.encoder, list(texts))  # (B, D)
        timings = Timings(encode_ms=1000 * (time.perf_counter() - start))
        start = time.perf_counter()
        searched = self._within_one_video(queries, opts.video_ids)
        scores, ids = self.index.search(searched, self._candidates(opts), self.params,
                                        self._selector(opts.video_ids))
        timings.search_ms = 1000 * (time.perf_counter() - start)
        start = time.perf_counter()
        # the cascade needs every fetched video's fast-path moments, not only the top k
        fast_opts = replace(opts, k=len(ids[0])) if opts.rerank else opts
        results = [self._moments(s, i, fast_opts) for s, i in zip(scores, ids, strict=True)]
        widen = time.perf_counter()
        results = self._widened(searched, opts, len(ids[0]), results)
        widen_ms = 1000 * (time.perf_counter() - widen)  # fetching again: search time
        results = [self._with_relevance(q, moments)
                   for q, moments in zip(queries, results, strict=True)]
        timings.search_ms += widen_ms
        timings.post_ms = 1000 * (time.perf_counter() - start) - widen_ms
        if opts.rerank:
            start = time.perf_counter()
            results = [self._rerank(text, query, moments, opts) if moments else moments
                       for text, query, moments in zip(texts, searched, results, strict=True)]
            timings.extra["rerank_ms"] = 1000 * (time.perf_counter() - start)
        return results, timings

    def query_vector(self, text: str, video_ids: Sequence[str] | None = None) -> np.ndarray:
        """(D,) the vector a search for ``text`` within ``video_ids`` runs with (what
        :meth:`video_profile` wants, to match that search's scores)."""
        queries = self.query_cache.encode(self.encoder, [text])
        return self._within_one_video(queries, video_ids)[0]

    def _within_one_video(self, queries: np.ndarray, video_ids: Sequence[str] | None
                          ) -> np.ndarray:
        """The (B, D) query vectors a search runs with: as encoded, or, for a search within one
        video, weighed by ``embed.one_video``'s rule (the constant column, i.e. the per-cell
        prior and the hub correction, at 0; the video-text term at its one-video weight)."""
        if not one_video(video_ids):
            return queries
        return self.encoder.one_video.apply(queries)  # never changes the cache's vectors

    def _with_relevance(self, query: np.ndarray, moments: list[Moment]) -> list[Moment]:
        """The fast-path moments of one (D,) query with their relevance (unchanged when the
        index has no calibration)."""
        if self.relevance is None or not moments:
            return moments
        scores = np.array([[m.score for m in moments]])  # (1, K) best first
        relevance = self.relevance.relevance(query[None], scores)[0]  # (K,)
        return [replace(m, relevance=float(r)) for m, r in zip(moments, relevance, strict=True)]

    def no_good_match(self, moments: list[Moment]) -> bool | None:
        """Whether an answer has no good match: its best relevance is under the calibration's
        threshold (None when the index has no calibration or the answer no moments)."""
        found = [m.relevance for m in moments if m.relevance is not None]
        if self.relevance is None or not found:
            return None
        return self.relevance.no_good_match(max(found))

    def _rerank(self, text: str, query: np.ndarray, fast: list[Moment], opts: SearchOptions
                ) -> list[Moment]:
        """Re-score the top ``rerank_videos`` videos of the fast path and fuse (see rerank.py)."""
        from .cascade import rerank_moments

        if opts.rerank not in self.rerankers:
            self.add_reranker(opts.rerank)
        return rerank_moments(self, self.rerankers[opts.rerank], text, query, fast, opts)

    def _check(self, texts: Sequence[str], opts: SearchOptions) -> None:
        for i, text in enumerate(texts):
            check_sentence(text, "q" if len(texts) == 1 else f"queries[{i}]",
                           label=f"query {i + 1}")
        check_count("k", opts.k)
        if opts.k > self.n_proposals:
            raise InputError(f"k={opts.k} is larger than the index ({self.n_proposals} "
                             f"proposals)", parameter="k")
        if opts.rerank is not None:
            check_count("rerank_videos", opts.rerank_videos)
        if opts.per_video is not None:
            check_count("per_video", opts.per_video)
        check_nms(opts.nms)
        self._check_videos(opts.video_ids or ())

    def _check_videos(self, video_ids: Sequence[str]) -> None:
        """Every id must be a searchable video of this index (else says what it is)."""
        unknown = [v for v in video_ids if v not in self.video_position
                   or self.removed[self.video_position[v]]]
        pending = [v for v in unknown if self.catalog.video_status(v) == "pending"]
        if pending:
            raise InputError(f"video(s) {pending[:5]} are pending: an 'index add' embedded them "
                             f"but was interrupted before publishing; run 'index add' again to "
                             f"finish them (or 'index repair' to drop them)", parameter="video")
        if unknown:
            raise InputError(f"unknown video id(s) {unknown[:5]}: not in this index",
                             parameter="video")

    def _candidates(self, opts: SearchOptions) -> int:
        wanted = opts.candidates or default_candidates(opts.k)
        return int(min(wanted, self.n_stored))

    def _selector(self, video_ids: Sequence[str] | None) -> list[tuple[int, int]] | None:
        """Id ranges ``(first_id, count)`` of the chosen videos, or None for the whole index."""
        if not video_ids:
            return None
        ranges = []
        for video_id in dict.fromkeys(video_ids):
            record = self.catalog.video(video_id)
            ranges.append((record.first_id, record.n_proposals))
        return ranges

    def _moments(self, scores: np.ndarray, ids: np.ndarray, opts: SearchOptions) -> list[Moment]:
        """FAISS hits of one query -> NMS within each video -> per-video cap (``video_cap``:
        the default one is followed by the held-back moments when fewer than k are left) -> top
        k."""
        keep = (ids >= 0) & (ids < len(self.table))  # a Milvus store may hold unpublished ids
        scores, ids = scores[keep], ids[keep]
        videos = self.table.video_index[ids]
        alive = ~self.removed[videos]
        scores, ids, videos = scores[alive], ids[alive], videos[alive]
        spans = np.stack([self.table.start_s[ids], self.table.end_s[ids]], axis=1)
        cap, fill = video_cap(opts.per_video, opts.video_ids)
        chosen = best_across_videos(spans, scores, videos, opts.k, cap or opts.k, opts.nms, fill)
        return [self._moment(rank, int(ids[i]), float(scores[i]))
                for rank, i in enumerate(chosen, 1)]

    def _widened(self, queries: np.ndarray, opts: SearchOptions, fetched: int,
                 results: list[list[Moment]]) -> list[list[Moment]]:
        """A default search's answers whose filled cap came up short (``localize.widened_many``),
        fetched again wider; the cascade takes every fetched moment and a set ``candidates``
        is kept as given."""
        cap, fill = video_cap(opts.per_video, opts.video_ids)
        if not fill or opts.rerank or opts.candidates is not None:
            return results
        short = {row: moments for row, moments in enumerate(results)
                 if short_of_cap([m.video_id for m in moments], opts.k, cap)}
        if not short:  # the usual case: nothing more to do on the hot path
            return results
        if self._videos_in_scope(opts.video_ids) * cap < opts.k:
            cap = None  # the cap cannot hold: only fewer than k moments calls for more
        selector = self._selector(opts.video_ids)
        allowed = sum(count for _, count in selector) if selector else self.n_stored
        limit = min(allowed, WIDEST_FETCH, self.index.max_k or WIDEST_FETCH)
        fetch = partial(self._fetch_moments, queries, selector, opts)
        for row, moments in widened_many(short, fetched, limit, opts.k, cap, fetch,
                                         attrgetter("video_id")).items():
            results[row] = moments
        return results

    def _fetch_moments(self, queries: np.ndarray, selector, opts: SearchOptions,
                       rows: list[int], n: int) -> list[list[Moment]]:
        """The answers to ``queries[rows]`` from each one's best ``n`` proposals, in one
        search."""
        scores, ids = self.index.search(queries[rows], n, self.params, selector)
        return [self._moments(s, i, opts) for s, i in zip(scores, ids, strict=True)]

    def _videos_in_scope(self, video_ids: Sequence[str] | None) -> int:
        """How many videos a search may answer from: the chosen ones, else every live one."""
        return len(set(video_ids)) if video_ids else int((~self.removed).sum())

    def _moment(self, rank: int, proposal_id: int, score: float) -> Moment:
        video = self.table.video_names[self.table.video_index[proposal_id]]
        return Moment(rank, video, float(self.table.start_s[proposal_id]),
                      float(self.table.end_s[proposal_id]), score, "fvmr", proposal_id)

