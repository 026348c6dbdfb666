"""The checks of a search request, written once: the searcher runs them on every call, the server
(with its own caps on top) and the CLI call them at their edge to name the parameter early.

Each raises :class:`~moment_search.errors.InputError` naming the parameter and what was expected.
"""

from __future__ import annotations

import math
from numbers import Integral, Real

from ..errors import InputError


def check_sentence(text, parameter: str = "q", max_chars: int | None = None,
                   label: str | None = None) -> str:
    """A non-empty sentence (of at most ``max_chars`` characters), stripped; ``label`` names it
    in the message (default: the parameter).

    Raises:
        InputError: not a string, blank, or too long.
    """
    if not isinstance(text, str) or not text.strip():
        raise InputError(f"{label or parameter} is empty; expected a sentence",
                         parameter=parameter)
    if max_chars is not None and len(text) > max_chars:
        raise InputError(f"{parameter}: expected at most {max_chars} characters, got {len(text)}",
                         parameter=parameter)
    return text.strip()


def check_count(name: str, value, high: int | None = None) -> int:
    """An integer from 1 (to ``high``): k, per_video, rerank_videos.

    Raises:
        InputError: below 1 or above ``high`` (names ``name``).
    """
    if high is not None and not (isinstance(value, Integral) and 1 <= value <= high):
        raise InputError(f"{name}: expected an integer from 1 to {high}, got {value!r}",
                         parameter=name)
    if not isinstance(value, Integral) or value < 1:
        raise InputError(f"{name} must be positive, got {value}", parameter=name)
    return int(value)


def check_nms(nms) -> float:
    """A temporal NMS IoU threshold in (0, 1] (1 keeps every moment).

    Raises:
        InputError: outside (0, 1], or NaN.
    """
    if not isinstance(nms, Real) or math.isnan(nms) or not 0.0 < nms <= 1.0:
        raise InputError(f"nms must be an IoU threshold in (0, 1] (1 keeps every moment), "
                         f"got {nms}", parameter="nms")
    return float(nms)
