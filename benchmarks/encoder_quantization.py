"""Int8 query encoders vs fp32: does a quantized ``text-int8.onnx`` keep the ranking?

For every variant of ``encoder_quantize.VARIANTS`` the index's fp32 encoder folder is copied and
quantized by the real :func:`quantize_encoder`, calibrated on TRAIN sentences only; everything
below is measured on the VAL sentences, with the real ``Searcher`` (its encoder swapped):

* top-10 overlap with fp32: mean |top-10 proposals ∩ fp32's top-10| / 10 of corpus searches,
  over the full index (``--index``, 1,000 videos: the figure the acceptance rule reads) and over
  the val-only index (``--val-index``, 150 videos);
* single-video R1@0.5 / R1@0.7: ``search(text, video_ids=[its video], k=1)`` against the
  ground-truth window;
* corpus R10@0.5 over the val-only index;
* min / mean cosine with the fp32 vectors; model file size; encode latency p50 / p95 of single
  sentences on one thread (warm; the encoders take turns sentence by sentence, so load from
  other jobs falls on all of them alike).

Before anything is timed, fp32 ONNX is checked against PyTorch (the same figures from the
PyTorch ``QueryEncoder``; they must agree within 0.5 points). Each variant is judged by
``accept_int8``; the recommended one is the accepted variant with the lowest p50 latency.

    python -m moment_search.benchmarks.encoder_quantization --index /tmp/q/idx1000 \\
        --val-index /tmp/q/idxval --data ../shared/data/charades-sta-clip \\
        --out reports/encoder_int8
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..data.corpus_dir import read_split
from ..embed.encoder_export import index_encoder_dir
from ..embed.encoder_quantize import (
    VARIANTS,
    RankingFigures,
    accept_int8,
    quantize_encoder,
)
from ..embed.onnx_encoder import OnnxQueryEncoder
from ..errors import InputError
from ..metrics import corpus_metrics, single_video_metrics
from ..search.searcher import Searcher
from .report import machine_info, machine_markdown, markdown_table, progress, write_report

STEM = "encoder_quantization"
MAX_TORCH_GAP = 0.5  # points: fp32 ONNX vs PyTorch, per figure


@dataclass
class QuantBenchConfig:
    """One run of the int8 encoder benchmark."""

    index: Path  # the full index (train + val videos): top-10 overlap
    val_index: Path  # the val-only index: corpus R10@0.5, single-video R1
    data: Path  # the corpus directory with train.jsonl / val.jsonl
    out: Path = Path("reports/encoder_int8")
    variants: tuple[str, ...] = tuple(VARIANTS)  # names in encoder_quantize.VARIANTS
    calibration_split: str = "train"  # sentences that calibrate (never the evaluated ones)
    eval_split: str = "val"
    latency_sentences: int = 200  # single-sentence encodes timed per encoder
    warmup: int = 20
    threads: int = 1  # ONNX Runtime intra-op threads for the timed encoders


def run(config: QuantBenchConfig) -> dict:
    """Quantize, verify, measure and judge every variant; writes the JSON + Markdown (+ PNG)
    report into ``config.out`` and returns it."""
    unknown = [v for v in config.variants if v not in VARIANTS]
    if unknown:
        raise InputError(f"unknown variant(s) {unknown}; expected names of {list(VARIANTS)}")
    calibration = _sentences(config.data, config.calibration_split)
    queries = [q for q in read_split(config.data, config.eval_split).queries if q.windows]
    full, val = open_reference(config.index), open_reference(config.val_index)
    reference = _reference_runs(full, val, queries)
    torch_row = _torch_check(full, val, queries, config.val_index, reference)
    rows, encoders = [reference["row"]], {"fp32": full.encoder}
    with tempfile.TemporaryDirectory(prefix="int8-bench-") as tmp:
        for name in config.variants:
            progress(f"variant {name}: quantizing")
            folder = _copy_encoder(config.index, Path(tmp) / name)
            record = quantize_encoder(folder, calibration, VARIANTS[name],
                                      check_texts=calibration[:256])
            encoder = OnnxQueryEncoder(folder, "int8", threads=config.threads)
            row = _measure(full, val, queries, encoder, reference)
            row.update(variant=name, mode=VARIANTS[name].mode, note=VARIANTS[name].note,
                       mb=record["bytes"] / 2 ** 20, check_train=record["check"],
                       settings=record["settings"])
            rows.append(row)
            encoders[name] = encoder
            progress(f"variant {name}: overlap {row['top10_overlap']:.3f} "
                     f"R1@0.5 {row['R1@0.5']:.2f} R1@0.7 {row['R1@0.7']:.2f} "
                     f"R10@0.5 {row['R10@0.5']:.2f} cos min {row['cos_min']:.4f}")
        _time_encoders(encoders, [q.text for q in queries], config, rows)
    _judge(rows)
    report = {"config": {k: str(v) if isinstance(v, Path) else v
                         for k, v in asdict(config).items()},
              "reference_precision": full.encoder.precision,
              "n_queries": len(queries), "n_calibration": len(calibration),
              "pytorch": torch_row, "rows": rows, "recommended": _recommend(rows),
              "machine": machine_info()}
    write_report(config.out, STEM, report, markdown(report))
    _plot(rows, config.out)
    return report


def open_reference(index: Path) -> Searcher:
    """A searcher of ``index`` with its fp32 graph, the encoder every variant is compared with,
    whatever precision the index serves by default (int8 where it has one)."""
    return Searcher.open(index, device="cpu", encoder="fp32")


def _sentences(data: Path, split: str) -> list[str]:
    """The unique sentences of a split, in file order."""
    return list(dict.fromkeys(q.text for q in read_split(data, split).queries))


def _copy_encoder(index_dir: Path, target: Path) -> Path:
    """A private copy of the index's encoder folder (the benchmark never edits the index)."""
    shutil.copytree(index_encoder_dir(index_dir), target)
    return target


def _figures(full: Searcher, val: Searcher, queries: list) -> dict:
    """The searches every encoder is judged by: corpus top-10 (both indexes), the val-index
    top-10 predictions and each sentence's best moment in its own video."""
    texts = [q.text for q in queries]
    top_full = _top10(full, texts)
    top_val = _top10(val, texts)
    corpus = {q.qid: [(m.video_id, m.start_s, m.end_s, m.score) for m in moments]
              for q, moments in zip(queries, top_val, strict=True)}
    single = {}
    for q in queries:
        best = val.search(q.text, k=1, video_ids=[q.video_id])
        single[q.qid] = np.array([[m.start_s, m.end_s, m.score] for m in best])
    r1 = single_video_metrics(single, queries, ns=(1,), ms=(0.5, 0.7))
    r10 = corpus_metrics(corpus, queries, ks=(10,), ms=(0.5,))
    return {"ids_full": [[m.proposal_id for m in ms] for ms in top_full],
            "ids_val": [[m.proposal_id for m in ms] for ms in top_val],
            "R1@0.5": r1["R1@0.5"], "R1@0.7": r1["R1@0.7"], "R10@0.5": r10["R10@0.5"]}


def _top10(searcher: Searcher, texts: list[str]) -> list:
    return [m for start in range(0, len(texts), 64)
            for m in searcher.search_many(texts[start:start + 64], k=10)]


def _overlap(ids: list[list[int]], reference: list[list[int]]) -> float:
    """Mean share of the reference's top 10 that ``ids`` also holds."""
    return float(np.mean([len(set(a) & set(b)) / max(len(b), 1)
                          for a, b in zip(ids, reference, strict=True)]))


def _with_encoder(searchers: tuple[Searcher, ...], encoder) -> None:
    for searcher in searchers:
        searcher.encoder = encoder


def _reference_runs(full: Searcher, val: Searcher, queries: list) -> dict:
    """fp32 ONNX: the figures and top-10 lists everything else is compared with."""
    progress("fp32 ONNX: searching")
    figures = _figures(full, val, queries)
    texts = [q.text for q in queries]
    vectors = full.encoder.encode(texts)  # (Q, D)
    row = {"variant": "fp32", "mode": "fp32 ONNX", "top10_overlap": 1.0,
           "top10_overlap_val_index": 1.0, "cos_min": 1.0, "cos_mean": 1.0,
           "mb": (index_encoder_dir(full.index_dir) / "text.onnx").stat().st_size / 2 ** 20,
           **{k: figures[k] for k in ("R1@0.5", "R1@0.7", "R10@0.5")}}
    return {"figures": figures, "vectors": vectors, "row": row}


def _measure(full: Searcher, val: Searcher, queries: list, encoder, reference: dict) -> dict:
    """An encoder's figures, its overlap with fp32's top 10 and its cosine with fp32."""
    fp32 = full.encoder
    _with_encoder((full, val), encoder)
    try:
        figures = _figures(full, val, queries)
    finally:
        _with_encoder((full, val), fp32)
    ref = reference["figures"]
    cosine = _cosines(reference["vectors"], encoder.encode([q.text for q in queries]))
    return {"top10_overlap": _overlap(figures["ids_full"], ref["ids_full"]),
            "top10_overlap_val_index": _overlap(figures["ids_val"], ref["ids_val"]),
            "cos_min": float(cosine.min()), "cos_mean": float(cosine.mean()),
            "worst": queries[int(np.argmin(cosine))].text,
            **{k: figures[k] for k in ("R1@0.5", "R1@0.7", "R10@0.5")}}


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(Q,) cosine of matching rows of two (Q, D) arrays."""
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return (a * b).sum(1) / np.maximum(norms, 1e-12)


def _torch_check(full: Searcher, val: Searcher, queries: list, val_index: Path,
                 reference: dict) -> dict:
    """The PyTorch encoder's figures; fp32 ONNX must match them within MAX_TORCH_GAP points."""
    from ..indexer.query_encoder import pytorch_query_encoder

    progress("PyTorch: searching (verification)")
    row = _measure(full, val, queries, pytorch_query_encoder(val_index, "cpu"), reference)
    gaps = {k: abs(row[k] - reference["row"][k]) for k in ("R1@0.5", "R1@0.7", "R10@0.5")}
    if max(gaps.values()) > MAX_TORCH_GAP:
        raise AssertionError(f"fp32 ONNX disagrees with PyTorch by {gaps} points: the exported "
                             f"encoder is wrong, timing it would mean nothing")
    row.update(variant="pytorch", mode="PyTorch (reference)", gaps=gaps)
    return row


def _time_encoders(encoders: dict, texts: list[str], config: QuantBenchConfig,
                   rows: list[dict]) -> None:
    """p50 / p95 ms of ``encode([sentence])``, the encoders taking turns per sentence."""
    fp32 = encoders["fp32"]
    encoders = {**encoders, "fp32": OnnxQueryEncoder(fp32.folder, "fp32", threads=config.threads)}
    sample = texts[:config.latency_sentences]
    for text in sample[:config.warmup]:
        for encoder in encoders.values():
            encoder.encode([text])
    times = {name: [] for name in encoders}
    for text in sample:
        for name, encoder in encoders.items():
            start = time.perf_counter()
            encoder.encode([text])
            times[name].append(1000 * (time.perf_counter() - start))
    for row in rows:
        spent = np.array(times[row["variant"]])
        row.update(p50_ms=float(np.percentile(spent, 50)), p95_ms=float(np.percentile(spent, 95)))
        row["speedup_p50"] = float(np.median(times["fp32"]) / row["p50_ms"])


def _judge(rows: list[dict]) -> None:
    fp32 = _ranking(rows[0])
    for row in rows[1:]:
        row["accepted"], row["reasons"] = accept_int8(fp32, _ranking(row))


def _ranking(row: dict) -> RankingFigures:
    return RankingFigures(row["top10_overlap"], row["R1@0.5"], row["R1@0.7"], row["R10@0.5"])


def _recommend(rows: list[dict]) -> str | None:
    accepted = [r for r in rows[1:] if r.get("accepted")]
    return min(accepted, key=lambda r: r["p50_ms"])["variant"] if accepted else None


COLUMNS = ["variant", "mode", "top10_overlap", "top10_overlap_val_index", "R1@0.5", "R1@0.7",
           "R10@0.5", "cos_min", "cos_mean", "p50_ms", "p95_ms", "speedup_p50", "mb", "accepted"]
HEADERS = ["variant", "mode", "top-10 overlap (1,000 videos)", "top-10 overlap (150 val)",
           "R1@0.5", "R1@0.7", "R10@0.5 (corpus)", "cos min", "cos mean", "p50 ms", "p95 ms",
           "speed-up p50", "MiB", "accepted"]


def markdown(report: dict) -> str:
    """The report's tables and verdict."""
    rows = report["rows"]
    torch_row = report["pytorch"]
    verdict = (f"Recommended: **{report['recommended']}** (passes the rule, fastest p50)."
               if report["recommended"] else
               "No variant passes the acceptance rule: **fp32 stays the default**.")
    reasons = [f"- {r['variant']}: " + ("accepted" if r["accepted"] else "; ".join(r["reasons"]))
               for r in rows[1:]]
    notes = [f"- {r['variant']}: {r['note']}" for r in rows[1:]]
    return "\n\n".join([
        "# Int8 query encoder vs fp32",
        f"{report['n_queries']} val sentences; static variants calibrated on the first "
        f"sentences of {report['n_calibration']} unique train sentences. Rule: top-10 overlap "
        f"(1,000-video index) >= 0.95 and R1@0.5, R1@0.7 (single video, val index), R10@0.5 "
        f"(corpus, 150 val videos) within 0.5 points of fp32.",
        verdict,
        markdown_table(rows, COLUMNS, HEADERS),
        f"Verification: PyTorch gives R1@0.5 {torch_row['R1@0.5']:.2f}, R1@0.7 "
        f"{torch_row['R1@0.7']:.2f}, R10@0.5 {torch_row['R10@0.5']:.2f}; top-10 overlap with "
        f"fp32 ONNX {torch_row['top10_overlap']:.3f}, cosine min {torch_row['cos_min']:.6f}.",
        "Verdicts:\n" + "\n".join(reasons),
        "Variants:\n" + "\n".join(notes),
        machine_markdown(report["machine"]),
    ])


def _plot(rows: list[dict], out: Path) -> None:
    """Top-10 overlap vs p50 latency, one point per encoder."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .report import save_figure

    figure, axes = plt.subplots(figsize=(7, 4.5))
    for row in rows:
        axes.scatter(row["p50_ms"], row["top10_overlap"],
                     color="tab:green" if row.get("accepted", True) else "tab:red")
        axes.annotate(row["variant"], (row["p50_ms"], row["top10_overlap"]), fontsize=7,
                      xytext=(3, 3), textcoords="offset points")
    axes.axhline(0.95, color="grey", linestyle="--", linewidth=0.8)
    axes.set_xlabel("encode p50, ms (one sentence, one thread)")
    axes.set_ylabel("top-10 overlap with fp32 (1,000 videos)")
    save_figure(figure, Path(out) / f"{STEM}.png")
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (see the module docstring); an option not given keeps the
    default of :class:`QuantBenchConfig`."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     argument_default=argparse.SUPPRESS)
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--val-index", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--variants", type=lambda text: tuple(v for v in text.split(",") if v))
    parser.add_argument("--latency-sentences", type=int)
    print(markdown(run(QuantBenchConfig(**vars(parser.parse_args(argv))))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
