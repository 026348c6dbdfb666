"""The shared benchmark report writer: machine info, JSON, Markdown tables and PNG, all atomic.

Every benchmark records where and how it ran (CPU model, cores, threads, library versions) next
to its numbers, and writes ``<name>.json`` + ``<name>.md`` (+ plots) through temporary files
renamed into place, so an interrupted run never leaves a half-written report.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from ..atomic import atomic_write

__all__ = [
    "atomic_write",
    "machine_info",
    "machine_markdown",
    "markdown_table",
    "package_version",
    "progress",
    "save_figure",
    "write_json",
    "write_markdown",
]

# Distribution names tried per library, first installed wins (FAISS ships under several names).
_DISTRIBUTIONS = {
    "python": (),
    "numpy": ("numpy",),
    "faiss": ("faiss-cpu", "faiss-gpu-cu12", "faiss-gpu", "faiss"),
    "torch": ("torch",),
    "matplotlib": ("matplotlib",),
    "pymilvus": ("pymilvus",),  # the Milvus client, where installed
    "milvus-lite": ("milvus-lite",),  # the embedded Milvus, where installed
}


def package_version(*distributions: str) -> str | None:
    """The installed version of the first of ``distributions`` found, without importing it."""
    for name in distributions:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def _cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (Linux), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _faiss_threads() -> int | None:
    """FAISS's OpenMP thread count, or None when FAISS is not installed."""
    try:
        import faiss
    except ImportError:
        return None
    return int(faiss.omp_get_max_threads())


def _torch_threads() -> int | None:
    """torch's intra-op threads, or None when this run never imported torch."""
    torch = sys.modules.get("torch")
    return None if torch is None else int(torch.get_num_threads())


def machine_info() -> dict[str, Any]:
    """Hardware, threads and versions to store beside every measurement.

    Returns:
        dict with ``cpu_model``, ``logical_cores`` (os.cpu_count), ``usable_cores`` (this
        process's CPU affinity), ``faiss_threads`` (OpenMP threads FAISS uses),
        ``omp_num_threads`` (the environment variable, if set), ``platform``, ``versions``
        (python, numpy, faiss, torch, matplotlib, pymilvus, milvus-lite; None when absent),
        ``load_average_1m`` (other work competing for the cores) and ``timestamp`` (UTC)."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    versions = {lib: package_version(*names) for lib, names in _DISTRIBUTIONS.items()}
    versions["python"] = platform.python_version()
    return {
        "cpu_model": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": usable,
        "faiss_threads": _faiss_threads(),
        "torch_threads": _torch_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "load_average_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "versions": versions,
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def mean_and_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value) of one metric over runs."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def progress(message: str) -> None:
    """One progress line on stderr (the report itself goes to files and stdout)."""
    stamp = datetime.now().strftime("%H:%M:%S")
    print(f"[{stamp}] {message}", file=sys.stderr, flush=True)


def _write_text(temp_name: str, text: str) -> None:
    with open(temp_name, "w", encoding="utf-8") as stream:
        stream.write(text)
        stream.flush()
        os.fsync(stream.fileno())


def _jsonable(value: Any) -> Any:
    """numpy scalars/arrays and paths to plain JSON; NaN / inf to None (strict JSON)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist"):
        return _jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, os.PathLike):
        return str(value)
    return value


def write_json(path: str | os.PathLike, data: Mapping[str, Any]) -> Path:
    """Write ``data`` as indented, strict JSON (numpy values converted), atomically."""
    text = json.dumps(_jsonable(data), indent=2, allow_nan=False) + "\n"
    return atomic_write(path, lambda temp: _write_text(temp, text))


def write_markdown(path: str | os.PathLike, text: str) -> Path:
    """Write Markdown ``text`` atomically (a trailing newline is ensured)."""
    return atomic_write(path, lambda temp: _write_text(temp, text.rstrip("\n") + "\n"))


def write_report(out: str | os.PathLike, stem: str, data: Mapping[str, Any], text: str) -> None:
    """``out/<stem>.json`` and ``out/<stem>.md`` (``out`` is created), each written atomically."""
    Path(out).mkdir(parents=True, exist_ok=True)
    write_json(Path(out) / f"{stem}.json", data)
    write_markdown(Path(out) / f"{stem}.md", text)


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "–"
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value).replace("|", "\\|")


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str],
                   headers: Sequence[str] | None = None) -> str:
    """A GitHub Markdown table of ``rows`` (dicts) over ``columns`` (missing keys show "–").

    Floats get 3 significant digits (thousands separators from 1000 up); ints get separators.
    """
    headers = list(headers or columns)
    if len(headers) != len(columns):
        raise ValueError(f"{len(headers)} headers for {len(columns)} columns")
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def machine_markdown(info: Mapping[str, Any]) -> str:
    """A one-paragraph Markdown description of :func:`machine_info`."""
    versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items() if v)
    load = info.get("load_average_1m")
    load_text = "unknown" if load is None else f"{load:.2f}"
    return (f"Machine: {info['cpu_model']}, {info['usable_cores']} usable of "
            f"{info['logical_cores']} logical cores, FAISS threads {info['faiss_threads']}, "
            f"torch threads {info.get('torch_threads')}, "
            f"1-min load average {load_text} (other jobs on the cores); "
            f"{info['platform']}; {versions}; run at {info['timestamp']}.")


def save_figure(figure, path: str | os.PathLike, dpi: int = 120) -> Path:
    """Save a matplotlib figure as PNG atomically."""
    return atomic_write(path, lambda temp: figure.savefig(temp, format="png", dpi=dpi,
                                                          bbox_inches="tight"))
