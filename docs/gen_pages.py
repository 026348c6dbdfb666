"""mkdocs-gen-files script: writes the generated pages into the site at every ``mkdocs build``.

cli.md from the typer app; results.md and history.md from ``reports/**.json`` as listed in
``scripts/reports.toml`` (with the plots they show). Nothing here is checked in.
"""

import sys
from pathlib import Path

import mkdocs_gen_files

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from cli_reference import cli_markdown  # noqa: E402
from report_tables import load_registry, page  # noqa: E402

RESULTS_INTRO = """# Results

Current figures only: each table is generated from the report file it names, with the command that
reproduces it (`D` in a command is `../shared/data/charades-sta-clip`, `runs/` any scratch folder).
Figures that newer reports superseded are on the [history](history.md) page.

Unless a table says otherwise: Charades-STA with CLIP ViT-B/32 features at 1 frame/s, the 453 val
sentences of the 150 val videos, percent. Each trained model's epoch was picked on that same val
split, which flatters it by about the split's noise (one query is 0.22 points); there is no third
split. Timings come from a shared 2-core CPU machine (AMD EPYC) with other jobs on the cores:
compare them as ratios within one table."""

HISTORY_INTRO = """# History

Figures measured with earlier models or code, kept as the record and not re-run. The
[results](results.md) page has the current ones. Each table is generated from the report file it
names (`D` in a command is `../shared/data/charades-sta-clip`)."""

with mkdocs_gen_files.open("cli.md", "w") as f:
    f.write(cli_markdown())
with mkdocs_gen_files.open("results.md", "w") as f:
    f.write(page("results", RESULTS_INTRO))
with mkdocs_gen_files.open("history.md", "w") as f:
    f.write(page("history", HISTORY_INTRO))
for entry in load_registry():
    if "image" in entry:
        with mkdocs_gen_files.open(entry["image"], "wb") as f:
            f.write((ROOT / entry["image"]).read_bytes())
