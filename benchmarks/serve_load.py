"""Load test of ``moment-search serve``: concurrent clients with real val sentences.

A server process is started on a free loopback port for each setting (batching on / off); for
each client count, that many threads send ``GET /api/search`` with the next val sentence for
``--duration`` seconds (bounded in count and time, loopback only), then: queries per second,
p50 / p95 / p99 latency, errors. Optionally the same with ``rerank=NAME``.

    moment-search benchmark serve --index moment-index --data CORPUS \\
        --clients 1,4,16 --duration 30 --rerank pln --out reports/serve
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from .report import (
    machine_info,
    machine_markdown,
    markdown_table,
    progress,
    save_figure,
    write_report,
)

MAX_CLIENTS = 64
MAX_DURATION_S = 300.0


@dataclass
class ServeLoadConfig:
    """One run; ``moment-search benchmark serve`` builds it from its options."""

    index: Path  # the index served
    data: Path  # corpus whose sentences the clients send
    out: Path  # report directory (serve.json, serve.md, plot)
    clients: tuple[int, ...] = (1, 4, 16)  # concurrent client counts (at most MAX_CLIENTS)
    duration: float = 30.0  # seconds per point (at most MAX_DURATION_S)
    batches: tuple[int, ...] = (32, 1)  # server --batch values compared
    rerank: str | None = None  # also run every point with this reranker
    split: str = "val"  # the split whose sentences are sent

    def command(self) -> str:
        """The ``moment-search benchmark serve`` command line of this run."""
        options = ["--index", self.index, "--data", self.data, "--out", self.out, "--clients",
                   ",".join(map(str, self.clients)), "--duration", self.duration, "--batches",
                   ",".join(map(str, self.batches)), "--split", self.split]
        options += ["--rerank", self.rerank] if self.rerank else []
        return "moment-search benchmark serve " + " ".join(map(str, options))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(index: Path, batch: int, rerank: str | None, port: int,
                 extra: tuple[str, ...] = ()) -> subprocess.Popen:
    """``moment-search serve`` in a child process (``extra``: more options), once
    /api/health says ready."""
    import httpx

    script = Path(sys.executable).parent / "moment-search"  # the installed entry point
    command = [str(script), "serve", "--index", str(index),
               "--port", str(port), "--batch", str(batch), "--device", "cpu"]
    command += ["--rerank", rerank] if rerank else []
    command += list(extra)
    # its log (a line per request) goes to a file: an undrained pipe would fill and block it
    log = tempfile.TemporaryFile()
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log)
    server.log = log
    deadline = time.time() + 600
    while time.time() < deadline:
        if server.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"the server exited: {log.read().decode()[-2000:]}")
        try:
            status = httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).json()
            if status["status"] == "ready":
                return server
            if status["status"] == "failed":
                raise RuntimeError(status["error"])
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    server.kill()
    raise RuntimeError("the server did not become ready in 600 s")


def client_loop(url: str, sentences: list[str], offset: int, params: dict, stop: float,
                out: list) -> None:
    import httpx

    with httpx.Client(timeout=120) as http:
        i = offset
        while time.time() < stop:
            start = time.perf_counter()
            try:
                ok = http.get(url, params={**params, "q": sentences[i % len(sentences)]}
                              ).status_code == 200
            except httpx.HTTPError:
                ok = False
            out.append((1000 * (time.perf_counter() - start), ok))
            i += 1


def load(port: int, sentences: list[str], clients: int, duration: float, params: dict) -> dict:
    """Run ``clients`` threads for ``duration`` seconds; returns the measured row."""
    url = f"http://127.0.0.1:{port}/api/search"
    results: list[list] = [[] for _ in range(clients)]
    stop = time.time() + duration
    threads = [threading.Thread(target=client_loop, args=(url, sentences, 97 * c, params, stop,
                                                          results[c])) for c in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - start
    latency = np.array([ms for part in results for ms, _ in part])
    errors = sum(not ok for part in results for _, ok in part)
    return {"clients": clients, "requests": int(len(latency)), "errors": int(errors),
            "qps": len(latency) / seconds, "p50_ms": float(np.percentile(latency, 50)),
            "p95_ms": float(np.percentile(latency, 95)),
            "p99_ms": float(np.percentile(latency, 99))}


def val_sentences(data: Path, split: str) -> list[str]:
    from ..data.corpus_dir import open_corpus

    corpus, _ = open_corpus(data, split=split)
    return [q.text for q in corpus.queries]


def measure_server(index: Path, sentences: list[str], clients: list[int], duration: float,
                   params: dict, batch: int = 32, rerank: str | None = None,
                   extra: tuple[str, ...] = (), warmup: float = 5.0) -> list[dict]:
    """Start a server over ``index``, warm it up with one client, load it with each client
    count for ``duration`` seconds, stop it; one :func:`load` row per client count."""
    port = free_port()
    server = start_server(index, batch, rerank, port, extra)
    try:
        load(port, sentences, 1, min(warmup, duration), params)
        rows = []
        for count in clients:
            rows.append(load(port, sentences, count, duration, params))
            progress(f"  {rows[-1]}")
        return rows
    finally:
        server.terminate()
        server.wait(timeout=30)
        server.log.close()


def measure(config: ServeLoadConfig) -> list[dict]:
    """One row per (server batch, rerank, client count)."""
    sentences = val_sentences(config.data, config.split)
    rows = []
    for batch in config.batches:
        for rerank in [None] + ([config.rerank] if config.rerank else []):
            progress(f"server: batch {batch}, rerank {rerank}")
            params = {"k": 10, **({"rerank": rerank} if rerank else {})}
            measured = measure_server(config.index, sentences, list(config.clients),
                                      config.duration, params, batch, rerank)
            rows += [{"batch": batch, "rerank": rerank or "-", **row} for row in measured]
    return rows


def plot(rows: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    for key in sorted({(r["batch"], r["rerank"]) for r in rows}):
        mine = [r for r in rows if (r["batch"], r["rerank"]) == key]
        label = f"batch {key[0]}" + (f", rerank {key[1]}" if key[1] != "-" else "")
        axis.plot([r["clients"] for r in mine], [r["p50_ms"] for r in mine], "o-",
                  label=f"{label} p50")
        axis.plot([r["clients"] for r in mine], [r["p99_ms"] for r in mine], "x--",
                  label=f"{label} p99")
    axis.set_xscale("log", base=2)
    axis.set_yscale("log")
    axis.set_xlabel("concurrent clients")
    axis.set_ylabel("latency (ms)")
    axis.legend(fontsize=7)
    save_figure(figure, out / "serve_latency.png")


def run(config: ServeLoadConfig) -> dict:
    """Measure, then write ``serve.json``, ``serve.md`` and ``serve_latency.png``; returns the
    report.

    Raises:
        InputError: more than MAX_CLIENTS clients or MAX_DURATION_S seconds per point.
    """
    if max(config.clients) > MAX_CLIENTS or config.duration > MAX_DURATION_S:
        raise InputError(f"at most {MAX_CLIENTS} clients and {MAX_DURATION_S:.0f} s per point")
    rows = measure(config)
    columns = ["batch", "rerank", "clients", "requests", "errors", "qps", "p50_ms", "p95_ms",
               "p99_ms"]
    command = config.command()
    text = (f"# Serving under load\n\n`{command}`\n\n{markdown_table(rows, columns)}\n\n"
            f"{machine_markdown(machine_info())}\n")
    report = {"command": command, "rows": rows, "machine": machine_info(),
              "omp_threads": os.environ.get("OMP_NUM_THREADS")}
    write_report(config.out, "serve", report, text)
    plot(rows, config.out)
    return report
