"""The models' steps on each device of one machine: CPU vs CUDA, as ratios within one run.

For every device named: the single-video table (:mod:`.single_video`) and the cross-modal scan
(:mod:`.brute_force`) over the split's videos repeated to several corpus sizes. Needs no FAISS,
so it runs where only torch is installed (as on a GPU machine without a FAISS build); the full
report (``run``) needs FAISS for the index.

    moment-search benchmark devices --data ../shared/data/charades-sta-clip \\
        --devices cpu,cuda --out reports/devices
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ...data.corpus_dir import open_corpus
from ...registry import list_rerankers
from ...search.rerank import load_reranker
from ..report import machine_info, machine_markdown, markdown_table, write_json, write_markdown
from . import brute_force
from .presets import default_models
from .single_video import single_video_rows

SIZES = (150, 1_000, 5_000)  # videos scanned (the split's videos repeated)
SCAN_QUERIES = 10


@dataclass
class DevicesConfig:
    """One run; ``moment-search benchmark devices`` builds it from its options."""

    data: Path  # corpus directory (features + annotations)
    out: Path  # report directory (devices.json, devices.md)
    split: str = "val"  # the split whose queries are answered
    # name -> checkpoint (None: the shipped one); the CLI's --models NAME[=CHECKPOINT_DIR],...
    models: dict[str, Path | None] = field(default_factory=default_models)
    devices: tuple[str, ...] = ("cpu", "cuda")  # compared
    sizes: tuple[int, ...] = SIZES  # videos of the scan
    warmup: int = 3  # untimed queries before each single-video measurement


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


def run(config: DevicesConfig) -> dict:
    """Measure every device; write ``devices.json`` and ``devices.md`` into ``config.out``."""
    data, split, models = Path(config.data), config.split, config.models
    single, scans = [], []
    for device in config.devices:
        single += [{"device": device, **row}
                   for row in single_video_rows(data, split, models, device, config.warmup)]
        for name, model_dir in models.items():
            if name in list_rerankers():
                scans += scan_rows(data, split, name, model_dir, device, config.sizes)
    report = {"data": str(data), "split": split, "devices": list(config.devices),
              "single_video": single, "scan": scans, "machine": machine_info()}
    out = Path(config.out)
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
