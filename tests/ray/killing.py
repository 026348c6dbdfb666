"""Kill a running actor of this package's Ray pools for real (``ray.kill``, restart allowed)."""

from __future__ import annotations


def kill_named_actor(prefix: str) -> str:
    """Kill the first live actor whose name starts with ``prefix``; returns its name.

    Raises:
        AssertionError: no such actor is alive.
    """
    import ray

    for entry in ray.util.list_named_actors(all_namespaces=True):
        if entry["name"].startswith(prefix):
            actor = ray.get_actor(entry["name"], namespace=entry["namespace"])
            ray.kill(actor, no_restart=False)
            return entry["name"]
    raise AssertionError(f"no live actor named {prefix}*")
