"""A frame encoder plug-in (``module:callable``) that returns one row too many: the encoder
check must stop the ingest, on Ray as in one process."""

from __future__ import annotations

import numpy as np


def encode(frames: list[np.ndarray]) -> np.ndarray:
    """(n + 1, 4) zeros for n frames: malformed on purpose."""
    return np.zeros((len(frames) + 1, 4), np.float32)
