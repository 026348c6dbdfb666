"""The ``moment-search`` command: one typer app with a sub-app per command group."""

from __future__ import annotations

import logging
import os
import sys
import traceback

import typer

from . import benchmark, data, evaluate, index, ingest, query, serve, train
from .common import USER_ERRORS, report_user_error, set_library_chatter

app = typer.Typer(
    help="Search a video corpus for moments that match a sentence.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def global_options(
    verbose: bool = typer.Option(
        False, "--verbose", "-v",
        help="Show the logs, progress bars and warnings of the libraries underneath "
             "(transformers, huggingface_hub, torch, ...); they are silenced by default."),
) -> None:
    """Search a video corpus for moments that match a sentence."""
    set_library_chatter(verbose)


app.add_typer(data.app, name="data")
app.add_typer(evaluate.app, name="evaluate")
app.add_typer(train.app, name="train")
app.add_typer(index.app, name="index")
app.add_typer(benchmark.app, name="benchmark")
app.command(name="query")(query.query)
app.command(name="serve")(serve.serve)
app.command(name="ingest")(ingest.ingest)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI on ``argv`` (default: ``sys.argv[1:]``); returns the exit code.

    Standalone mode lets typer print usage errors and help itself; it always ends in SystemExit.
    An error the user can fix (``common.USER_ERRORS``) that no command caught is one line and
    exit code 2; any other exception is a bug: its traceback on stderr and exit code 1.
    """
    try:
        app(args=argv, prog_name="moment-search")
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except USER_ERRORS as e:
        report_user_error(e)
        return 2
    except Exception:  # noqa: BLE001 - a bug: the traceback is the report
        traceback.print_exc()
        return 1
    return 0


# Commands that only read: the console script ends them without the interpreter's teardown.
READ_ONLY_COMMANDS = ("query",)


def entry() -> None:
    """The ``moment-search`` console script: run the command, then exit with its code.

    A read-only command (``query``) flushes its output and leaves with ``os._exit``: freeing the
    FAISS index and the encoder session at interpreter teardown costs ~0.2 s of every cold
    query (measured), and such a command has nothing left to write.
    """
    argv = sys.argv[1:]
    code = main(argv)
    if argv[:1] and argv[0] in READ_ONLY_COMMANDS:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
