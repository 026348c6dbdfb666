"""mkdocs-gen-files script: writes the CLI reference (cli.md) from the typer app at every
``mkdocs build``, so it always lists what the installed code accepts. Not checked in.

The results and history pages are checked in; ``scripts/gen_docs.py`` writes them from reports/.
"""

import sys
from pathlib import Path

import mkdocs_gen_files

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from cli_reference import cli_markdown  # noqa: E402

with mkdocs_gen_files.open("cli.md", "w") as f:
    f.write(cli_markdown())
