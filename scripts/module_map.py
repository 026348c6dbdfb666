"""The module index of the docs (``modules.md``), generated from the source tree at ``mkdocs
build``: every package, the packages it imports, and every module with the first line of its
docstring. Read from the files (``ast``), nothing is imported."""

from __future__ import annotations

import ast
import graphlib
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# source folder -> the package name it installs as (pyproject's package-dir)
SOURCES = {"moment_search": "moment_search", "indexer": "moment_search.indexer",
           "cli": "moment_search.cli", "benchmarks": "moment_search.benchmarks"}


def modules() -> list[tuple[str, Path]]:
    """(dotted module name, file) for every module of the four source folders."""
    found = []
    for folder, package in SOURCES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = package.split(".") + list(path.relative_to(ROOT / folder).with_suffix("").parts)
            found.append((".".join(p for p in parts if p != "__init__"), path))
    return found


def unit(name: str) -> str | None:
    """The part of the package a dotted name is in: ``moment_search.search.x`` -> ``search``."""
    parts = name.split(".")
    return parts[1] if parts[0] == "moment_search" and len(parts) > 1 else None


def imported(name: str, path: Path, tree: ast.Module) -> set[str]:
    """The dotted names a module imports (relative imports resolved)."""
    # relative imports start from the module's package: a package's __init__ is the package
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            names |= {target} if node.module else {f"{target}.{a.name}" for a in node.names}
    return names


def first_line(tree: ast.Module) -> str:
    """The first paragraph of a module's docstring, on one line ("" if none)."""
    doc = (ast.get_docstring(tree) or "").strip()
    return " ".join(doc.split("\n\n")[0].split())


def order_sentence(deps: dict[str, set[str]]) -> str:
    """The packages in an order where each imports only those before it, or the cycles."""
    graph = {u: {d for d in ds if d in deps} for u, ds in deps.items()}
    try:
        order = list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as e:
        return f"The imports between packages have a cycle: {' -> '.join(e.args[1])}."
    return ("The imports between packages have no cycle; in this order each package imports only "
            "packages before it: " + ", ".join(f"`{u}`" for u in order) + ".")


def module_markdown() -> str:
    """The whole page."""
    deps, rows = defaultdict(set), defaultdict(list)
    for name, path in modules():
        tree = ast.parse(path.read_text())
        me = unit(name) or "moment_search (its __init__)"
        deps[me] |= {u for u in map(unit, imported(name, path, tree)) if u and u != me}
        folder = str(path.parent.relative_to(ROOT))
        rows[folder].append(f"| `{path.name}` | {first_line(tree).replace('|', '/')} |")
    lines = ["# Module index", "",
             "Generated from the source tree at every docs build: what each package imports from "
             "the others, and every module with the summary of its docstring. The hand-written "
             "map is on the [architecture](architecture.md) page.", "",
             "## Imports between packages", "", "| package | imports |", "|---|---|"]
    lines += [f"| `{u}` | {', '.join(f'`{d}`' for d in sorted(deps[u])) or '–'} |"
              for u in sorted(deps)]
    lines += ["", order_sentence(deps)]
    for folder in sorted(rows):
        lines += ["", f"## `{folder}/`", "", "| module | what |", "|---|---|", *rows[folder]]
    return "\n".join(lines) + "\n"
