"""``ingest --ray``: decode on Ray tasks, encode on a pool of long-lived encoder actors, write as
the single-process path writes (:mod:`.pipeline`).

One Ray task per video decodes it (one CPU) and sends its frames, in the same batches as the
single-process path, to the encoder actors; each actor loads the encoder once (one GPU each
where the cluster has GPUs, else one CPU). The driver (this process) holds the corpus lock and
writes each finished video's features and manifest row through :class:`.corpus.CorpusWriter`,
so ``--resume``, the atomic writes and the lock are the single-process path's.

Faults: an actor that dies is restarted and its calls are retried (``max_restarts`` and
``max_task_retries`` unbounded); a decoding task whose worker dies is retried by Ray
(``TASK_RETRIES``); either way the video's features are those of an uninterrupted run. A killed
driver loses the videos in flight: ``--resume`` does them again.

The video files are read by the workers: on a cluster of several machines they must be at the
same path on every node (a shared file system), as must a weights folder (``--encoder-path``).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..ray_cluster import (
    AUTO,
    actor_pool,
    check_pool,
    cluster_cpus,
    cluster_gpus,
    import_ray,
    ray_session,
    remote_cause,
)
from .corpus import CorpusWriter, check_output
from .decode import VideoDecodeError, probe
from .encoders import EncoderIdentity, load_encoder
from .pipeline import (
    IngestConfig,
    IngestProgress,
    IngestReport,
    VideoOutcome,
    assign_ids,
    check_config,
    check_resume,
    check_same_encoder,
    find_videos,
    frame_batches,
    skipped_outcome,
    work_left,
    write_video,
)

TASK_RETRIES = 3  # times Ray reruns a decoding task whose worker died
QUEUED_BATCHES = 2  # frame batches a decoding task may have waiting per encoder actor


@dataclass
class RayIngestConfig:
    """Where and how wide an ingest runs on Ray."""

    address: str = AUTO  # auto | host:6379 | ray://host:10001 (see moment_search.ray_cluster)
    workers: int | None = None  # encoder actors; None: one per GPU of the cluster, else 1
    cpus_per_worker: float = 1.0  # CPUs an encoder actor holds when the cluster has no GPU


class FrameEncoderWorker:
    """A Ray actor holding one loaded frame encoder (see :func:`.encoders.load_encoder`)."""

    def __init__(self, name: str, path: Path | None, device: str):
        self.error: Exception | None = None
        try:
            self.encoder = load_encoder(name, path, device)
        except Exception as e:  # handed to the driver by identity(), as the library raised it
            self.error = e

    def identity(self) -> EncoderIdentity | Exception:
        """The encoder's identity, or the error that stopped it from loading."""
        return self.error if self.error is not None else self.encoder.identity

    def encode(self, frames: list[np.ndarray]) -> tuple[np.ndarray, float]:
        """(n, D) float32 features of ``frames`` and the seconds the encoder took."""
        started = time.perf_counter()
        features = self.encoder(frames)
        return features, time.perf_counter() - started


def decode_video(video_id: str, path: Path, fps: float, batch: int, workers: list,
                 first_worker: int) -> dict:
    """A Ray task: decode one video and have the workers encode its frames, in order.

    Returns:
        ``{"video_id", "status": "done" | "failed", "error", "duration" (s), "features"
        (T, D), "decode_seconds", "encode_seconds"}``.
    """
    ray = import_ray()
    result = {"video_id": video_id, "status": "failed", "error": None, "duration": 0.0,
              "features": None, "decode_seconds": 0.0, "encode_seconds": 0.0}
    decoding, calls = 0.0, []
    try:
        started = time.perf_counter()
        duration = probe(path).duration
        for k, frames in enumerate(frame_batches(path, fps, batch)):
            decoding += time.perf_counter() - started
            worker = workers[(first_worker + k) % len(workers)]
            calls.append(worker.encode.remote(frames))
            _wait_for_room(ray, calls, QUEUED_BATCHES * len(workers))
            started = time.perf_counter()  # the time spent waiting for room is not decoding
    except VideoDecodeError as e:
        return dict(result, error=str(e))
    decoding += time.perf_counter() - started
    encoded = ray.get(calls)
    result.update(status="done", duration=duration,
                  features=np.concatenate([features for features, _ in encoded]),
                  decode_seconds=decoding,
                  encode_seconds=sum(seconds for _, seconds in encoded))
    return result


def _wait_for_room(ray, calls: list, queued: int) -> None:
    """Block until one of the latest ``queued + 1`` calls is done (bounds the frames a task has
    in the object store)."""
    pending = calls[-queued - 1:] if len(calls) > queued else []
    if pending:
        ray.wait(pending, num_returns=len(pending) - queued)


def encoder_pool(ray, config: IngestConfig, ray_config: RayIngestConfig):
    """A context manager giving the encoder actors (see ``ray_cluster.actor_pool``).

    Raises:
        InputError: a pool size the cluster cannot hold (naming both).
    """
    gpus = cluster_gpus(ray) if config.device != "cpu" else 0
    count = ray_config.workers if ray_config.workers is not None else max(gpus, 1)
    options = {"num_cpus": 1, "num_gpus": 1} if gpus else {"num_cpus": ray_config.cpus_per_worker}
    check_pool(ray, count, gpus, options["num_cpus"], 1, "encoder")
    return actor_pool(ray, FrameEncoderWorker, count, options,
                      (config.encoder, config.encoder_path, config.device), "encoder")


def loaded_identity(ray, workers: list) -> EncoderIdentity:
    """The identity of the workers' encoder, once every worker has loaded it.

    Raises:
        EncoderError, EncoderWeightsMissing: as :func:`.encoders.load_encoder` raised them.
    """
    loaded = ray.get([worker.identity.remote() for worker in workers])
    for item in loaded:
        if isinstance(item, Exception):
            raise item
    return loaded[0]


def ingest_videos_ray(inputs: list[str | Path], out: str | Path,
                      config: IngestConfig | None = None,
                      ray_config: RayIngestConfig | None = None,
                      progress: IngestProgress | None = None) -> IngestReport:
    """:func:`.pipeline.ingest_videos` on a Ray cluster: same corpus, same checks, same errors.

    Raises:
        RayNotInstalled: Ray is not installed.
        ValueError: see :func:`.pipeline.ingest_videos`.
        InputError, UnavailableError: a cluster that cannot hold the pool, or none answers.
    """
    import_ray()  # before anything else: without Ray, --ray fails at once
    config, ray_config = config or IngestConfig(), ray_config or RayIngestConfig()
    progress = progress or IngestProgress()
    check_config(config)
    videos = assign_ids(find_videos(inputs))
    check_output(out, config.resume)
    with ray_session(ray_config.address) as ray, contextlib.ExitStack() as stack:
        workers = identity = None
        if work_left(out, videos):  # the encoders load before the folder is touched
            workers = stack.enter_context(encoder_pool(ray, config, ray_config))
            identity = loaded_identity(ray, workers)
        writer = stack.enter_context(CorpusWriter(out, resume=config.resume))
        check_resume(writer, videos, config, config.encoder)
        if identity is not None:
            check_same_encoder(writer, identity)  # before any write, as the single path
        report = IngestReport(Path(out))
        todo = {}
        for video_id, path in videos.items():
            skipped = skipped_outcome(writer, video_id, path)
            if skipped is None:
                todo[video_id] = path
            else:
                _finish(report, progress, skipped)
        if todo:
            _run(ray, writer, todo, (workers, identity), config, report, progress)
    order = {video_id: i for i, video_id in enumerate(videos)}
    report.outcomes.sort(key=lambda o: order[o.video_id])
    return report


def _run(ray, writer: CorpusWriter, todo: dict[str, Path], pool: tuple[list, EncoderIdentity],
         config: IngestConfig, report: IngestReport, progress: IngestProgress) -> None:
    """Decode and encode every video of ``todo``, writing each as it finishes; at most one
    video per CPU of the cluster is in flight (each holds a few frame batches in the object
    store; a task waiting for its encoders frees its CPU for the next video's decoding)."""
    workers, identity = pool
    task = ray.remote(max_retries=TASK_RETRIES)(decode_video).options(num_cpus=1)
    in_flight = max(2, cluster_cpus(ray))
    queue = iter(enumerate(todo.items()))
    running: dict = {}
    while True:
        for number, (video_id, path) in queue:
            running[task.remote(video_id, path, config.fps, config.batch, workers,
                                number)] = path
            if len(running) >= in_flight:
                break
        if not running:
            return
        ready, _ = ray.wait(list(running), num_returns=1)
        path = running.pop(ready[0])
        try:
            result = ray.get(ready[0])
        except ray.exceptions.RayTaskError as e:
            raise remote_cause(e) from None
        outcome = _write(writer, result, path, identity, config.fps, report, progress)
        _finish(report, progress, outcome)


def _write(writer: CorpusWriter, result: dict, path: Path, identity: EncoderIdentity,
           fps: float, report: IngestReport, progress: IngestProgress) -> VideoOutcome:
    """Write one decoded and encoded video (or return its failure)."""
    video_id = result["video_id"]
    if result["status"] == "failed":
        return VideoOutcome(video_id, path, "failed", error=result["error"])
    features = result["features"]
    progress.start_video(video_id, len(features))
    report.frames += len(features)
    report.decode_seconds += result["decode_seconds"]
    report.encode_seconds += result["encode_seconds"]
    progress.advance(len(features))
    return write_video(writer, video_id, path, result["duration"], features, identity, fps)


def _finish(report: IngestReport, progress: IngestProgress, outcome: VideoOutcome) -> None:
    report.outcomes.append(outcome)
    progress.finish_video(outcome)
