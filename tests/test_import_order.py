"""Imports point one way: a package imports only the packages listed before it in
``moment_search``'s docstring, so no import cycle between packages can come back."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import moment_search

ROOT = Path(__file__).resolve().parents[1]
# top-level folders and the package each is installed as (pyproject's package-dir)
FOLDERS = {"moment_search": "moment_search", "indexer": "moment_search.indexer",
           "cli": "moment_search.cli", "benchmarks": "moment_search.benchmarks"}


def layer_order() -> list[str]:
    """The packages in the order of the docstring's list (a line of 4 spaces, then names)."""
    lines = re.findall(r"^    ([a-z_]+(?:, [a-z_]+)*)", moment_search.__doc__, re.MULTILINE)
    return [name for line in lines for name in line.split(", ")]


def module_name(path: Path) -> str:
    """``indexer/build.py`` -> ``moment_search.indexer.build`` (a package: its folder's name)."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    parts[0] = FOLDERS[parts[0]]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(module: str) -> str | None:
    """The layer a module belongs to: the name under ``moment_search`` (None: the root)."""
    parts = module.split(".")
    return parts[1] if parts[0] == "moment_search" and len(parts) > 1 else None


def imported_modules(path: Path) -> list[str]:
    """Every module ``path`` imports, relative imports resolved, ``from X import Y`` as X.Y."""
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found += [f"{base}.{alias.name}" for alias in node.names]
    return found


def test_every_package_is_in_the_documented_order():
    order = layer_order()
    packages = {package_of(module_name(p)) for folder in FOLDERS for p in (ROOT / folder).rglob(
        "*.py")} - {None}
    assert packages <= set(order), f"add {sorted(packages - set(order))} to the docstring's list"


def test_imports_point_down_the_documented_order():
    rank = {name: i for i, name in enumerate(layer_order())}
    upward = []
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            source = package_of(module_name(path))
            for target in map(package_of, imported_modules(path)):
                if source and target in rank and target != source and rank[target] > rank[source]:
                    upward.append(f"{path.relative_to(ROOT)} ({source}) imports {target}")
    assert not upward, "imports against the order of moment_search's docstring:\n" + "\n".join(
        upward)
