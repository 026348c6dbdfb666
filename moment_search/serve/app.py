"""The FastAPI app: the search API over a :class:`SearchService` and the static search page.

Endpoints (JSON): ``GET /api/health``, ``GET|POST /api/search``, ``GET /api/index``,
``GET /api/videos/{id}``, ``GET /api/videos/{id}/file`` (the raw video, with HTTP range requests,
only when the catalog records a file for that id), ``GET /`` (the page), ``/openapi.json``.
Every error is ``{"error": message, "parameter": name}``: a client error is a 4xx, the library's
other deliberate errors (``errors.MomentSearchError``) their own status (503: the index is loading,
failed or busy), and a bug a 500 whose traceback goes to the log.

With an API key, everything but ``/api/health`` and the page's static assets (``/static/*``: the
page's script and style, no data) needs it, the page and the schema included.
"""

from __future__ import annotations

import hmac
import json
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import MomentSearchError
from ..search.query_cache import QUERY_CACHE_SIZE
from .access_log import AccessLog
from .service import LOGGER, MAX_QUERIES, BadRequest, SearchOptions, SearchService

STATIC = Path(__file__).parent / "static"
MAX_BODY_BYTES = 1 << 20


class SearchBody(BaseModel):
    """``POST /api/search``: one sentence (``q``) or many (``queries``), and the options.

    Strict: ``"k": "5"`` or ``"k": true`` is refused, not converted (JSON has real numbers)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    q: str | None = None
    queries: list[str] | None = Field(default=None, max_length=MAX_QUERIES)
    k: int = 10
    video: list[str] = []
    nms: float = 0.5
    per_video: int | None = None
    rerank: str | None = None
    rerank_videos: int = 10
    profile: bool = False


GET_PARAMETERS = frozenset({"q", "k", "video", "nms", "per_video", "rerank", "rerank_videos",
                            "profile", "key"})


def error(status: int, parameter: str | None, message: str) -> JSONResponse:
    return JSONResponse({"error": message, "parameter": parameter}, status_code=status)


class BodyLimit:
    """ASGI middleware: refuse request bodies over ``limit`` bytes with 413 (the error shape),
    declared or chunked: the body is read here, up to the limit, then handed on."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await self._refuse(scope, receive, send)
        try:
            body = await self._read(receive)
        except BodyTooLarge:
            return await self._refuse(scope, receive, send)
        replayed = False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()  # e.g. http.disconnect
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await self.app(scope, replay, send)

    async def _read(self, receive) -> bytes:
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.limit:
                raise BodyTooLarge
            more = message.get("more_body", False)
        return b"".join(chunks)

    async def _refuse(self, scope, receive, send):
        response = error(413, "body", f"request body over {self.limit} bytes")
        await response(scope, receive, send)


class BodyTooLarge(Exception):
    pass


def key_checker(api_key: str | None):
    """A dependency that requires ``api_key`` (header X-API-Key, Bearer token or ?key=)."""
    def check(request: Request) -> None:
        if api_key is None:
            return
        given = (request.headers.get("x-api-key") or request.query_params.get("key")
                 or request.headers.get("authorization", "").removeprefix("Bearer ").strip())
        if not given or not hmac.compare_digest(given.encode(), api_key.encode()):
            raise Unauthorized
    return check


class Unauthorized(Exception):
    pass


def create_app(service: SearchService, api_key: str | None = None,
               max_body_bytes: int = MAX_BODY_BYTES) -> FastAPI:
    """The app over a (possibly still loading) service."""
    # /docs and /redoc would load their scripts from a CDN (blank offline): the schema is
    # served as JSON (/openapi.json, behind the key like the API)
    app = FastAPI(title="moment-search", summary="Search a video corpus for moments.",
                  docs_url=None, redoc_url=None, openapi_url=None)
    guard = [Depends(key_checker(api_key))]
    _error_handlers(app)
    _api_routes(app, service, guard)
    _schema_route(app, guard)
    _page_routes(app, guard)
    app.add_middleware(BodyLimit, limit=max_body_bytes)
    app.add_middleware(AccessLog)
    return app


def app_from_environment() -> FastAPI:
    """The app ``moment-search serve`` starts in each worker (settings in MOMENT_SEARCH_SERVE)."""
    import os

    settings = json.loads(os.environ["MOMENT_SEARCH_SERVE"])
    service = SearchService(settings["index"], device=settings["device"],
                            catalog_url=settings["catalog"], rerank=settings["rerank"],
                            max_batch=settings.get("max_batch", 32),
                            parallel=settings.get("parallel"), encoder=settings.get("encoder"),
                            query_cache=settings.get("query_cache", QUERY_CACHE_SIZE))
    return create_app(service, api_key=settings["api_key"])


def _error_handlers(app: FastAPI) -> None:
    @app.exception_handler(MomentSearchError)
    async def library_error(request, exc: MomentSearchError):  # BadRequest: 400
        return error(exc.status, exc.parameter, str(exc))

    @app.exception_handler(Exception)
    async def bug(request, exc: Exception):
        LOGGER.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return error(500, None, "internal error: the server failed to answer (see its log)")

    @app.exception_handler(Unauthorized)
    async def unauthorized(request, exc):
        return error(401, "key", "a valid API key is required (X-API-Key header or ?key=)")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, exc: StarletteHTTPException):  # 404, 405, unreadable bodies
        parameter = "body" if exc.status_code == 400 else None
        return error(exc.status_code, parameter, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def invalid(request, exc: RequestValidationError):
        first = exc.errors()[0]
        where = [str(p) for p in first.get("loc", ()) if p not in ("query", "body", "path")]
        name = ".".join(where) or "body"
        if first.get("type") == "json_invalid":
            return error(400, "body", f"malformed JSON body: {first.get('msg')}")
        return error(400, name, f"{name}: {first.get('msg')} (got {first.get('input')!r})")


def _api_routes(app: FastAPI, service: SearchService, guard) -> None:
    @app.get("/api/health")
    def health() -> dict:
        """Whether the index is loaded and ready to answer."""
        return service.health()

    @app.get("/api/search", dependencies=guard)
    async def search_get(request: Request,
                   q: Annotated[str, Query(description="The sentence to search for.")],
                   k: int = 10, video: Annotated[list[str] | None, Query()] = None,
                   nms: float = 0.5, per_video: int | None = None, rerank: str | None = None,
                   rerank_videos: int = 10, profile: bool = False) -> dict:
        """The top k moments for one sentence (scores: higher is better, within one query)."""
        unknown = sorted(set(request.query_params) - GET_PARAMETERS)
        if unknown:
            raise BadRequest(unknown[0], f"unknown parameter; expected one of "
                                         f"{', '.join(sorted(GET_PARAMETERS - {'key'}))}")
        options = SearchOptions(k, tuple(video or ()), nms, per_video, rerank, rerank_videos,
                                profile)
        # awaited, not a thread per waiting request; returned as is (no re-encoding pass)
        return JSONResponse((await service.search_async([q], options))[0])

    @app.post("/api/search", dependencies=guard)
    async def search_post(body: SearchBody) -> dict:
        """One sentence (``q``) or many (``queries``): ``{"results": [...]}`` in order."""
        if body.q is not None and body.queries is not None:
            raise BadRequest("q", "give either q (one sentence) or queries (a list), not both")
        if body.q is None and body.queries is None:
            raise BadRequest("q", "give q (one sentence) or queries (a list of sentences)")
        options = SearchOptions(body.k, tuple(body.video), body.nms, body.per_video,
                                body.rerank, body.rerank_videos, body.profile)
        texts = [body.q] if body.q is not None else body.queries
        return JSONResponse({"results": await service.search_async(texts, options)})

    @app.get("/api/index", dependencies=guard)
    def index() -> dict:
        """What ``index info`` prints."""
        return json.loads(json.dumps(service.index_info(), default=str))

    @app.get("/api/videos/{video_id}", dependencies=guard)
    def video(video_id: str):
        """A video's duration, proposals, feature source and status."""
        found = service.video(video_id)
        if found is None:
            return error(404, "video_id", f"unknown video {video_id!r}")
        return found

    @app.get("/api/videos/{video_id}/file", dependencies=guard)
    def video_file(video_id: str):
        """The raw video file the catalog records for this id (range requests supported)."""
        if service.video(video_id) is None:
            return error(404, "video_id", f"unknown video {video_id!r}")
        recorded = service.recorded_video_path(video_id)
        if recorded is None:
            return error(404, "video_id", f"no video file is recorded for {video_id!r}")
        if service.video_file(video_id) is None:
            return error(404, "video_id", f"the video file recorded for {video_id!r} is "
                                          f"missing on disk ({recorded})")
        return FileResponse(service.video_file(video_id))


def _schema_route(app: FastAPI, guard) -> None:
    @app.get("/openapi.json", dependencies=guard, include_in_schema=False)
    def schema() -> dict:
        """The OpenAPI schema of this API (JSON; no page that needs a CDN)."""
        return app.openapi()


def _page_routes(app: FastAPI, guard) -> None:
    @app.get("/", dependencies=guard, include_in_schema=False)
    def page():
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
