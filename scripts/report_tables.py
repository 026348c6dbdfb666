"""Markdown tables from the report files, for the docs' results and history pages.

Every figure comes from a ``reports/**.json`` file named in ``scripts/reports.toml`` (which also
says whether a report is current or superseded, and the command that reproduces it).

``scripts/gen_docs.py`` writes them (and checks that the checked-in copies are fresh).
"""

from __future__ import annotations

import glob
import json
import re
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
REGISTRY = ROOT / "scripts" / "reports.toml"
DATA = "../shared/data/charades-sta-clip"


def load_registry() -> list[dict]:
    """The ``[[report]]`` entries of ``scripts/reports.toml``, in file order."""
    with open(REGISTRY, "rb") as f:
        return tomllib.load(f)["report"]


def load_report(path: str) -> dict:
    """One report's JSON document (``path`` relative to the repository root)."""
    with open(ROOT / path) as f:
        return json.load(f)


def fmt(value) -> str:
    """A cell: 3 significant digits below 100, whole numbers with thousands separators above."""
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value).lower()
    if value == 0:
        return "0"
    if isinstance(value, float) and abs(value) >= 1 and abs(value - round(value)) < 1e-6:
        value = int(round(value))  # a count or a whole percent, stored as 13.999999999
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:#.3g}".rstrip(".")
    if isinstance(value, dict):
        return ", ".join(f"{k} {fmt(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(fmt(v) for v in value)
    return str(value).replace("|", "\\|")


def fmt_sd(sd: float) -> str:
    """A standard deviation: one decimal from 1 up, two significant digits below."""
    return f"{sd:.1f}" if abs(sd) >= 1 else f"{sd:.2g}"


def lookup(doc, dotted: str):
    """``doc["a"]["b"]`` for ``"a.b"``; a key may itself hold dots (``"R1@0.5"``)."""
    if dotted == ".":
        return doc
    if isinstance(doc, dict) and dotted in doc:
        return doc[dotted]
    head, _, rest = dotted.partition(".")
    if not rest or not isinstance(doc, dict) or head not in doc:
        raise KeyError(dotted)
    return lookup(doc[head], rest)


def has(row: dict, key: str) -> bool:
    """Whether ``lookup(row, key)`` finds a value."""
    try:
        lookup(row, key)
    except KeyError:
        return False
    return True


def cell(row: dict, key: str) -> str:
    """A row's value (``–`` if it has none), as ``mean ± sd`` where it is a mean over seeds."""
    if not has(row, key):
        return "–"
    value = lookup(row, key)
    sd = row.get(f"{key} sd")
    if sd is not None and row.get("seeds", 1) > 1:
        return f"{fmt(value)} ± {fmt_sd(sd)}"
    return fmt(value)


def table_rows(doc: dict, spec: dict) -> list[dict]:
    """The rows a table spec selects: a list, or one dict, filtered by ``where``."""
    rows = lookup(doc, spec["rows"])
    rows = [rows] if isinstance(rows, dict) else rows
    where = spec.get("where", {})
    return [r for r in rows if all(r.get(k) == v for k, v in where.items())]


def markdown_table(rows: list[dict], columns: list[str] | None) -> str:
    """A Markdown table; ``columns`` are ``key`` or ``key=Label`` (default: every scalar key)."""
    if columns is None:
        scalar = [k for k, v in rows[0].items() if not isinstance(v, (dict, list))]
        columns = [k for k in scalar if k != "_file"]
    keys = [c.split("=", 1)[0] for c in columns]
    labels = [c.split("=", 1)[-1] for c in columns]
    missing = [k for k in keys if not any(has(r, k) for r in rows)]
    if missing:
        raise KeyError(f"no row has the column(s) {missing}")
    lines = ["| " + " | ".join(labels) + " |", "|" + "---|" * len(labels)]
    lines += ["| " + " | ".join(cell(r, k) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def report_files(entry: dict) -> list[str]:
    """The JSON files of one entry: its ``file``, or every file its ``glob`` matches."""
    if "glob" in entry:
        return sorted(str(Path(p).relative_to(ROOT)) for p in glob.glob(str(ROOT / entry["glob"])))
    return [entry["file"]]


def entry_tables(entry: dict) -> list[str]:
    """The Markdown tables of one entry (rows of a globbed entry are pooled, tagged ``_file``)."""
    docs = [(p, load_report(p)) for p in report_files(entry)]
    out = []
    for spec in entry["tables"]:
        rows = [dict(r, _file=Path(p).name) for p, doc in docs for r in table_rows(doc, spec)]
        title = f"*{spec['title']}*\n\n" if "title" in spec else ""
        try:
            out.append(title + markdown_table(rows, spec.get("columns")))
        except KeyError as e:
            raise KeyError(f"{entry['file']}, table {spec['rows']!r}: {e}") from e
    return out


def entry_command(entry: dict) -> str:
    """The command that reproduces an entry: the report's own ``command``, else the registry's."""
    doc = load_report(report_files(entry)[0])
    command = doc.get("command") or doc.get("config", {}).get("command")
    if isinstance(command, list):
        command = " ".join(command)
    return re.sub(r"(?<=\s)D(?=\s|$)", DATA, command or entry["command"], flags=re.MULTILINE)


def entry_markdown(entry: dict) -> str:
    """One report's block: title, what it measured, tables, what they show, report, command."""
    files = f"`{entry['glob']}`" if "glob" in entry else f"`{entry['file']}`"
    parts = [f"### {entry['title']}", entry["about"], *entry_tables(entry)]
    if "finding" in entry:
        parts.append(entry["finding"])
    parts += [f"Report: {files}. Reproduce:", f"```bash\n{entry_command(entry)}\n```"]
    if "image" in entry:
        parts.append(f"Plot: `{entry['image']}`.")
    return "\n\n".join(parts)


def page(name: str, intro: str) -> str:
    """The results or history page: every entry of that page, grouped by section."""
    parts, section = [intro], None
    for entry in load_registry():
        if entry["page"] != name:
            continue
        if entry["section"] != section:
            section = entry["section"]
            parts.append(f"## {section}")
        parts.append(entry_markdown(entry))
    return "\n\n".join(parts) + "\n"

