"""Crash points for testing crash safety: the writers of the index call :func:`hit` at each step
where a kill -9 would leave a different state on disk.

With ``MOMENT_SEARCH_CRASH_AT=N`` in the environment the process kills itself with SIGKILL at the
N-th point it reaches (a real kill: no ``finally`` runs, no file is closed cleanly). With
``MOMENT_SEARCH_CRASH_TRACE=FILE`` every point reached is appended to FILE, so a test can learn
how many points an operation passes and kill it at each one in turn. Unset, :func:`hit` costs one
dictionary lookup.
"""

from __future__ import annotations

import os
import signal

CRASH_AT = "MOMENT_SEARCH_CRASH_AT"
CRASH_TRACE = "MOMENT_SEARCH_CRASH_TRACE"

_reached = 0


def hit(name: str) -> None:
    """Mark that the process reached crash point ``name`` (see the module doc)."""
    global _reached
    crash_at, trace = os.environ.get(CRASH_AT), os.environ.get(CRASH_TRACE)
    if not crash_at and not trace:
        return
    _reached += 1
    if trace:
        with open(trace, "a", encoding="utf-8") as handle:
            handle.write(f"{_reached}\t{name}\n")
    if crash_at and _reached == int(crash_at):
        os.kill(os.getpid(), signal.SIGKILL)
