"""One local Ray cluster for every Ray test (Ray's advice: starting one per test costs seconds
each): 2 CPUs, a 200 MB object store, no dashboard."""

from __future__ import annotations

import pytest

from ..ingest.conftest import real_videos, tiny_clip_dir  # noqa: F401 (fixtures used here)

ROOT_OBJECT_STORE = 200 * 1024 * 1024


@pytest.fixture(scope="session")
def ray_address() -> str:
    """The address of the session's local Ray cluster (this process is its first driver)."""
    ray = pytest.importorskip("ray", reason="the Ray tests need the ray extra: "
                              "pip install 'moment-search[ray]'")
    start_local_cluster(ray)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def start_local_cluster(ray, tries: int = 3) -> None:
    """``ray.init`` of a new local cluster ("local": whatever RAY_ADDRESS or a `ray start` on
    this machine says), tried again when its raylet misses Ray's fixed 30 s startup wait, which
    happened once on a loaded 2-core CI machine (Ray raises a bare Exception for it)."""
    for attempt in range(1, tries + 1):
        try:
            ray.init(address="local", num_cpus=2, object_store_memory=ROOT_OBJECT_STORE,
                     include_dashboard=False, log_to_driver=False, configure_logging=False)
            return
        except Exception as e:
            if "timed out during startup" not in str(e) or attempt == tries:
                raise
            ray.shutdown()
