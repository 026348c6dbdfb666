"""The CLI reference page, generated from the typer app (``cli/app.py``): every command's help,
usage and options, as click sees them. Written at ``mkdocs build`` by ``docs/gen_pages.py``."""

from __future__ import annotations

import typer

PROG = "moment-search"


# typer vendors its own click, so commands are told apart by what they have, not by class.


def option_rows(command, ctx) -> list[str]:
    """Markdown table rows, one per option or argument of ``command``."""
    rows = []
    for param in command.get_params(ctx):
        record = param.get_help_record(ctx)
        if record is None:
            continue
        kind = "argument" if param.param_type_name == "argument" else "option"
        rows.append(f"| `{escape(record[0])}` | {kind} | {escape(record[1])} |")
    return rows


def escape(text: str) -> str:
    """Help text made safe for one Markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")


def command_section(command, path: list[str], parent) -> list[str]:
    """The Markdown of one command and, for a group, of its subcommands (depth first)."""
    ctx = command.context_class(command, info_name=path[-1], parent=parent)
    title = " ".join(path)
    level = "#" * min(len(path) + 1, 4)
    lines = [f"{level} `{title}`", "", (command.help or "").strip(), ""]
    usage = " ".join(path + command.collect_usage_pieces(ctx))
    lines += ["```text", usage, "```", ""]
    rows = option_rows(command, ctx)
    if rows:
        lines += ["| name | kind | what |", "|---|---|---|", *rows, ""]
    if hasattr(command, "list_commands"):
        for name in command.list_commands(ctx):
            lines += command_section(command.get_command(ctx, name), path + [name], ctx)
    return lines


def cli_markdown() -> str:
    """The whole reference page."""
    from moment_search.cli.app import app

    root = typer.main.get_command(app)
    intro = [
        "# CLI reference",
        "",
        "Generated from the typer app (`cli/app.py`) at every docs build, so it lists what the "
        "installed code accepts. Every command also answers `--help`.",
        "",
    ]
    return "\n".join(intro + command_section(root, [PROG], None)) + "\n"
