"""How the indexer reports progress: named phases, each with a total (or None when unknown)."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    """Receives the phases of a long command (the CLI draws them as progress bars)."""

    def phase(self, name: str, total: int | None, unit: str) -> None:
        """A new phase starts: ``total`` units to do (None: unknown, e.g. FAISS training)."""

    def advance(self, done: int) -> None:
        """``done`` more units of the current phase are finished."""


class Silent:
    """Progress that reports nothing (the library default)."""

    def phase(self, name: str, total: int | None, unit: str) -> None:
        pass

    def advance(self, done: int) -> None:
        pass
