"""The search service behind the HTTP API: one warm Searcher, requests checked, concurrent queries
answered in parallel and batched, and the index reopened when a writer publishes a new version.

Request threads put a query on a queue and wait for its answer. ``parallel`` worker threads
(default: one per CPU core) each take every query waiting (up to ``max_batch``) and answer those
with the same options in one ``Searcher.search_timed`` call: the ONNX query encoder and FAISS
release the GIL, so the workers run on all cores at once, and a burst of clients costs one
encoder pass per batch, not one per client. Reranked requests (PyTorch models with a shared
sentence cache) run one at a time, under a lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import InputError, UnavailableError
from ..registry import list_rerankers
from ..search.checks import check_count, check_nms, check_sentence
from ..search.query_cache import QUERY_CACHE_SIZE

LOGGER = logging.getLogger("moment_search.serve")
MAX_K = 100
MAX_QUERY_CHARS = 500
MAX_QUERIES = 64  # per POST
MAX_RERANK_VIDEOS = 50
MAX_BATCH = 32
ANSWER_TIMEOUT_S = 120.0


class BadRequest(InputError):
    """A client error: names the parameter and what was expected (HTTP 400)."""

    def __init__(self, parameter: str, message: str):
        super().__init__(f"{parameter}: {message}", parameter=parameter)
        self.message = message


@dataclass(frozen=True)
class SearchOptions:
    """Per-request options (validated by :func:`check_options`)."""

    k: int = 10
    video: tuple[str, ...] = ()
    nms: float = 0.5
    per_video: int | None = None
    rerank: str | None = None
    rerank_videos: int = 10
    profile: bool = False


def check_query(text, index: int | None = None) -> str:
    """A non-empty sentence of at most MAX_QUERY_CHARS characters (``search.checks``)."""
    return check_sentence(text, "q" if index is None else f"queries[{index}]", MAX_QUERY_CHARS)


def check_options(options: SearchOptions) -> SearchOptions:
    """Refuse out-of-range options, naming the parameter: the searcher's checks
    (``search.checks``) under this server's caps (unknown videos: the searcher)."""
    check_count("k", options.k, MAX_K)
    check_nms(options.nms)
    if options.per_video is not None:
        check_count("per_video", options.per_video, MAX_K)
    check_count("rerank_videos", options.rerank_videos, MAX_RERANK_VIDEOS)
    if options.rerank is not None and options.rerank not in list_rerankers():
        raise BadRequest("rerank", f"expected one of {list_rerankers()}, got {options.rerank!r}")
    return options


@dataclass
class _Job:
    text: str
    options: SearchOptions
    answer: Future = field(default_factory=Future)


class SearchService:
    """A warm searcher over one index directory (see the module doc)."""

    def __init__(self, index_dir: str | Path, device: str = "cpu", catalog_url: str | None = None,
                 rerank: str | None = None, max_batch: int = MAX_BATCH,
                 parallel: int | None = None, encoder: str | None = None,
                 query_cache: int = QUERY_CACHE_SIZE):
        self.index_dir, self.device, self.catalog_url = Path(index_dir), device, catalog_url
        self.default_rerank, self.encoder_precision = rerank, encoder
        self.query_cache = query_cache
        self.max_batch = max(1, int(max_batch))
        self.parallel = max(1, int(parallel or os.cpu_count() or 1))
        self.searcher = None
        self.error: str | None = None
        self._reopen_error: str | None = None
        self.load_seconds: float | None = None
        self._jobs: queue.Queue[_Job] = queue.Queue()
        self._ready = threading.Event()
        self._reopen_lock = threading.Lock()  # one worker at a time looks for a new version
        self._model_lock = threading.Lock()  # reranking (PyTorch) runs one request at a time
        threading.Thread(target=self._start, name="moment-search-loader", daemon=True).start()

    # -- lifecycle -------------------------------------------------------------------------

    def _load(self) -> None:
        from ..search.searcher import Searcher

        start = time.perf_counter()
        searcher = Searcher.open(self.index_dir, device=self.device, catalog_url=self.catalog_url,
                                 encoder=self.encoder_precision, query_cache=self.query_cache)
        if self.default_rerank:
            searcher.add_reranker(self.default_rerank)
        if searcher.n_proposals:  # the first call pays for lazy initialisation
            searcher.search("warm up", k=1)
        self.searcher = searcher
        self.load_seconds = time.perf_counter() - start

    def _start(self) -> None:
        try:
            self._load()
        except Exception as e:  # reported by /api/health; every request gets it too
            self.error = f"cannot open the index: {e}"
        self._ready.set()
        if self.searcher is not None and not hasattr(self.searcher.encoder, "session"):
            self.parallel = 1  # the PyTorch encoder's sentence cache is not thread-safe
        for n in range(self.parallel):
            threading.Thread(target=self._work, name=f"moment-search-worker-{n}",
                             daemon=True).start()

    def health(self) -> dict:
        """``{"status": "loading" | "ready" | "failed", ...}``."""
        if self.error:
            return {"status": "failed", "error": self.error}
        if not self._ready.is_set():
            return {"status": "loading"}
        return {"status": "ready", "index_version": self.searcher.params.get("version"),
                "proposals": self.searcher.n_proposals}

    def describe(self) -> str:
        """One line on what is loaded: the index, its size and kind, the query encoder."""
        searcher = self.searcher
        encoder = getattr(searcher.encoder, "precision", None)
        encoder = f"ONNX {encoder}" if encoder else "PyTorch (no ONNX encoder in the index)"
        relevance = "relevance calibrated" if searcher.relevance else \
            "no relevance calibration (moments have no relevance field)"
        return (f"{self.index_dir}: {len(searcher.table.video_names)} videos, "
                f"{searcher.n_proposals:,} proposals, {searcher.catalog.info().index_type} "
                f"index, query encoder {encoder}, {relevance}, {self.parallel} worker "
                f"thread(s); loaded in {self.load_seconds:.1f} s")

    def wait_ready(self, timeout: float | None = None) -> bool:
        return self._ready.wait(timeout)

    # -- the worker ------------------------------------------------------------------------

    def _work(self) -> None:
        if self.parallel > 1:  # OpenMP's setting is per thread: one FAISS thread per call here
            from ..indexer.faiss_core import import_faiss

            import_faiss().omp_set_num_threads(1)
        while True:
            jobs = [self._jobs.get()]
            while len(jobs) < self.max_batch:
                try:
                    jobs.append(self._jobs.get_nowait())
                except queue.Empty:
                    break
            # a job whose client gave up (timed out) is dropped; the others are answered
            jobs = [job for job in jobs if job.answer.set_running_or_notify_cancel()]
            try:
                self._answer(jobs)
            except Exception:  # noqa: BLE001 - a worker must outlive any one batch
                LOGGER.exception("a batch of %d queries failed", len(jobs))
                for job in jobs:  # a bug: HTTP 500
                    if not job.answer.done():
                        job.answer.set_exception(Exception("the search failed"))

    def _answer(self, jobs: list[_Job]) -> None:
        self._reopen()
        groups: dict[SearchOptions, list[_Job]] = {}
        for job in jobs:
            groups.setdefault(job.options, []).append(job)
        for options, group in groups.items():
            self._answer_group(options, group)

    def _reopen(self) -> None:
        """Move to a version a writer published meanwhile; a broken one is said once and the
        open version keeps answering."""
        with self._reopen_lock:
            try:
                self.searcher = self.searcher.reopen_if_changed()
            except Exception as e:  # noqa: BLE001
                if str(e) != self._reopen_error:
                    LOGGER.warning("cannot open the index's new version (still answering "
                                   "from version %s): %s", self.searcher.params.get("version"),
                                   e)
                self._reopen_error = str(e)

    def _answer_group(self, options: SearchOptions, group: list[_Job]) -> None:
        """Answer the jobs of one options group in one call; on a bad sentence, one by one,
        so that each client hears only of its own."""
        try:
            results = self._search([j.text for j in group], options)
        except InputError as e:
            if len(group) > 1:
                for job in group:
                    self._answer_group(options, [job])
                return
            group[0].answer.set_exception(_bad_request(e))
            return
        except Exception as e:  # noqa: BLE001 - every waiting client must hear of it
            for job in group:
                job.answer.set_exception(e)
            return
        for job, result in zip(group, results, strict=True):
            job.answer.set_result({**result, "batch_size": len(group)})

    def _search(self, texts: list[str], options: SearchOptions) -> list[dict]:
        searcher = self.searcher
        start = time.perf_counter()
        with self._model_lock if options.rerank else contextlib.nullcontext():
            found, t = searcher.search_timed(
                texts, k=options.k, video_ids=list(options.video) or None, nms=options.nms,
                per_video=options.per_video, rerank=options.rerank,
                rerank_videos=options.rerank_videos)
        timing = {"encode_ms": t.encode_ms, "search_ms": t.search_ms, "nms_ms": t.post_ms,
                  **t.extra, "total_ms": 1000 * (time.perf_counter() - start)}
        results = []
        for text, moments in zip(texts, found, strict=True):
            rows = [m.to_dict() for m in moments]
            if options.profile:
                self._add_profiles(searcher, text, rows, options.video)
            flag = searcher.no_good_match(moments)
            results.append({"query": text, "moments": rows,
                            **({} if flag is None else {"no_good_match": flag}),
                            "timing_ms": {k: round(v, 3) for k, v in timing.items()},
                            "index_version": searcher.params.get("version")})
        return results

    def _add_profiles(self, searcher, text: str, rows: list[dict], video_ids) -> None:
        """Each row's video profile, from the version that found the moments, with the query
        vector that search ran with (``video_ids``: the videos it was restricted to)."""
        query = searcher.query_vector(text, list(video_ids) or None)
        profiles: dict[str, list] = {}
        for row in rows:
            video = row["video_id"]
            if video not in profiles:
                values = searcher.video_profile(query, video)
                profiles[video] = [None if math.isnan(v) else round(float(v), 4)
                                   for v in values]
            row["profile"] = profiles[video]
            row["duration"] = searcher.catalog.video(video).duration
            row["has_file"] = self.video_file(video) is not None

    # -- the API ---------------------------------------------------------------------------

    def search(self, texts: list[str], options: SearchOptions) -> list[dict]:
        """Answer each sentence (validated here) with the same options.

        Raises:
            InputError: a bad sentence or option, or an unknown video (``parameter`` names
                it; a :class:`BadRequest` where the service itself refused it).
            UnavailableError: the index could not be opened or is still loading.
        """
        self._require_ready()
        jobs = self._submit(texts, options)
        return [job.answer.result(timeout=ANSWER_TIMEOUT_S) for job in jobs]

    async def search_async(self, texts: list[str], options: SearchOptions) -> list[dict]:
        """:meth:`search` for an event loop: the request waits without holding a thread."""
        if not self._ready.is_set():  # still loading: wait for it (off the event loop)
            await asyncio.to_thread(self._ready.wait, ANSWER_TIMEOUT_S)
        if not self._ready.is_set() or self.error:
            raise UnavailableError(self.error or "the index is still loading")
        jobs = self._submit(texts, options)
        waiting = [asyncio.wrap_future(job.answer) for job in jobs]
        try:
            return list(await asyncio.wait_for(asyncio.gather(*waiting), ANSWER_TIMEOUT_S))
        except asyncio.TimeoutError as e:  # queued jobs are cancelled; workers drop them
            raise UnavailableError(f"no answer within {ANSWER_TIMEOUT_S:.0f} s: the server is "
                                   f"overloaded; try again") from e

    def _submit(self, texts: list[str], options: SearchOptions) -> list[_Job]:
        """Validate the sentences and options, then queue one job per sentence."""
        texts = [check_query(t, None if len(texts) == 1 else i) for i, t in enumerate(texts)]
        if not texts or len(texts) > MAX_QUERIES:
            raise BadRequest("queries", f"expected 1 to {MAX_QUERIES} sentences, got "
                                        f"{len(texts)}")
        jobs = [_Job(text, check_options(options)) for text in texts]
        for job in jobs:
            self._jobs.put(job)
        return jobs

    def _require_ready(self) -> None:
        if not self._ready.wait(ANSWER_TIMEOUT_S) or self.error:
            raise UnavailableError(self.error or "the index is still loading")

    def index_info(self) -> dict:
        from ..indexer.integrity import index_summary

        self._require_ready()
        return index_summary(self.index_dir, self.catalog_url)

    def video(self, video_id: str) -> dict | None:
        """One video's catalog record (and whether its file can be played), or None."""
        self._require_ready()
        catalog = self.searcher.catalog
        record = catalog.video(video_id)
        if record is None:
            return None
        return {**asdict(record), "status": catalog.video_status(video_id),
                "has_file": self.video_file(video_id) is not None}

    def recorded_video_path(self, video_id: str) -> str | None:
        """The raw video file the catalog records for this id (it may be gone), or None."""
        return getattr(self.searcher.catalog.video(video_id), "video_path", None) or None

    def video_file(self, video_id: str) -> Path | None:
        """The raw video file the catalog records for this id, if it exists on disk."""
        path = self.recorded_video_path(video_id)
        return Path(path) if path and Path(path).is_file() else None


def _bad_request(error: InputError) -> BadRequest:
    """The request error for a searcher's input error: its own parameter (the sentence, ``q``,
    when it names none)."""
    if isinstance(error, BadRequest):
        return error
    return BadRequest(error.parameter or "q", str(error))
