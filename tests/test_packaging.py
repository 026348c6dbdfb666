"""The wheel must hold every subpackage: pyproject lists packages by hand (package-dir mapping)."""

from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
MAPPED = {"moment_search": "moment_search", "indexer": "moment_search.indexer",
          "cli": "moment_search.cli", "benchmarks": "moment_search.benchmarks"}


def test_every_subpackage_is_listed():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())
                 ["tool"]["setuptools"]["packages"])
    found = set()
    for folder, name in MAPPED.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            parts = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((name, *parts)))
    assert found - listed == set(), "add these to [tool.setuptools] packages"


def test_readme_commands_are_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "<!-- tests -->" in readme and "<!-- main-job -->" in readme
    assert 'readme_block "<!-- tests -->"' in ci and 'readme_block "<!-- main-job -->"' in ci
    assert "pip install torch==2.13.0" in readme.split("<!-- tests -->")[1].split("```")[1]


def matches(parts: tuple[str, ...], pattern: str) -> bool:
    """A path's parts against a package-data glob, part by part (``*`` never crosses ``/``)."""
    from fnmatch import fnmatchcase

    globs = pattern.split("/")
    return len(globs) == len(parts) and all(map(fnmatchcase, parts, globs))


def test_every_shipped_file_is_package_data():
    """A non-editable install must carry every file of the shipped checkpoints (an ensemble's
    member folder too)."""
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"]["moment_search.pretrained"]
    pretrained = ROOT / "moment_search" / "pretrained"
    files = [p.relative_to(pretrained).parts for p in pretrained.rglob("*")
             if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".py"]
    assert files
    missing = ["/".join(f) for f in files if not any(matches(f, g) for g in patterns)]
    assert missing == []
