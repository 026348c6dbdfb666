"""Shared CLI plumbing: one console; library errors become a clear message and exit code."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

# The index folder every command uses when --index is not given.
DEFAULT_INDEX = Path("moment-index")

console = Console()
err_console = Console(stderr=True)

# Errors that mean bad input (a file, value or id): shown as one line, exit code 2.
USER_ERRORS: tuple[type[Exception], ...] = (ValueError, KeyError, FileNotFoundError, OSError)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn a library error about bad input into ``error: ...`` on stderr and exit code 2."""
    try:
        yield
    except USER_ERRORS as e:
        message = e.args[0] if isinstance(e, KeyError) and e.args else e
        err_console.print(f"[bold red]error:[/] {message}", markup=True, highlight=False)
        raise typer.Exit(2) from e


def print_json(payload: object) -> None:
    """Print one JSON document on stdout (no colour, machine-readable)."""
    typer.echo(json.dumps(payload, indent=2, sort_keys=False))


def metric_table(title: str, rows: dict[str, float],
                 fmt: Callable[[float], str] | None = None) -> Table:
    """A two-column rich table of named numbers."""
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    fmt = fmt or (lambda v: f"{v:.2f}" if isinstance(v, float) else str(v))
    for name, value in rows.items():
        table.add_row(name, fmt(value))
    return table
