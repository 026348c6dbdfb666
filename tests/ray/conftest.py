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
    # "local": a new cluster, whatever RAY_ADDRESS or a `ray start` on this machine says
    ray.init(address="local", num_cpus=2, object_store_memory=ROOT_OBJECT_STORE,
             include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()
