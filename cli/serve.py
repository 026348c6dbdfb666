"""``moment-search serve``: the HTTP search API and the search page over a warm index."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from moment_search.search.query_cache import QUERY_CACHE_SIZE

from .common import DEFAULT_INDEX, RerankerName, err_console, name_of, user_errors

API_KEY_ENV = "MOMENT_SEARCH_API_KEY"
# uvicorn's own lines ("Uvicorn running on http://...") and the access log, plainly on stderr
LOG_CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(message)s", "datefmt": "%H:%M:%S"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain",
                            "stream": "ext://sys.stderr"}},
    "loggers": {name: {"handlers": ["stderr"], "level": "INFO", "propagate": False}
                for name in ("uvicorn", "uvicorn.error", "moment_search.serve")},
}


def serve(
    index: Path = typer.Option(DEFAULT_INDEX, help="Index directory."),
    host: str = typer.Option("127.0.0.1", help="Address to bind (default: this machine only)."),
    port: int = typer.Option(8000, min=1, max=65535, help="TCP port."),
    rerank: RerankerName = typer.Option(None, help="Load this reranker at start (requests "
                                        "pick it with rerank=NAME)."),
    api_key: str = typer.Option(None, envvar=API_KEY_ENV,
                                help=f"Require this key on every endpoint but /api/health and "
                                     f"/static (X-API-Key header or ?key=); also "
                                     f"${API_KEY_ENV}."),
    workers: int = typer.Option(1, min=1, help="Server processes (each holds the index)."),
    parallel: int = typer.Option(None, min=1, help="Worker threads answering queries at once "
                                 "in each process (default: one per CPU core)."),
    batch: int = typer.Option(32, min=1, help="Most waiting queries a worker thread answers in "
                                              "one encoder + FAISS call (1: one at a time)."),
    encoder: str = typer.Option(None, help="Query encoder: fp32 | int8 (the index's ONNX "
                                "graphs; default: its default one) | pytorch."),
    query_cache: int = typer.Option(QUERY_CACHE_SIZE, min=0, help="Sentences whose search "
                                    "vectors are kept (a repeated query skips the encoder; "
                                    "0: none)."),
    device: str = typer.Option("auto", help="auto | cpu | cuda:N for the models."),
    catalog: str = typer.Option(None, help="SQLAlchemy URL of the catalog."),
) -> None:
    """Serve the search API (/api/search, /openapi.json) and the search page (/) for an index.

    The index is opened before the server listens: a ready line says what was loaded, or the
    command stops with exit code 1 and why. Then one log line per request on stderr.
    """
    import uvicorn

    from moment_search.serve.app import create_app
    from moment_search.serve.service import SearchService

    rerank = name_of(rerank)
    with user_errors():
        if not (index / "catalog.sqlite").is_file() and catalog is None:
            raise FileNotFoundError(f"{index}: not an index directory (no catalog.sqlite)")
    if host not in ("127.0.0.1", "localhost", "::1") and not api_key:
        err_console.print(f"[yellow]warning:[/] serving on {host} without --api-key: anyone "
                          f"who can reach this port can search the index")
    if workers > 1:  # each process loads the index; this one holds none (milvus-lite: one)
        os.environ["MOMENT_SEARCH_SERVE"] = _settings(index, rerank, api_key, device, catalog,
                                                      batch, parallel, encoder, query_cache)
        typer.echo(f"starting {workers} server processes, each loading {index} (GET "
                   f"/api/health says when it is ready)", err=True)
        uvicorn.run("moment_search.serve.app:app_from_environment", factory=True,
                    workers=workers, host=host, port=port, log_config=LOG_CONFIG,
                    access_log=False)
        return
    service = SearchService(index, device=device, catalog_url=catalog, rerank=rerank,
                            max_batch=batch, parallel=parallel, encoder=encoder,
                            query_cache=query_cache)
    service.wait_ready()
    if service.error:
        err_console.print(f"[bold red]error:[/] cannot serve {index}: {service.error}",
                          highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    typer.echo(f"ready: {service.describe()}", err=True)  # one line, never wrapped
    uvicorn.run(create_app(service, api_key=api_key), host=host, port=port,
                log_config=LOG_CONFIG, access_log=False)


def _settings(index: Path, rerank, api_key, device, catalog, batch, parallel, encoder,
              query_cache) -> str:
    """The app settings, passed to each worker process through the environment."""
    import json

    return json.dumps({"index": str(index.resolve()), "rerank": rerank, "api_key": api_key,
                       "device": device, "catalog": catalog, "max_batch": batch,
                       "parallel": parallel, "encoder": encoder, "query_cache": query_cache})
