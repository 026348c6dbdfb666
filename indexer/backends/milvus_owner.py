"""Milvus Lite serves one process: a second process opening the same database file fails deep
inside milvus-lite (``DataDirLockedError``, "Open local milvus failed"). Before opening a
milvus-lite database, a process takes an OS lock on ``DB.lock`` beside it and records itself in
``DB.owner.json`` (pid, host, command, start time). It keeps both until it exits, as milvus-lite
keeps its server (the kernel releases the lock when the process dies, even by kill -9, so a
leftover owner file is harmless). A second process then fails at once with one line naming the
owner and the ways out: stop it, or keep the vectors on a Milvus server, which serves many.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path

from ...atomic import atomic_write_text
from ...errors import BusyError
from ..lock import describe_holder

_HELD: dict[str, int] = {}  # database path -> descriptor of its lock, for this process


class MilvusLiteBusyError(BusyError, OSError):
    """Another process has the milvus-lite database open (names it and the ways out)."""


def owner_path(uri: str) -> Path:
    """``DB.owner.json`` beside a milvus-lite database ``DB``."""
    return Path(f"{uri}.owner.json")


def busy_message(uri: str, owner: dict | None) -> str:
    """One line: who holds the database, and what to do."""
    return (f"the milvus-lite database {uri} is open in {describe_holder(owner)}: Milvus Lite "
            f"serves one process at a time; stop that process (e.g. the 'moment-search serve' "
            f"holding this index) and run the command again, or keep the vectors on a Milvus "
            f"server for many processes ('index build --backend milvus --milvus-uri "
            f"http://HOST:19530')")


def read_owner(uri: str) -> dict | None:
    """The recorded owner of the database (the current one while its lock is held), or None."""
    try:
        return json.loads(owner_path(uri).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def claim(uri: str) -> None:
    """Make this process the database's owner until it exits (a no-op when it already is).

    Raises:
        MilvusLiteBusyError: another process owns it.
    """
    if uri in _HELD:
        return
    Path(uri).parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(f"{uri}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        raise MilvusLiteBusyError(busy_message(uri, read_owner(uri))) from None
    _HELD[uri] = descriptor
    command = " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])[:120] if sys.argv else "python"
    atomic_write_text(owner_path(uri), json.dumps({
        "pid": os.getpid(), "host": socket.gethostname(), "command": command,
        "started": time.time()}))
