"""The ``moment-search`` command: one typer app with a sub-app per command group."""

from __future__ import annotations

import click
import typer

from . import data, evaluate, index, query, train

app = typer.Typer(
    help="Search a video corpus for moments that match a sentence.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(data.app, name="data")
app.add_typer(evaluate.app, name="evaluate")
app.add_typer(train.app, name="train")
app.add_typer(index.app, name="index")
app.command(name="query")(query.query)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI on ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    try:
        # Without standalone mode click returns the code of a typer.Exit instead of raising it.
        result = app(args=argv, prog_name="moment-search", standalone_mode=False)
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.exceptions.Abort:
        return 1
    except SystemExit as e:
        return int(e.code or 0)
    return result if isinstance(result, int) else 0
