"""Connect to a Ray cluster for ``ingest --ray`` and ``index build --ray`` (the ``ray`` extra).

``--ray auto`` is ``ray.init()``'s own choice: the cluster named by ``RAY_ADDRESS`` or started
on this machine with ``ray start``, else a new local cluster for this run. Any other value is a
cluster address: ``host:6379`` (a node of the cluster) or ``ray://host:10001`` (Ray Client).
A process that already called ``ray.init`` (a test, a notebook) keeps its session.

Ray is imported lazily; without it, :func:`import_ray` raises :class:`RayNotInstalled`.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Iterator

from .errors import InputError, UnavailableError

AUTO = "auto"
ACTOR_PREFIX = "moment-search"  # actors: moment-search-<kind>-<run>-<i> (see `ray list actors`)
INSTALL_HINT = "pip install 'moment-search[ray]'"


class RayNotInstalled(InputError):
    """``--ray`` was asked for and Ray is not installed."""


def import_ray():
    """The ``ray`` module.

    Raises:
        RayNotInstalled: Ray is not installed (names the extra to install).
    """
    try:
        import ray
    except ImportError as e:
        raise RayNotInstalled(f"--ray needs Ray, not installed here: {INSTALL_HINT}",
                              parameter="--ray") from e
    return ray


@contextlib.contextmanager
def ray_session(address: str = AUTO) -> Iterator[object]:
    """Connect to the cluster at ``address`` (see the module doc) for the ``with`` block;
    disconnect after, unless the session was already open.

    Raises:
        RayNotInstalled: no Ray.
        InputError: an empty address.
        UnavailableError: no cluster answers at the address (naming it).
    """
    ray = import_ray()
    if not address or not address.strip():
        raise InputError(f"--ray expects '{AUTO}' or a cluster address (host:6379 or "
                         f"ray://host:10001), got {address!r}", parameter="--ray")
    if ray.is_initialized():
        yield ray
        return
    try:
        ray.init(address=None if address == AUTO else address, logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise UnavailableError(f"--ray {address}: no Ray cluster answered ({e}); start one "
                               f"with `ray start --head`, or pass '{AUTO}' for a local one",
                               parameter="--ray") from e
    try:
        yield ray
    finally:
        ray.shutdown()


def cluster_gpus(ray) -> int:
    """GPUs of the connected cluster (whole devices)."""
    return int(ray.cluster_resources().get("GPU", 0))


def cluster_cpus(ray) -> int:
    """CPUs of the connected cluster."""
    return int(ray.cluster_resources().get("CPU", 0))


def check_pool(ray, count: int, gpus: int, cpus_each: float, spare_cpus: int,
               role: str) -> None:
    """Refuse a pool of ``count`` actors the cluster cannot hold: one GPU each where ``gpus``,
    else ``cpus_each`` CPUs each with ``spare_cpus`` left over for the tasks that feed them.

    Raises:
        InputError: naming the asked size and what the cluster has.
    """
    if count < 1:
        raise InputError(f"--ray-workers must be >= 1, got {count}", parameter="--ray-workers")
    cpus = cluster_cpus(ray)
    if gpus and count > gpus:
        most, held = gpus, f"{gpus} GPU(s), one per {role} actor"
    elif not gpus and count * cpus_each + spare_cpus > cpus:
        most = int((cpus - spare_cpus) // cpus_each)
        held = f"{cpus} CPU(s), {cpus_each:g} per {role} actor" + (
            f" and {spare_cpus} kept for decoding" if spare_cpus else "")
    else:
        return
    raise InputError(f"--ray-workers {count}: the cluster has {held}; expected at most {most}",
                     parameter="--ray-workers")


def remote_cause(error: BaseException) -> BaseException:
    """The exception a Ray task or actor raised, for a ``RayTaskError`` (else ``error``): the
    user sees the library's own one-line error, not Ray's traceback of it."""
    cause = getattr(error, "cause", None)
    while isinstance(cause, Exception) and cause is not error:  # a task's error in a task...
        error, cause = cause, getattr(cause, "cause", None)
    return error


@contextlib.contextmanager
def actor_pool(ray, actor_class: type, count: int, options: dict, args: tuple,
               kind: str) -> Iterator[list]:
    """``count`` named actors of ``actor_class(*args)``, killed when the block ends.

    Each is restarted when it dies and its calls are retried (``max_restarts`` and
    ``max_task_retries`` unbounded), so a killed actor costs time, not results.
    """
    run = uuid.uuid4().hex[:8]
    remote = ray.remote(max_restarts=-1, max_task_retries=-1)(actor_class)
    actors = [remote.options(name=f"{ACTOR_PREFIX}-{kind}-{run}-{i}", **options).remote(*args)
              for i in range(count)]
    try:
        yield actors
    finally:
        for actor in actors:
            ray.kill(actor, no_restart=True)
