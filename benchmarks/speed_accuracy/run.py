"""Run the speed-accuracy report (see the package docstring).

    moment-search benchmark speed-accuracy --data ../shared/data/charades-sta-clip \\
        --split val --models fvmr,pln --out reports/speed_accuracy
"""

from __future__ import annotations

import os
import shlex
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ...registry import list_rerankers
from ...search.localize import CORPUS_PER_VIDEO
from ...search.rerank import load_reranker
from ..report import machine_info, write_json, write_markdown
from . import scaling
from .corpus import corpus_rows
from .plots import plot_scaling, plot_speed_accuracy
from .presets import Preset, default_models, get_preset
from .single_video import single_video_rows
from .tables import markdown

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")  # recorded with the command
PREFERRED_M = 10  # the cascade drawn in the scaling figure (else the smallest M measured)


@dataclass
class SpeedAccuracyConfig:
    """One run; ``moment-search benchmark speed-accuracy`` builds it from its options."""

    data: Path  # corpus directory (features + annotations)
    out: Path  # report directory (report.json, report.md, plots)
    split: str = "val"  # the split whose queries are answered
    # name -> checkpoint (None: the shipped one); the CLI's --models NAME[=CHECKPOINT_DIR],...
    models: dict[str, Path | None] = field(default_factory=default_models)
    preset: Preset = field(default_factory=lambda: get_preset("small"))
    device: str = "cpu"  # auto | cpu | cuda[:N], for the models and FAISS

    def command(self) -> str:
        """The command line of this run, with the thread variables set (recorded in the
        report)."""
        models = ",".join(name if path is None else f"{name}={path}"
                          for name, path in self.models.items())
        options = ["--data", self.data, "--out", self.out, "--split", self.split, "--models",
                   models, "--preset", self.preset.name, "--device", self.device]
        threads = " ".join(f"{k}={os.environ[k]}" for k in THREAD_VARIABLES if k in os.environ)
        return (threads + " " if threads else "") + "moment-search benchmark speed-accuracy " + (
            shlex.join(map(str, options)))


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


def run(config: SpeedAccuracyConfig) -> dict:
    """Measure everything, write ``report.json``, ``report.md`` and the two plots into
    ``config.out``."""
    begin = time.perf_counter()
    data, split, models, preset = Path(config.data), config.split, config.models, config.preset
    device, out = config.device, Path(config.out)
    fvmr_dir = models.get("fvmr")
    rerankers = {n: d for n, d in models.items() if n in list_rerankers()}
    single = single_video_rows(data, split, models, device, preset.warmup)
    rows, checks, about = corpus_rows(data, split, fvmr_dir, rerankers, preset, device)
    scale = scaling_section(data, split, fvmr_dir, rerankers, preset, rows, device)
    checks += [f"scaling: the index at {p['videos']:,} videos ({p['index']}) reaches recall@100 "
               f"{p['recall_at_100']:.4f} against an exact scan" for p in scale["index"]]
    report = {"command": config.command(), "data": str(data), "split": split, "preset": preset.name,
              "preset_settings": asdict(preset), "device": device_description(device),
              "per_video": CORPUS_PER_VIDEO,  # the searcher's default cap the corpus rows had
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
