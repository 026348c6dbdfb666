"""One access-log line per request: client, method, path (the API key redacted), status, time.

    127.0.0.1 GET /api/search?q=person+opens+a+cabinet&k=5 200 3.1 ms

Lines go to the ``moment_search.serve`` logger (``moment-search serve`` prints them on stderr).
"""

from __future__ import annotations

import logging
import time
from urllib.parse import parse_qsl, urlencode

LOGGER = logging.getLogger("moment_search.serve")


def redacted(query: str) -> str:
    """A query string with the value of every ``key`` parameter replaced, however its name is
    written (``%6Bey`` is ``key`` to the server too): keys never reach a log."""
    pairs = parse_qsl(query, keep_blank_values=True)
    return urlencode([(name, "***" if name == "key" else value) for name, value in pairs],
                     safe="*")


class AccessLog:
    """ASGI middleware writing one line per HTTP request when the response has been sent."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), 500

        async def sending(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)
        try:
            await self.app(scope, receive, sending)
        finally:
            self._write(scope, status, 1000 * (time.perf_counter() - start))

    @staticmethod
    def _write(scope, status: int, milliseconds: float) -> None:
        query = scope.get("query_string", b"").decode("latin-1")
        path = scope.get("path", "") + (f"?{redacted(query)}" if query else "")
        client = (scope.get("client") or ("-", 0))[0]
        LOGGER.info("%s %s %s %d %.1f ms", client, scope.get("method", "-"), path, status,
                    milliseconds)
