"""``index build --ray``: the proposal embedding of a build spread over Ray actors.

Everything else is the single-process build (``build.py``): the plan, the lock, the catalog,
the FAISS index trained and filled from the embedding shards, the publish. Only the embedding
phase moves: each actor loads the index's FVMR checkpoint once (one GPU each where the cluster
has GPUs, else one CPU) and embeds whole shards, reading the features itself; the driver writes
each shard's embeddings and Parquet metadata and records it in the catalog, in shard order, as
``ShardEmbedder.write_shard`` does. The shards are the same, so the index is the same.

Faults: an actor that dies is restarted and its shards are embedded again (``max_restarts`` and
``max_task_retries`` unbounded). A killed driver leaves the recorded shards: ``--resume``
continues after them, with or without ``--ray``.

The corpus (its feature files) and the index folder (its ``model/``) must be at the same path
on every node of the cluster (a shared file system).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.corpus import Video
from ..data.features import FeatureStore
from ..ray_cluster import (
    AUTO,
    actor_pool,
    check_pool,
    cluster_cpus,
    cluster_gpus,
    ray_session,
    remote_cause,
)
from .build import ShardEmbedder, load_model, make_embedder
from .catalog import Catalog
from .progress import Progress
from .store import MODEL_DIR

QUEUED_SHARDS = 2  # shards waiting per actor (each holds its embeddings until recorded)


@dataclass
class RayBuildConfig:
    """Where and how wide the embedding of a build runs on Ray."""

    address: str = AUTO  # auto | host:6379 | ray://host:10001 (see moment_search.ray_cluster)
    workers: int | None = None  # embedding actors; None: one per GPU, else the CPUs less one
    device: str = "auto"  # of each actor: auto | cpu | cuda (the GPU Ray gave it)


class ShardEmbedWorker:
    """A Ray actor holding one FVMR checkpoint: embeds whole shards."""

    def __init__(self, model_dir: Path, device: str, store: FeatureStore, batch_videos: int):
        self.error: Exception | None = None
        try:
            model, _ = load_model(model_dir, device)
        except (OSError, ValueError) as e:  # raised by embed(), so the driver shows it
            self.error = FileNotFoundError(f"a Ray worker cannot load the checkpoint "
                                           f"{model_dir} ({e}); the index folder must be at "
                                           f"the same path on every node of the cluster")
            return
        self.embedder = make_embedder(model, store, batch_videos)

    def embed(self, videos: list[Video], expected: list[str]) -> tuple[np.ndarray, list[str]]:
        """See :meth:`.build.ShardEmbedder.embed`."""
        if self.error is not None:
            raise self.error
        return self.embedder.embed(videos, expected)


class RayShardEmbedding:
    """``build.embed_shards`` on a Ray cluster (same arguments, same shards written).

    Args:
        config: see :class:`RayBuildConfig`.
    """

    def __init__(self, config: RayBuildConfig | None = None):
        self.config = config or RayBuildConfig()

    def __call__(self, embedder: ShardEmbedder, catalog: Catalog, index_dir: Path,
                 groups: list[list], first_shard: int, first_id: int,
                 progress: Progress) -> int:
        """Embed and record every group (of PlannedVideo) not yet recorded; returns how many
        were already done.

        Raises:
            RayNotInstalled, InputError, UnavailableError: no Ray, a pool the cluster
                cannot hold, or no cluster.
            FeatureError: a video's features changed since the plan checked them.
        """
        done = catalog.embedded_shards()
        jobs = shard_jobs(groups, first_shard, first_id, len(embedder.cells))
        todo = [job for job in jobs if job[0] not in done]
        progress.phase("embedding", sum(len(g) for g in groups), "videos")
        progress.advance(sum(len(group) for shard, _, group in jobs if shard in done))
        if todo:
            with ray_session(self.config.address) as ray, \
                    self._pool(ray, embedder, Path(index_dir)) as workers:
                self._run(ray, workers, todo, embedder, catalog, Path(index_dir), progress)
        return len(jobs) - len(todo)

    def _pool(self, ray, embedder: ShardEmbedder, index_dir: Path):
        gpus = cluster_gpus(ray) if self.config.device != "cpu" else 0
        count = self.config.workers
        if count is None:
            count = gpus or max(1, cluster_cpus(ray) - 1)
        check_pool(ray, count, gpus, 1, 0, "embedding")
        close = getattr(embedder.store, "close", None)
        if close is not None:
            close()  # an open HDF5 handle cannot travel; the actors reopen the file
        options = {"num_cpus": 1, "num_gpus": 1 if gpus else 0}
        args = (index_dir / MODEL_DIR, self.config.device, embedder.store, embedder.batch_videos)
        return actor_pool(ray, ShardEmbedWorker, count, options, args, "embedder")

    def _run(self, ray, workers: list, todo: list, embedder: ShardEmbedder, catalog: Catalog,
             index_dir: Path, progress: Progress) -> None:
        """Keep ``QUEUED_SHARDS`` shards per actor in flight; record them in shard order."""
        waiting: deque = deque()
        jobs = iter(enumerate(todo))
        while True:
            for number, (shard, first, group) in jobs:
                worker = workers[number % len(workers)]
                call = worker.embed.remote([p.video for p in group], [p.checksum for p in group])
                waiting.append((shard, first, group, call))
                if len(waiting) >= QUEUED_SHARDS * len(workers):
                    break
            if not waiting:
                return
            shard, first, group, call = waiting.popleft()
            try:
                embeddings, checksums = ray.get(call)
            except ray.exceptions.RayTaskError as e:
                raise remote_cause(e) from None
            embedder.record_shard(index_dir, catalog, shard, [p.video for p in group], first,
                                  embeddings, checksums)
            progress.advance(len(group))


def shard_jobs(groups: list[list], first_shard: int, first_id: int,
               n_props: int) -> list[tuple[int, int, list]]:
    """``(shard, first proposal id, group)`` of each group, as ``build.embed_shards`` numbers
    them."""
    jobs = []
    for offset, group in enumerate(groups):
        jobs.append((first_shard + offset, first_id, group))
        first_id += n_props * len(group)
    return jobs
