"""Atomic file writes: a temp file beside the target, fsynced, then renamed into place.

Whatever is interrupted, the target holds either its old content or the new one, never half of
it. Files get the permissions a plain ``open(path, "w")`` would give (0666 less the umask), not
the private 0600 of temporary files.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from . import failpoints


def _default_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


FILE_MODE = _default_mode()


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(temp_path)``, fsync it, then rename the temporary file onto ``path``.

    Raises:
        OSError: the directory is missing or not writable (no partial file is left).
    """
    target = Path(path)
    handle, temp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.",
                                         suffix=".tmp")
    os.close(handle)
    try:
        write(temp_name)
        with open(temp_name, "rb") as written:
            os.fsync(written.fileno())
        os.chmod(temp_name, FILE_MODE)
        failpoints.hit(f"written {target.name}")
        os.replace(temp_name, target)
    except OSError as e:
        Path(temp_name).unlink(missing_ok=True)
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise OSError(e.errno, f"no space left on the device while writing {target} "
                          f"({os.strerror(e.errno)}); the file was not changed and nothing "
                          f"written before was damaged: free some space and run again") from e
        raise
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    failpoints.hit(f"renamed {target.name}")
    return target


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda temp: Path(temp).write_text(text, encoding="utf-8"))


def backup_name(target: Path) -> Path:
    """Where :func:`replace_dir` moves an existing ``target`` aside while it swaps."""
    return target.with_name(f".{target.name}.old-{os.getpid()}")


def replace_dir(staging: Path, target: Path) -> None:
    """Move the folder ``staging`` to ``target``; an existing target is moved aside (see
    :func:`backup_name`), then deleted. A crash between the two renames leaves the old folder
    under its backup name, for a repair to put back."""
    backup = None
    if target.exists():
        backup = backup_name(target)
        target.rename(backup)
    staging.rename(target)
    if backup is not None:
        shutil.rmtree(backup)


@contextmanager
def staged_dir(target: Path) -> Iterator[Path]:
    """A new, empty folder beside ``target`` to fill: when the block ends without error it
    replaces ``target`` (:func:`replace_dir`, with a plain folder's permissions), on an error it
    is removed and ``target`` is left as it was."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield staging
        staging.chmod(0o755)  # mkdtemp makes it private
        replace_dir(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
