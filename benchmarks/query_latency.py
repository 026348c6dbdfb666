"""Query latency where users touch it: the PyTorch vs ONNX fp32 vs ONNX int8 query encoders, side
by side in one run, over one index.

* cold: ``moment-search query SENTENCE --index DIR --encoder E`` in a fresh process, several
  runs: wall time (median) and peak memory (the child's ru_maxrss, median);
  ``moment-search --help`` likewise;
* warm: a fresh process per encoder and thread count opens a Searcher (no query cache), warms
  up, then times one sentence at a time: text encoding / FAISS search / NMS / total per query,
  p50 and p95, on one thread and on all;
* served: ``moment-search serve --encoder E --query-cache 0`` (every request pays its encoding)
  under 1 / 8 / 32 concurrent clients: queries/s, p50 / p99 (see ``serve_load``).

With ``--baseline-index`` (a flat index), "baseline" rows run today's path beside them: the
PyTorch encoder over that index, served by one worker thread.

Before timing, each encoder's answers are checked against PyTorch's on the sentences
(top-10 overlap), so a fast encoder that answers differently is seen in the same report.

    python -m moment_search.benchmarks.query_latency --index moment-index \\
        --data ../shared/data/charades-sta-clip --out reports/query_latency
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .report import (
    machine_info,
    machine_markdown,
    markdown_table,
    progress,
    save_figure,
    write_report,
)

ENCODERS = ("pytorch", "fp32", "int8")
COLD_SENTENCE = "person opens a cabinet"
# Runs the console script's own path (``cli.app.entry``, which leaves a query with os._exit) and
# prints the process's peak resident memory (KiB) on the way out: VmHWM of /proc/self/status
# (ru_maxrss would count the benchmark process it was forked from).
COLD_SCRIPT = """
import os, sys
def peak():
    hwm = open('/proc/self/status').read().split('VmHWM:')[1].split()[0]
    print('PEAK_KB', hwm, file=sys.stderr, flush=True)
real_exit = os._exit
def exit_with_peak(code):
    peak()
    real_exit(code)
os._exit = exit_with_peak
sys.argv = ['moment-search', *sys.argv[1:]]
from moment_search.cli.app import entry
try:
    entry()
except SystemExit:
    peak()
    raise
"""


@dataclass
class LatencyConfig:
    """One run of the benchmark."""

    index: Path
    data: Path  # corpus whose sentences are searched (the split's)
    out: Path
    split: str = "val"
    encoders: tuple[str, ...] = ENCODERS  # those the index lacks are skipped, and said so
    cold_runs: int = 5
    warm_queries: int = 300  # sentences timed warm per encoder and thread setting
    clients: tuple[int, ...] = (1, 8, 32)
    duration: float = 10.0  # seconds per served point
    skip_serve: bool = False
    # today's path beside the new one: PyTorch query encoder, this (flat) index, and, served,
    # one worker thread; None leaves the baseline out
    baseline_index: Path | None = None


@dataclass
class LatencyReport:
    machine: dict
    config: dict
    encoders: list[str]
    skipped: dict[str, str] = field(default_factory=dict)
    agreement: list[dict] = field(default_factory=list)
    cold: list[dict] = field(default_factory=list)
    warm: list[dict] = field(default_factory=list)
    served: list[dict] = field(default_factory=list)


def sentences_of(data: Path, split: str) -> list[str]:
    """The split's distinct sentences, in file order."""
    from ..data.corpus_dir import read_split

    return list(dict.fromkeys(q.text for q in read_split(data, split).queries))


def available(index: Path, wanted: tuple[str, ...]) -> tuple[list[str], dict[str, str]]:
    """The encoders of ``wanted`` the index can run, and why the others are skipped."""
    from ..embed.onnx_encoder import ENCODER_DIR, EncoderMeta

    folder = index / ENCODER_DIR
    held = EncoderMeta.read(folder).precisions if folder.is_dir() else ()
    usable, skipped = [], {}
    for name in wanted:
        if name == "pytorch" or name in held:
            usable.append(name)
        else:
            skipped[name] = f"the index holds no {name} graph (it holds {', '.join(held)})"
    return usable, skipped


def cold_runs(config: LatencyConfig, encoder: str | None, index: Path | None = None,
              label: str = "") -> dict:
    """Median wall time and peak memory of a fresh ``query`` (or ``--help``) process."""
    args = ["--help"] if encoder is None else [
        "query", COLD_SENTENCE, "--index", str(index or config.index), "--encoder", encoder,
        "--json"]
    walls, peaks = [], []
    for _ in range(config.cold_runs):
        start = time.perf_counter()
        result = subprocess.run([sys.executable, "-c", COLD_SCRIPT, *args], capture_output=True,
                                text=True, timeout=600)
        walls.append(time.perf_counter() - start)
        if result.returncode != 0:
            raise RuntimeError(f"moment-search {' '.join(args)} failed: {result.stderr[-2000:]}")
        peaks.append(int(result.stderr.rsplit("PEAK_KB", 1)[1].split()[0]) / 1024)
    command = "--help" if encoder is None else f"query --encoder {encoder}"
    return {"command": f"{label}{command}",
            "wall_s": float(np.median(walls)), "wall_min_s": float(np.min(walls)),
            "peak_mb": float(np.median(peaks)), "runs": config.cold_runs}


WARM_SCRIPT = ("import json, sys\nfrom moment_search.benchmarks.query_latency import warm_child"
               "\nprint('WARM', json.dumps(warm_child(*json.loads(sys.argv[1]))))")


def warm_child(index: str, encoder: str, threads: int, sentences: list[str]) -> dict:
    """In a fresh process: a Searcher with ``encoder`` on ``threads`` threads (FAISS, ONNX
    Runtime, PyTorch), no query cache; 20 warm-up queries, then one timed query per sentence."""
    from ..embed.onnx_encoder import OnnxQueryEncoder
    from ..indexer.faiss_core import import_faiss
    from ..search.searcher import Searcher

    import_faiss().omp_set_num_threads(threads)
    searcher = Searcher.open(index, device="cpu", encoder=encoder, query_cache=0)
    if isinstance(searcher.encoder, OnnxQueryEncoder):
        searcher.encoder = OnnxQueryEncoder(searcher.encoder.folder, encoder, "cpu", threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    for text in sentences[:20]:
        searcher.search_timed([text], k=10)
    rows = []
    for text in sentences:
        start = time.perf_counter()
        _, t = searcher.search_timed([text], k=10)
        rows.append((t.encode_ms, t.search_ms, t.post_ms, 1000 * (time.perf_counter() - start)))
    table = np.array(rows)  # (Q, 4)
    row = {"encoder": encoder, "threads": threads, "queries": len(sentences)}
    for i, name in enumerate(("encode", "search", "nms", "total")):
        row[f"{name}_p50_ms"] = float(np.percentile(table[:, i], 50))
        row[f"{name}_p95_ms"] = float(np.percentile(table[:, i], 95))
    return row


def warm_row(index: Path, encoder: str, threads: int, sentences: list[str]) -> dict:
    """:func:`warm_child` in a fresh process (no other model's threads spinning beside it)."""
    payload = json.dumps([str(index), encoder, threads, sentences])
    result = subprocess.run([sys.executable, "-c", WARM_SCRIPT, payload], capture_output=True,
                            text=True, timeout=1800)
    if result.returncode != 0:
        raise RuntimeError(f"warm run of {encoder} failed: {result.stderr[-2000:]}")
    return json.loads(result.stdout.rsplit("WARM", 1)[1])


def open_searcher(index: Path, encoder: str):
    """A Searcher with ``encoder`` and no query cache."""
    from ..search.searcher import Searcher

    return Searcher.open(index, device="cpu", encoder=encoder, query_cache=0)


def top10(searcher, sentences: list[str]) -> list[set]:
    return [{(m.video_id, m.start_s, m.end_s) for m in moments}
            for moments in searcher.search_many(sentences, k=10)]


def agreement_rows(index: Path, encoders: list[str], sentences: list[str]) -> list[dict]:
    """Mean top-10 overlap of every encoder's answers with PyTorch's (the reference)."""
    reference = top10(open_searcher(index, "pytorch"), sentences)
    rows = []
    for encoder in encoders:
        answers = top10(open_searcher(index, encoder), sentences)
        overlap = [len(a & b) / max(1, len(b)) for a, b in zip(answers, reference, strict=True)]
        rows.append({"encoder": encoder, "top10_overlap_with_pytorch": float(np.mean(overlap)),
                     "identical_top10": float(np.mean([a == b for a, b in
                                                       zip(answers, reference, strict=True)]))})
    return rows


def served_rows(config: LatencyConfig, settings: list[tuple[str, Path, tuple[str, ...]]],
                sentences: list[str]) -> list[dict]:
    """Queries/s and latency of each ``(label, index, serve options)`` at each client count."""
    from .serve_load import measure_server

    rows = []
    for label, index, extra in settings:
        progress(f"serve {label}")
        measured = measure_server(index, sentences, list(config.clients), config.duration,
                                  {"k": 10}, extra=("--query-cache", "0", *extra), warmup=3.0)
        rows += [{"encoder": label, **row} for row in measured]
    return rows


def run(config: LatencyConfig) -> LatencyReport:
    """Every measurement of the module doc, in one run (cold and warm runs in children)."""
    sentences = sentences_of(config.data, config.split)
    encoders, skipped = available(config.index, config.encoders)
    report = LatencyReport(machine_info(), _jsonable(asdict(config)), encoders, skipped)
    progress("checking answers against PyTorch")
    report.agreement = agreement_rows(config.index, encoders, sentences)
    baseline = config.baseline_index
    progress("cold runs")
    report.cold = [cold_runs(config, None)]
    if baseline:
        report.cold.append(cold_runs(config, "pytorch", baseline, "baseline (flat): "))
    report.cold += [cold_runs(config, e) for e in encoders]
    for threads in (1, os.cpu_count() or 1):
        runs = ([("baseline", baseline, "pytorch")] if baseline else []) + \
            [(e, config.index, e) for e in encoders]
        for label, index, encoder in runs:
            progress(f"warm: {label}, {threads} thread(s)")
            row = warm_row(index, encoder, threads, sentences[:config.warm_queries])
            report.warm.append({**row, "encoder": label})
    if not config.skip_serve:
        settings = ([("baseline", baseline, ("--encoder", "pytorch", "--parallel", "1"))]
                    if baseline else [])
        settings += [(e, config.index, ("--encoder", e)) for e in encoders]
        report.served = served_rows(config, settings, sentences)
    return report


def _jsonable(value):
    return json.loads(json.dumps(value, default=str))


def markdown(report: LatencyReport) -> str:
    """The report's tables."""
    parts = ["# Query latency: PyTorch vs ONNX fp32 vs ONNX int8 query encoders", "",
             machine_markdown(report.machine), "",
             f"Index `{report.config['index']}`, sentences of `{report.config['split']}`; "
             f"baseline (today's path: PyTorch encoder, flat index, one served worker thread): "
             f"`{report.config.get('baseline_index')}`.", ""]
    for name, why in report.skipped.items():
        parts.append(f"- skipped {name}: {why}")
    parts += ["", "## Answers (top-10 overlap with the PyTorch encoder)", "",
              markdown_table(report.agreement, ["encoder", "top10_overlap_with_pytorch",
                                                "identical_top10"]), "",
              "## Cold process (median of runs)", "",
              markdown_table(report.cold, ["command", "wall_s", "wall_min_s", "peak_mb",
                                           "runs"]), "",
              "## Warm searcher, one query at a time (ms)", "",
              markdown_table(report.warm, ["encoder", "threads", "encode_p50_ms",
                                           "encode_p95_ms", "search_p50_ms", "search_p95_ms",
                                           "nms_p50_ms", "total_p50_ms", "total_p95_ms"])]
    if report.served:
        parts += ["", "## Served (moment-search serve, loopback clients)", "",
                  markdown_table(report.served, ["encoder", "clients", "requests", "errors",
                                                 "qps", "p50_ms", "p95_ms", "p99_ms"])]
    return "\n".join(parts) + "\n"


def plot(report: LatencyReport, out: Path) -> None:
    """Warm total p50 per encoder and thread count, and served queries/s per client count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (warm, served) = plt.subplots(1, 2, figsize=(10, 4))
    for threads in sorted({r["threads"] for r in report.warm}):
        rows = [r for r in report.warm if r["threads"] == threads]
        warm.bar([f"{r['encoder']}\n{threads}t" for r in rows],
                 [r["total_p50_ms"] for r in rows], label=f"{threads} thread(s)")
    warm.set_ylabel("warm query p50 (ms)")
    warm.legend()
    for encoder in dict.fromkeys(r["encoder"] for r in report.served):
        rows = [r for r in report.served if r["encoder"] == encoder]
        if rows:
            served.plot([r["clients"] for r in rows], [r["qps"] for r in rows], marker="o",
                        label=encoder)
    served.set_xlabel("concurrent clients")
    served.set_ylabel("queries / s")
    if report.served:
        served.legend()
    figure.tight_layout()
    save_figure(figure, out / "query_latency.png")


def main(argv: list[str] | None = None) -> LatencyReport:
    """``python -m moment_search.benchmarks.query_latency``: run, write JSON/Markdown/PNG."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--split", default="val")
    parser.add_argument("--encoders", default=",".join(ENCODERS))
    parser.add_argument("--cold-runs", type=int, default=5)
    parser.add_argument("--warm-queries", type=int, default=300)
    parser.add_argument("--clients", default="1,8,32")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--skip-serve", action="store_true")
    parser.add_argument("--baseline-index", type=Path, default=None)
    args = parser.parse_args(argv)
    config = LatencyConfig(args.index, args.data, args.out, args.split,
                           tuple(args.encoders.split(",")), args.cold_runs, args.warm_queries,
                           tuple(int(c) for c in args.clients.split(",")), args.duration,
                           args.skip_serve, args.baseline_index)
    return write(config)


def write(config: LatencyConfig) -> LatencyReport:
    """Run the benchmark and write ``query_latency.{json,md,png}`` into ``config.out``."""
    report = run(config)
    config.out.mkdir(parents=True, exist_ok=True)
    write_report(config.out, "query_latency", asdict(report), markdown(report))
    plot(report, config.out)
    return report


if __name__ == "__main__":
    main()
