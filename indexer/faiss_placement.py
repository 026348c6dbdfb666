"""Where FAISS runs: the device resolved once (``auto | cpu | cuda[:N]``) and the copies of an
index to and from a GPU.

HNSW and the refined IVF-PQ have no GPU version and stay on the CPU; a GPU asked for but missing
falls back to the CPU with one warning.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from ..errors import InputError
from .faiss_core import _is_gpu, _is_refine, _unwrap, import_faiss, index_kind

logger = logging.getLogger("moment_search")

_GPU_RESOURCES: dict[int, Any] = {}


@dataclass(frozen=True)
class Placement:
    """Where FAISS runs.

    Attributes:
        device: "cpu" or "cuda".
        gpu_id: the CUDA device number when ``device == "cuda"``, else None.
        reason: why (printed / logged once).
    """

    device: str
    gpu_id: int | None = None
    reason: str = ""


def _gpu_count(faiss) -> int:
    if not hasattr(faiss, "StandardGpuResources"):
        return 0
    return int(faiss.get_num_gpus())


def resolve_placement(device: str = "auto") -> Placement:
    """Resolve ``"auto" | "cpu" | "cuda" | "cuda:N"`` once, logging one line when on the CPU.

    The GPU is used only when asked for (or auto) and the FAISS build has GPU support with a
    visible device; otherwise the CPU, with a warning when a GPU was asked for explicitly.

    Raises:
        ValueError: an unrecognised device string.
    """
    match = re.fullmatch(r"(auto|cpu|cuda)(?::(\d+))?", str(device).strip().lower())
    if match is None or (match.group(2) is not None and match.group(1) != "cuda"):
        raise InputError(f"bad device {device!r}; expected 'auto', 'cpu' or 'cuda:N'")
    wanted, number = match.group(1), int(match.group(2) or 0)
    if wanted == "cpu":
        return Placement("cpu", None, "FAISS on the CPU as requested")
    count = _gpu_count(import_faiss())
    if count > number:
        return Placement("cuda", number, f"FAISS on GPU {number} of {count}")
    why = (f"FAISS sees {count} GPU(s), so cuda:{number} is not available"
           if hasattr(import_faiss(), "StandardGpuResources")
           else "this FAISS build has no GPU support (pip install faiss-gpu-cu12)")
    placement = Placement("cpu", None, f"FAISS on the CPU: {why}")
    (logger.warning if wanted == "cuda" else logger.info)(placement.reason)
    return placement


def _gpu_resources(faiss, gpu_id: int):
    """One StandardGpuResources per device, kept for the process lifetime."""
    if gpu_id not in _GPU_RESOURCES:
        _GPU_RESOURCES[gpu_id] = faiss.StandardGpuResources()
    return _GPU_RESOURCES[gpu_id]


def to_device(index, placement: Placement):
    """The index on ``placement``: copied to the GPU for flat / IVF / plain IVF-PQ.

    HNSW and the refined IVF-PQ have no GPU version and stay on the CPU (one log line).
    """
    if placement.device != "cuda":
        return to_cpu(index)
    _, core = _unwrap(index)
    if index_kind(index) == "hnsw" or _is_refine(core):
        logger.info("FAISS %s index stays on the CPU (no GPU version)", type(core).__name__)
        return index
    if _is_gpu(index):
        return index
    faiss = import_faiss()
    options = faiss.GpuClonerOptions()
    if index_kind(index) == "ivfpq":
        # Lookup tables of m x 256 float32 must fit 48 KiB of shared memory; else use float16.
        pq = faiss.downcast_index(faiss.extract_index_ivf(index)).pq
        options.useFloat16 = pq.M * pq.ksub * 4 > 48 * 1024
    return faiss.index_cpu_to_gpu(_gpu_resources(faiss, placement.gpu_id), placement.gpu_id,
                                  index, options)


def to_cpu(index):
    """A CPU copy of a GPU index; a CPU index is returned as is."""
    if not _is_gpu(index):
        return index
    return import_faiss().index_gpu_to_cpu(index)
