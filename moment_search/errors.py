"""One base for the errors this library raises on purpose, kept apart from bugs.

A :class:`MomentSearchError` is a problem the user can fix: a bad argument, a file or index whose
content is wrong, an index another process holds, a server not ready. Its message names the bad
value and what was expected. The CLI prints it as one line and exits 2; the server answers it
with its ``status`` and ``parameter``. Any other exception is a bug: a traceback and exit 1 in the
CLI, HTTP 500 in the server.

The subclasses also subclass the builtin a caller caught before this base existed (ValueError,
RuntimeError), so ``except ValueError`` around library calls keeps working.
"""

from __future__ import annotations


class MomentSearchError(Exception):
    """Base of the library's deliberate errors.

    Attributes:
        parameter: the argument, option or request field the error is about, or None.
        status: the HTTP status the server answers it with.
    """

    status = 400

    def __init__(self, message: str, *, parameter: str | None = None):
        super().__init__(message)
        self.parameter = parameter

    def __str__(self) -> str:
        # the message as given, also for a subclass of KeyError (whose str quotes it)
        return str(self.args[0]) if self.args else ""


class InputError(MomentSearchError, ValueError):
    """A bad argument, option or request value (HTTP 400)."""

    status = 400


class UnknownNameError(InputError):
    """A name that is not registered (a model, reranker, encoder); lists the known ones."""


class DataError(MomentSearchError, ValueError):
    """A file, corpus, checkpoint or index whose content is wrong or incomplete. In the server
    it is the index's, not the client's: HTTP 503."""

    status = 503


class BusyError(MomentSearchError):
    """A resource another process holds (an index being written): try again later (HTTP 503)."""

    status = 503


class UnavailableError(MomentSearchError, RuntimeError):
    """The service cannot answer now: the index is loading, failed to open, or overloaded
    (HTTP 503)."""

    status = 503
