"""The models' steps on each device of one machine: CPU vs CUDA, as ratios within one run.

For every device named: the single-video table (:mod:`.single_video`) and the cross-modal scan
(:mod:`.brute_force`) over the split's videos repeated to several corpus sizes. Needs no FAISS,
so it runs where only torch is installed (as on a GPU machine without a FAISS build); the full
report (``run``) needs FAISS for the index.

    moment-search benchmark devices --data ../shared/data/charades-sta-clip \\
        --devices cpu,cuda --out reports/devices
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ...data.corpus_dir import open_corpus
from ...registry import list_rerankers
from ...search.rerank import load_reranker
from ..report import machine_info, machine_markdown, markdown_table, write_json, write_markdown
from . import brute_force
from .presets import parse_models
from .single_video import single_video_rows

SIZES = (150, 1_000, 5_000)  # videos scanned (the split's videos repeated)
SCAN_QUERIES = 10


def scan_rows(data: Path, split: str, name: str, model_dir: Path | None, device: str,
              sizes: tuple[int, ...]) -> list[dict]:
    """Reranker ``name`` scanning the split's videos repeated to each size (checked first)."""
    corpus, store = open_corpus(data, split=split)
    videos = brute_force.load_videos(corpus, store)
    texts = [q.text for q in corpus.queries[:SCAN_QUERIES + 1]]
    reranker = load_reranker(name, model_dir, device)
    brute_force.check_chunking(reranker, texts[0], videos)
    rows = []
    for size in sizes:
        pool = (videos * (size // len(videos) + 1))[:size]
        rows.append({"device": device, "model": name, **brute_force.measure(reranker, pool, texts)})
    return rows


def run(data: Path, split: str, models: dict[str, Path | None], devices: list[str], out: Path,
        sizes: tuple[int, ...] = SIZES, warmup: int = 3) -> dict:
    """Measure every device; write ``devices.json`` and ``devices.md`` into ``out``."""
    single, scans = [], []
    for device in devices:
        single += [{"device": device, **row}
                   for row in single_video_rows(data, split, models, device, warmup)]
        for name, model_dir in models.items():
            if name in list_rerankers():
                scans += scan_rows(data, split, name, model_dir, device, sizes)
    report = {"data": str(data), "split": split, "devices": devices, "single_video": single,
              "scan": scans, "machine": machine_info()}
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "devices.json", report)
    write_markdown(out / "devices.md", markdown(report))
    return report


def markdown(report: dict) -> str:
    """The two tables and the machine."""
    single = ["device", "model", "TE_ms_median", "CML_ms_median", "NMS_ms_median",
              "ALL_ms_median", "ALL_ms_p95", "R1@0.5", "R1@0.7", "mIoU"]
    headers = ["device", "model", "TE p50", "CML p50", "NMS p50", "ALL p50", "ALL p95",
               "R1@0.5", "R1@0.7", "mIoU"]
    return "\n\n".join([
        f"Single video ({report['split']} split), ms per query per video:",
        markdown_table(report["single_video"], single, headers),
        "The cross-modal scan: ms per query over the split's videos repeated to each size:",
        markdown_table(report["scan"], ["device", "model", "videos", "queries", "ms_p50",
                                        "ms_p95"]),
        machine_markdown(report["machine"]),
    ])


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(description="Model steps on each device.")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--split", default="val")
    parser.add_argument("--models", default="fvmr,pln", help="NAME[=CHECKPOINT_DIR],...")
    parser.add_argument("--devices", default="cpu,cuda")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    sizes = tuple(int(s) for s in args.sizes.split(","))
    report = run(args.data, args.split, parse_models(args.models), args.devices.split(","),
                 args.out, sizes)
    print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
