"""Shared CLI plumbing: one console; library errors become a clear message and exit code;
third-party chatter is silenced unless ``--verbose``."""

from __future__ import annotations

import json
import logging
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from moment_search.errors import InputError, MomentSearchError
from moment_search.registry import list_rerankers

# The index folder every command uses when --index is not given.
DEFAULT_INDEX = Path("moment-index")
# --rerank NAME: the registry's rerankers as typer choices (names only: no model is imported)
RerankerName = Enum("RerankerName", [(name, name) for name in list_rerankers()], type=str)


def name_of(choice: Enum | None) -> str | None:
    """The plain name of a typer choice (None stays None)."""
    return None if choice is None else choice.value

console = Console()
err_console = Console(stderr=True)

# Loggers of the libraries underneath (their INFO/WARNING lines are not the user's business).
THIRD_PARTY_LOGGERS = ("transformers", "sentence_transformers", "huggingface_hub", "torch",
                       "faiss", "filelock", "urllib3", "httpx")
# Read when transformers / huggingface_hub are imported (lazily, after the CLI starts): quiet
# logging and no progress bars of theirs ("Loading weights" on every query).
QUIET_ENVIRONMENT = {"TRANSFORMERS_VERBOSITY": "error", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
_environment_before: dict[str, str | None] = {}


def set_library_chatter(verbose: bool) -> None:
    """Silence (default) or let through the logs, progress bars and warnings of third-party
    libraries; this project's own messages, bars and warnings are not affected.

    Works whether or not the libraries are imported yet, and can be switched back in-process.
    """
    for name, quiet_value in QUIET_ENVIRONMENT.items():
        if verbose:
            if name in _environment_before:
                _restore_env(name, _environment_before.pop(name))
        else:
            _environment_before.setdefault(name, os.environ.get(name))
            os.environ[name] = quiet_value
    for name in THIRD_PARTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET if verbose else logging.ERROR)
    _set_imported_libraries(verbose)
    if verbose:
        warnings.simplefilter("default")
    else:
        warnings.filterwarnings("ignore")
        warnings.filterwarnings("default", module=r"moment_search(\.|$)")


def _restore_env(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def _set_imported_libraries(verbose: bool) -> None:
    """Apply the setting to transformers and huggingface_hub if they are imported already."""
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity(logging.WARNING if verbose else logging.ERROR)
        (hf_logging.enable_progress_bar if verbose else hf_logging.disable_progress_bar)()
    if "huggingface_hub" in sys.modules:
        from huggingface_hub import utils as hub_utils

        (hub_utils.enable_progress_bars if verbose else hub_utils.disable_progress_bars)()


# What the user can fix: the library's deliberate errors, and a path they gave that is missing,
# not theirs to read or write, or of the wrong kind. Shown as one line, exit code 2. Anything
# else is a bug: its traceback, exit code 1 (see ``app.main``).
USER_ERRORS: tuple[type[Exception], ...] = (
    MomentSearchError, FileNotFoundError, PermissionError, IsADirectoryError,
    NotADirectoryError, FileExistsError)


def report_user_error(error: Exception) -> None:
    """Print ``error: <message>`` on stderr (one line, no traceback)."""
    err_console.print(f"[bold red]error:[/] {escape(str(error))}", markup=True, highlight=False,
                      soft_wrap=True)  # one line whatever the console width


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn an error the user can fix (:data:`USER_ERRORS`) into ``error: ...`` on stderr and
    exit code 2; any other exception goes on (a bug: ``app.main`` prints its traceback)."""
    try:
        yield
    except USER_ERRORS as e:
        report_user_error(e)
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


class PhaseProgress:
    """Rich progress bars, one per phase of an index command, with totals, rates and ETA."""

    def __init__(self):
        self.bar = Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
                            MofNCompleteColumn(), TextColumn("{task.fields[unit]}"),
                            TimeElapsedColumn(), TimeRemainingColumn(), console=err_console,
                            transient=True)
        self.task = None

    def phase(self, name: str, total: int | None, unit: str) -> None:
        if self.task is not None:
            self.bar.update(self.task, completed=self.bar.tasks[-1].total or 0)
            self.bar.stop_task(self.task)
        self.task = self.bar.add_task(name, total=total, unit=unit)

    def advance(self, done: int) -> None:
        self.bar.update(self.task, advance=done)


def from_options(cls: type, **options):
    """``cls`` built from the options given: an option left at None keeps the dataclass's default
    (the one place a benchmark's defaults are written)."""
    return cls(**{name: value for name, value in options.items() if value is not None})


def split_items(text: str | None, kind: type = str) -> tuple | None:
    """A comma-separated option as a tuple of ``kind`` (None when not given).

    Raises:
        InputError: an item ``kind`` cannot read.
    """
    if text is None:
        return None
    try:
        return tuple(kind(item) for item in text.split(","))
    except ValueError as e:
        raise InputError(f"bad comma-separated list {text!r}: {e}") from e


def named_paths(values: list[str] | None, option: str) -> dict[str, tuple[Path, ...]]:
    """``NAME=DIR0,DIR1`` items of a repeatable option -> ``{name: (dir0, dir1)}``.

    Raises:
        InputError: an item without a name or a directory (names ``--option``).
    """
    out = {}
    for value in values or ():
        name, sep, paths = value.partition("=")
        if not sep or not name or not paths:
            raise InputError(f"--{option} expects NAME=DIR0,DIR1 (one checkpoint per fold), "
                             f"got {value!r}", parameter=option)
        out[name] = tuple(Path(p) for p in paths.split(","))
    return out
