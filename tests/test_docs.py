"""The README and the docs site: CI's two commands, generated figures that match reports/, every
report classified, the architecture map true to the tree, and ``mkdocs build --strict``."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"
sys.path.insert(0, str(SCRIPTS))

import gen_docs  # noqa: E402
from report_tables import entry_command, load_registry, report_files  # noqa: E402

README = (ROOT / "README.md").read_text()


def readme_block(marker: str) -> str:
    """The first ```bash block after ``marker``, as .ci/run extracts it."""
    after = README.split(f"\n{marker}\n", 1)[1]
    return re.search(r"^```bash\n(.*?)\n```", after, re.S | re.M).group(1)


def test_readme_is_short_and_keeps_ci_commands_at_the_top():
    assert len(README.splitlines()) <= 250
    tests, main = readme_block("<!-- tests -->"), readme_block("<!-- main-job -->")
    assert "pip install -e '.[dev]'" in tests and "pytest" in tests
    assert "moment-search index build" in main and "moment-search query" in main
    assert README.index("<!-- main-job -->") < README.index("## Status")


def test_generated_docs_match_the_reports():
    """README's status table, docs/results.md and docs/history.md are what reports/ give."""
    assert gen_docs.main(["--check"]) == 0, "run: python scripts/gen_docs.py"


def test_every_report_is_current_or_history():
    classified = {f for entry in load_registry() for f in report_files(entry)}
    reports = {str(p.relative_to(ROOT)) for p in (ROOT / "reports").rglob("*.json")}
    assert reports - classified == set(), "add these reports to scripts/reports.toml"
    assert classified - reports == set()
    assert {entry["page"] for entry in load_registry()} == {"results", "history"}


def test_every_report_names_a_command():
    for entry in load_registry():
        assert entry_command(entry).strip(), entry["file"]


def map_paths() -> set[str]:
    """The paths the architecture page's module map names in its first column."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    rows = re.findall(r"^\| `([^`]+)`( \(`([^`]+)`\))? \|", text, re.M)
    return {source or name for name, _, source in rows}


def test_architecture_map_is_true_to_the_tree():
    listed = map_paths()
    for path in listed:
        assert (ROOT / path).exists(), f"docs/architecture.md lists {path}, which does not exist"
    packages = {str(p.parent.relative_to(ROOT)) + "/" for folder in ("moment_search", "indexer",
                "cli", "benchmarks") for p in (ROOT / folder).rglob("__init__.py")}
    packages -= {"moment_search/"}
    unlisted = sorted(packages - listed)
    assert not unlisted, f"docs/architecture.md does not list the packages {unlisted}"


def test_evaluator_script_is_valid_bash():
    subprocess.run(["bash", "-n", str(SCRIPTS / "check_with_official_evaluators.sh")], check=True)


@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None
                    or importlib.util.find_spec("mkdocs_gen_files") is None,
                    reason="mkdocs / mkdocs-gen-files not installed (pip install -e '.[dev]')")
def test_mkdocs_build_strict(tmp_path):
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1", DISABLE_MKDOCS_2_WARNING="true")
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                             str(tmp_path / "site")], cwd=ROOT, env=env, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout + result.stderr
