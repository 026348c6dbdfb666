"""The writer lock of an index directory: one writer at a time, readers never wait.

Every command that changes an index (build, add, remove, repair) holds an exclusive lock on
``INDEX_DIR/.writer.lock`` (an OS file lock through ``filelock``: the kernel releases it when the
holder dies, even by kill -9, so a lock can never go stale) and records itself in
``INDEX_DIR/.writer.json`` (pid, host, command, start time). A second writer waits up to ``wait``
seconds, then fails naming the holder. The record is removed when the writer ends (also by an
error); finding one when the lock is free means the previous writer died mid-change, which the
caller is told (``stale``). Queries take no lock: they read the published state the
catalog points at, which a writer replaces in one transaction.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from .. import failpoints
from ..atomic import atomic_write_text
from ..errors import BusyError, MomentSearchError

LOCK_FILE = ".writer.lock"
HOLDER_FILE = ".writer.json"


class IndexBusyError(BusyError, ValueError):
    """Another writer holds the index (names it)."""


class IndexReadOnlyError(MomentSearchError, PermissionError):
    """The index directory cannot be written (names it); nothing was changed."""


@dataclass(frozen=True)
class LockState:
    """What the lock found: ``stale`` is the record of a writer that died mid-change, or None."""

    stale: dict | None


def read_holder(index_dir: Path) -> dict | None:
    """The current (or last, if it died) writer's record, or None."""
    try:
        return json.loads((Path(index_dir) / HOLDER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def describe_holder(holder: dict | None) -> str:
    """``pid 123 on host h ('index add', since 2026-12-01 13:00:00 UTC)``."""
    if not holder:
        return "another process (no record of it)"
    since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(holder.get("started", 0)))
    return (f"pid {holder.get('pid')} on host {holder.get('host')} "
            f"({holder.get('command')!r}, since {since})")


def _read_only(index_dir: Path, error: OSError) -> IndexReadOnlyError:
    return IndexReadOnlyError(f"cannot change the index at {index_dir}: it is read-only "
                              f"({error.strerror or error}); nothing was changed")


def _acquire(lock: FileLock, index_dir: Path, wait: float) -> None:
    try:
        lock.acquire(timeout=wait)
    except Timeout:
        holder = describe_holder(read_holder(index_dir))
        raise IndexBusyError(f"the index at {index_dir} is being changed by {holder}; wait for "
                             f"it to finish (or pass --wait SECONDS)") from None
    except OSError as e:
        if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise _read_only(index_dir, e) from e
        raise


@contextmanager
def writer_lock(index_dir: str | Path, command: str, wait: float = 0.0) -> Iterator[LockState]:
    """Hold the index's writer lock for the block (see the module doc).

    Raises:
        IndexBusyError: another writer still holds it after ``wait`` seconds.
        IndexReadOnlyError: the directory is not writable.
    """
    index_dir = Path(index_dir)
    if not os.access(index_dir, os.W_OK):
        raise _read_only(index_dir, PermissionError(errno.EACCES, "no write permission"))
    lock = FileLock(index_dir / LOCK_FILE, thread_local=False)
    _acquire(lock, index_dir, wait)
    try:
        stale = read_holder(index_dir)
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "command": command,
                  "started": time.time()}
        atomic_write_text(index_dir / HOLDER_FILE, json.dumps(holder))
        failpoints.hit("locked")
        yield LockState(stale)
    finally:
        (index_dir / HOLDER_FILE).unlink(missing_ok=True)
        lock.release()
