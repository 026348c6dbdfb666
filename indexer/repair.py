"""``index repair``: bring an index back to its last published state after a writer died.

It deletes the files an interrupted writer left and drops the videos an interrupted ``index add``
embedded but never published (see ``leftovers.py``), without adding anything, so the index is
exactly its last published state; then it checks that state's files against their checksums.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError
from .integrity import published_file_problems, require_index
from .leftovers import clean_leftovers, clean_milvus, drop_pending
from .lock import describe_holder, writer_lock


def repair_index(index_dir: str | Path, catalog_url: str | None = None, wait: float = 0.0
                 ) -> list[str]:
    """Bring an index back to its last published state (see the module doc); returns notes.

    Raises:
        ValueError: not a finished index (an interrupted build is continued with
            ``index build --resume``), or damage a repair cannot undo (a changed or missing
            published file: rebuild).
    """
    index_dir = Path(index_dir)
    catalog, _ = require_index(index_dir, catalog_url)
    notes = []
    with writer_lock(index_dir, "index repair", wait) as state:
        if state.stale:
            notes.append(f"the last writer, {describe_holder(state.stale)}, was interrupted")
        notes += [f"deleted {name}" for name in clean_leftovers(index_dir, catalog)]
        dropped = drop_pending(index_dir, catalog)
        notes += clean_milvus(index_dir, catalog)
        if dropped:
            notes.append(f"dropped {len(dropped)} pending video(s) of an interrupted add "
                         f"({', '.join(dropped[:5])}); add them again with 'index add'")
        damage = published_file_problems(index_dir, catalog, full=True)
    if damage:
        raise DataError("cannot repair: " + "; ".join(damage) + "; rebuild the index")
    return notes or ["nothing to repair: the index is its last published state"]
