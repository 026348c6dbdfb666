"""The torch device, resolved once: ``auto`` | ``cpu`` | ``cuda[:N]``, falling back to CPU."""

from __future__ import annotations

import warnings

import torch

from .errors import InputError


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` -> cuda if available, else cpu; CUDA without CUDA falls back with a warning.

    Raises:
        ValueError: a string that names no torch device.
    """
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise InputError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}") from e
    if resolved.type == "cuda" and not torch.cuda.is_available():
        warnings.warn(f"device {device!r} requested but CUDA is unavailable; using cpu",
                      stacklevel=3)
        return torch.device("cpu")
    return resolved
