"""``moment-search serve``: the HTTP search API and the search page over a warm index."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from .common import DEFAULT_INDEX, err_console, user_errors

API_KEY_ENV = "MOMENT_SEARCH_API_KEY"


def serve(
    index: Path = typer.Option(DEFAULT_INDEX, help="Index directory."),
    host: str = typer.Option("127.0.0.1", help="Address to bind (default: this machine only)."),
    port: int = typer.Option(8000, help="TCP port."),
    rerank: str = typer.Option(None, help="Load this reranker at start (requests pick it with "
                                          "rerank=NAME)."),
    api_key: str = typer.Option(None, envvar=API_KEY_ENV,
                                help=f"Require this key on every endpoint but /api/health "
                                     f"(X-API-Key header or ?key=); also ${API_KEY_ENV}."),
    workers: int = typer.Option(1, min=1, help="Server processes (each holds the index)."),
    batch: int = typer.Option(32, min=1, help="Most concurrent queries answered in one encoder "
                                              "+ FAISS call (1: one at a time)."),
    device: str = typer.Option("auto", help="auto | cpu | cuda:N for the models."),
    catalog: str = typer.Option(None, help="SQLAlchemy URL of the catalog."),
) -> None:
    """Serve the search API (/api/search, /docs) and the search page (/) for an index."""
    import uvicorn

    with user_errors():
        if not (index / "catalog.sqlite").is_file() and catalog is None:
            raise FileNotFoundError(f"{index}: not an index directory (no catalog.sqlite)")
    if host not in ("127.0.0.1", "localhost", "::1") and not api_key:
        err_console.print(f"[yellow]warning:[/] serving on {host} without --api-key: anyone "
                          f"who can reach this port can search the index")
    os.environ["MOMENT_SEARCH_SERVE"] = _settings(index, rerank, api_key, device, catalog, batch)
    uvicorn.run("moment_search.serve.app:app_from_environment", factory=True, host=host,
                port=port, workers=workers, log_level="warning")


def _settings(index: Path, rerank, api_key, device, catalog, batch) -> str:
    """The app settings, passed to each worker process through the environment."""
    import json

    return json.dumps({"index": str(index.resolve()), "rerank": rerank, "api_key": api_key,
                       "device": device, "catalog": catalog, "max_batch": batch})
