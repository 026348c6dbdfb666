"""mkdocs-gen-files script: writes the pages generated from the code at every ``mkdocs build``,
so they always describe the installed code. Not checked in.

- ``cli.md``: the CLI reference, from the typer app;
- ``modules.md``: the module index (imports between packages, every module's summary).

The results and history pages are checked in; ``scripts/gen_docs.py`` writes them from reports/.
"""

import sys
from pathlib import Path

import mkdocs_gen_files

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from cli_reference import cli_markdown  # noqa: E402
from module_map import module_markdown  # noqa: E402

with mkdocs_gen_files.open("cli.md", "w") as f:
    f.write(cli_markdown())
with mkdocs_gen_files.open("modules.md", "w") as f:
    f.write(module_markdown())
