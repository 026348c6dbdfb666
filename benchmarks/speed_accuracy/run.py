"""Run the speed-accuracy report (see the package docstring).

    python -m moment_search.benchmarks.speed_accuracy.run --data ../shared/data/charades-sta-clip \\
        --split val --models fvmr,pln --out reports/speed_accuracy
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from dataclasses import asdict
from pathlib import Path

from ...registry import list_rerankers
from ...search.rerank import load_reranker
from ..report import machine_info, write_json, write_markdown
from . import scaling
from .corpus import corpus_rows
from .plots import plot_scaling, plot_speed_accuracy
from .presets import Preset, get_preset, parse_models
from .single_video import single_video_rows
from .tables import markdown

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")  # recorded with the command
PREFERRED_M = 10  # the cascade drawn in the scaling figure (else the smallest M measured)


def cascade_row(rows: list[dict], name: str) -> dict:
    """The cascade with ``name`` drawn in the scaling figure (M = 10, else the smallest M)."""
    cascades = [r for r in rows if r["strategy"] == "cascade" and r["reranker"] == name]
    return next((r for r in cascades if r["M"] == PREFERRED_M), None) or min(
        cascades, key=lambda r: r["M"])


def fixed_ms(row: dict) -> float:
    """A corpus row's per-query cost that does not grow with the corpus: text encoding,
    post-processing and (for a cascade) the rerank stage, medians."""
    return row["TE_ms_median"] + row["post_ms_median"] + row.get("rerank_ms_median", 0.0)


def scaling_section(data: Path, split: str, fvmr_dir: Path | None, rerankers: dict,
                    preset: Preset, rows: list[dict], device: str) -> dict:
    """Index points at every size, composed latencies, and each scan's curve."""
    base, queries, videos, texts = scaling.real_embeddings(data, fvmr_dir, split, device)
    replicated = scaling.ReplicatedEmbeddings(base)
    points = [scaling.index_point(v, replicated, queries[:preset.scale_queries],
                                  preset.memory_budget) for v in preset.scale_videos]
    index_row = next(r for r in rows if r["strategy"] == "index")
    cascades = {name: cascade_row(rows, name) for name in rerankers}
    cascade_m = {name: r["M"] for name, r in cascades.items()}
    cascade_ms = {name: fixed_ms(r) for name, r in cascades.items()}
    for point in points:
        point["index_ms_composed"] = fixed_ms(index_row) + point["search_ms_p50"]
        for name, fixed in cascade_ms.items():
            point[f"cascade_{name}_ms_composed"] = fixed + point["search_ms_p50"]
    scans = {name: scaling.scan_curve(load_reranker(name, model_dir, device), videos,
                                      texts[:preset.scan_queries], preset.scale_videos,
                                      preset.scan_videos)
             for name, model_dir in rerankers.items()}
    note = (f"{len(base)} real videos' moment embeddings replicated with a {replicated.noise} "
            f"RMS Gaussian offset per copy; {preset.scale_queries} real {split} queries per size. "
            f"Index ms/query = TE ({index_row['TE_ms_median']:.1f} ms) + FAISS search measured at "
            f"each size ({scaling.CANDIDATES} candidates) + post-processing "
            f"({index_row['post_ms_median']:.2f} ms), composed; a cascade adds its own row's TE, "
            f"post-processing and rerank medians to the same FAISS search. Scans are measured on "
            f"real videos up to {len(videos)} ({preset.scan_queries} queries per size, the first "
            f"untimed) and extrapolated linearly beyond (\"extrapolated\"). Recall@100 is that of "
            f"the timed search against an exact scan of the same vectors.")
    return {"index": points, "scan": scans, "cascade_m": cascade_m, "cascade_ms": cascade_ms,
            "note": note}


def device_description(device: str) -> str:
    """What ``--device`` resolved to for torch and for FAISS."""
    from ...device import resolve_device
    from ...indexer.faiss_index import resolve_placement

    return f"{device} (torch: {resolve_device(device)}; {resolve_placement(device).reason})"


def run(data: Path, split: str, models: dict[str, Path | None], preset: Preset, out: Path,
        device: str = "cpu", command: str = "") -> dict:
    """Measure everything, write ``report.json``, ``report.md`` and the two plots into ``out``."""
    begin = time.perf_counter()
    fvmr_dir = models.get("fvmr")
    rerankers = {n: d for n, d in models.items() if n in list_rerankers()}
    single = single_video_rows(data, split, models, device, preset.warmup)
    rows, checks, about = corpus_rows(data, split, fvmr_dir, rerankers, preset, device)
    scale = scaling_section(data, split, fvmr_dir, rerankers, preset, rows, device)
    checks += [f"scaling: the index at {p['videos']:,} videos ({p['index']}) reaches recall@100 "
               f"{p['recall_at_100']:.4f} against an exact scan" for p in scale["index"]]
    report = {"command": command, "data": str(data), "split": split, "preset": preset.name,
              "preset_settings": asdict(preset), "device": device_description(device),
              "models": {k: str(v) if v else "shipped" for k, v in models.items()},
              "single_video": single, "corpus": {"about": about, "rows": rows},
              "scaling": scale, "checks": checks, "machine": machine_info(),
              "elapsed_s": time.perf_counter() - begin}
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "report.json", report)
    write_markdown(out / "report.md", markdown(report))
    plot_speed_accuracy(report, out / "speed_accuracy.png")
    plot_scaling(scale, out / "scaling.png")
    return report


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(description="The speed-accuracy report.")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--split", default="val")
    parser.add_argument("--models", default="fvmr,pln", help="NAME[=CHECKPOINT_DIR],...")
    parser.add_argument("--preset", default="small", help="small | medium | large")
    parser.add_argument("--device", default="cpu", help="auto | cpu | cuda[:N]")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    threads = " ".join(f"{k}={os.environ[k]}" for k in THREAD_VARIABLES if k in os.environ)
    command = (threads + " " if threads else "") + "moment-search benchmark speed-accuracy " + (
        shlex.join(sys.argv[1:] if argv is None else argv))
    report = run(args.data, args.split, parse_models(args.models), get_preset(args.preset),
                 args.out, args.device, command)
    print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
