"""Throughput of ``ingest --ray`` and ``index build --ray`` on this machine: frames/s and
proposals/s with 1 and 2 Ray workers beside the single-process path.

    moment-search benchmark ray            (defaults: RayBenchConfig)

Ingest: the given videos (each copied ``--copies`` times) through a CLIP image tower of the real
ViT-B/32 size with random weights (the same forward cost as the trained weights, which are not
on this machine), single-process and on a local Ray cluster of N encoder actors + 1 decoding
CPU. Build: the embedding phase of ``index build`` over a real feature corpus with the shipped
FVMR checkpoint. Each Ray run's output is checked against the single-process output (features
and index vectors within 1e-5; a difference fails the benchmark); the cluster's start is timed
apart.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..indexer import faiss_index
from ..indexer.build import BuildConfig, build_index
from ..indexer.ray_build import RayBuildConfig, RayShardEmbedding
from ..ingest.pipeline import IngestConfig, ingest_videos
from ..ingest.ray_ingest import RayIngestConfig, ingest_videos_ray
from ..ray_cluster import import_ray
from .ingest_throughput import clip_encoder
from .report import (
    machine_info,
    machine_markdown,
    markdown_table,
    progress,
    save_figure,
    write_report,
)


@dataclass(frozen=True)
class RayBenchConfig:
    """One run; ``moment-search benchmark ray`` builds it from its options."""

    videos: tuple[Path, ...] = (Path("../shared/data/videos/v_GGSY1Qvo990.mp4"),
                                Path("../shared/data/videos/v_ZNVhz7ctTq0.mp4"))
    copies: int = 6  # copies of each video (distinct ids): 204 frames, past the start-up costs
    data: Path = Path("../shared/data/charades-sta-clip")  # feature corpus whose build is timed
    out: Path = Path("reports/ray")  # report directory


VIT_B32 = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
               num_attention_heads=12, patch_size=32)
SHARD_VIDEOS = 32  # shards small enough that 2 workers share a few hundred videos evenly
OBJECT_STORE = 500 * 1024 * 1024  # bytes: the local cluster's object store
TOLERANCE = 1e-5


class PhaseTimer:
    """Build progress that records when each phase starts (seconds, perf_counter)."""

    def __init__(self):
        self.starts: list[tuple[str, float]] = []

    def phase(self, name: str, total, unit) -> None:
        self.starts.append((name, time.perf_counter()))

    def advance(self, done: int) -> None:
        pass

    def seconds(self, name: str, end: float) -> float:
        """How long phase ``name`` ran (until the next phase, or ``end``)."""
        names = [n for n, _ in self.starts]
        i = names.index(name)
        stop = self.starts[i + 1][1] if i + 1 < len(self.starts) else end
        return stop - self.starts[i][1]


def save_vit_b32(folder: Path) -> Path:
    """A random-weight CLIP checkpoint of ViT-B/32 size (224 px, 512-d) saved like real
    weights, so that every Ray actor loads it by ``--encoder-path``."""
    encoder = clip_encoder(VIT_B32, 224)
    encoder.model.save_pretrained(folder)
    encoder.processor.save_pretrained(folder)
    return folder


def copy_videos(videos: list[Path], copies: int, folder: Path) -> Path:
    """``copies`` copies of each video under distinct names (distinct video ids)."""
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(copies):
        for video in videos:
            shutil.copyfile(video, folder / f"copy{k}-{video.name}")
    return folder


def run_ingest(inputs: Path, out: Path, clip: Path, workers: int | None) -> dict:
    """One ingest, single-process (``workers`` None) or on the current Ray session."""
    config = IngestConfig(encoder_path=clip, device="cpu", batch=32)
    started = time.perf_counter()
    if workers is None:
        report = ingest_videos([inputs], out, config)
    else:
        report = ingest_videos_ray([inputs], out, config, RayIngestConfig(workers=workers))
    seconds = time.perf_counter() - started
    if report.failed or not report.frames:
        raise RuntimeError(f"ingest of {inputs} failed: {report.failed[:1]}")
    # decode_seconds: time spent decoding, summed over the decoding processes (one CPU each)
    return {"frames": report.frames, "seconds": seconds, "frames_per_s": report.frames / seconds,
            "decode_rows_per_cpu_s": report.frames / report.decode_seconds}


def run_build(corpus: Path, out: Path, workers: int | None) -> dict:
    """One build, single-process or with its embedding on ``workers`` Ray actors."""
    config = BuildConfig(index_kind="flat", device="cpu", shard_videos=SHARD_VIDEOS,
                         query_encoder=False)
    embed = None if workers is None else RayShardEmbedding(RayBuildConfig(workers=workers,
                                                                          device="cpu"))
    timer = PhaseTimer()
    started = time.perf_counter()
    report = build_index(corpus, out, None, config, progress=timer, embed=embed)
    ended = time.perf_counter()
    embedding = timer.seconds("embedding", ended)
    return {"videos": report.n_videos, "proposals": report.n_proposals,
            "build_seconds": ended - started, "embedding_seconds": embedding,
            "proposals_per_s": report.n_proposals / embedding}


def check_same_features(expected: Path, actual: Path) -> float:
    """The largest feature difference between two corpora of the same videos.

    Raises:
        AssertionError: other videos, other shapes, or a difference over ``TOLERANCE``.
    """
    names = sorted(p.name for p in (expected / "features").iterdir())
    assert names == sorted(p.name for p in (actual / "features").iterdir()), "other videos"
    worst = 0.0
    for name in names:
        a, b = np.load(expected / "features" / name), np.load(actual / "features" / name)
        assert a.shape == b.shape, f"{name}: {a.shape} vs {b.shape}"
        worst = max(worst, float(np.abs(a - b).max()))
    assert worst <= TOLERANCE, f"features differ by {worst} > {TOLERANCE}"
    return worst


def check_same_index(expected: Path, actual: Path, n: int) -> float:
    """The largest difference between the two flat indexes' vectors (ids 0..n-1)."""
    vectors = [faiss_index.stored_vectors(faiss_index.read_index(next(d.glob("index-*.faiss"))),
                                          0, n) for d in (expected, actual)]
    worst = float(np.abs(vectors[0] - vectors[1]).max())
    assert worst <= TOLERANCE, f"index vectors differ by {worst} > {TOLERANCE}"
    return worst


def run_ray(workers: int, inputs: Path, corpus: Path, clip: Path, work: Path,
            reference: dict) -> dict:
    """Ingest and build with ``workers`` Ray workers on a fresh local cluster, verified
    against the single-process outputs."""
    ray = import_ray()
    load = os.getloadavg()[0]
    started = time.perf_counter()
    ray.init(address="local", num_cpus=workers + 1, object_store_memory=OBJECT_STORE,
             include_dashboard=False, log_to_driver=False)
    cluster_start = time.perf_counter() - started
    try:
        progress(f"ray, {workers} worker(s): ingest")
        ingest = run_ingest(inputs, work / f"corpus-ray{workers}", clip, workers)
        ingest["max_feature_difference"] = check_same_features(reference["corpus"],
                                                               work / f"corpus-ray{workers}")
        progress(f"ray, {workers} worker(s): build")
        build = run_build(corpus, work / f"index-ray{workers}", workers)
        build["max_vector_difference"] = check_same_index(
            reference["index"], work / f"index-ray{workers}", build["proposals"])
    finally:
        ray.shutdown()
    return {"name": f"ray, {workers} worker(s)", "workers": workers, "load_average_1m": load,
            "cluster_cpus": workers + 1, "cluster_start_seconds": cluster_start,
            "ingest": ingest, "build": build}


def measure(videos: list[Path], copies: int, corpus: Path, work: Path) -> dict:
    """Every configuration's figures (see the module doc)."""
    inputs = copy_videos(videos, copies, work / "videos")
    clip = save_vit_b32(work / "vit-b32-random")
    load = os.getloadavg()[0]
    progress("single process: ingest")
    single_ingest = run_ingest(inputs, work / "corpus-single", clip, None)
    progress("single process: build")
    single_build = run_build(corpus, work / "index-single", None)
    reference = {"corpus": work / "corpus-single", "index": work / "index-single"}
    runs = [{"name": "single process", "workers": None, "load_average_1m": load,
             "ingest": single_ingest,
             "build": single_build}]
    runs += [run_ray(w, inputs, corpus, clip, work, reference) for w in (1, 2)]
    return {"videos": [str(v) for v in videos], "copies": copies, "corpus": str(corpus),
            "shard_videos": SHARD_VIDEOS, "runs": runs}


def markdown(report: dict) -> str:
    rows = [{"name": r["name"], "frames": r["ingest"]["frames"],
             "ingest_s": r["ingest"]["seconds"], "fps": r["ingest"]["frames_per_s"],
             "decode": r["ingest"]["decode_rows_per_cpu_s"],
             "proposals": r["build"]["proposals"], "embed_s": r["build"]["embedding_seconds"],
             "pps": r["build"]["proposals_per_s"], "build_s": r["build"]["build_seconds"],
             "start_s": r.get("cluster_start_seconds"), "load": r["load_average_1m"]}
            for r in report["runs"]]
    table = markdown_table(rows, ["name", "frames", "ingest_s", "fps", "decode", "proposals",
                                  "embed_s", "pps", "build_s", "start_s", "load"],
                           ["run", "frames", "ingest s", "frames/s", "decoded rows/s per CPU",
                            "proposals", "embedding s", "proposals/s", "whole build s",
                            "cluster start s", "load average at start"])
    return "\n".join([
        "# Ray ingest and index build on this machine", "",
        f"Ingest: {len(report['videos'])} real videos x {report['copies']} copies through a "
        "random-weight CLIP of ViT-B/32 size (batch 32); frames/s = frames / wall time of the "
        "whole ingest (encoder loading included); decoded rows/s per CPU = frames / the time spent "
        "decoding (at 1 frame/s; every source frame is decoded), summed over the decoding "
        "processes. Build: the embedding phase of `index build` "
        f"over {report['corpus']} with the shipped FVMR checkpoint ({report['shard_videos']} "
        "videos per shard, flat index). Every Ray output equals the single-process output "
        f"within {TOLERANCE} (checked after each run). A Ray run with N workers runs on a "
        "local cluster of N + 1 logical CPUs (N encoder actors + 1 decoding task): on this "
        "machine they share its physical cores. The load average is the 1-minute load when "
        "each run started (other work on the same cores slows every figure).", "", table, "",
        machine_markdown(report["machine"]), "", f"Command: `{report['command']}`", ""])


def plot(report: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["name"] for r in report["runs"]]
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    axes[0].bar(names, [r["ingest"]["frames_per_s"] for r in report["runs"]])
    axes[0].set_title("ingest: frames/s (ViT-B/32 size)")
    axes[1].bar(names, [r["build"]["proposals_per_s"] for r in report["runs"]])
    axes[1].set_title("index build embedding: proposals/s")
    for axis in axes:
        axis.tick_params(axis="x", labelsize=8)
    save_figure(figure, out / "ray_throughput.png")
    plt.close(figure)


def run(config: RayBenchConfig) -> dict:
    """Measure (see the module doc); write ``ray_throughput.json``, ``.md`` and ``.png``."""
    import_ray()
    if config.copies < 1:
        raise InputError(f"--copies must be >= 1, got {config.copies}", parameter="--copies")
    with tempfile.TemporaryDirectory(prefix="ray-bench-") as work:
        report = measure(list(config.videos), config.copies, config.data, Path(work))
    report["machine"] = machine_info()
    report["command"] = (f"moment-search benchmark ray --copies {config.copies} --data "
                         f"{config.data} --out {config.out} "
                         + " ".join(f"--video {v}" for v in config.videos))
    write_report(config.out, "ray_throughput", report, markdown(report))
    plot(report, Path(config.out))
    return report


if __name__ == "__main__":
    run(RayBenchConfig())
