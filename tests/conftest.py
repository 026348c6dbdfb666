"""Shared fixtures: the path of ../shared/data and a tiny synthetic corpus written to disk."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CHARADES_CLIP = SHARED_DATA / "charades-sta-clip"


def require_shared_data(path: Path = SHARED_DATA) -> Path:
    """Skip the calling test, saying why, when ../shared/data (or a part of it) is absent."""
    if not path.exists():
        pytest.skip(f"real data not found at {path} (expected ../shared/data beside the repo)")
    return path


def write_tiny_corpus(root: Path, n_videos: int = 6, width: int = 8, seed: int = 0) -> Path:
    """A corpus directory: features/ (.npy, 1 feature/s), train.jsonl and val.jsonl.

    Each query's window sits where its video's features are "bright" (a planted signal), so a
    model can learn it.
    """
    rng = np.random.default_rng(seed)
    (root / "features").mkdir(parents=True, exist_ok=True)
    splits = {"train": [], "val": []}
    for v in range(n_videos):
        video_id = f"vid{v:03d}"
        length = int(rng.integers(12, 40))
        features = rng.normal(size=(length, width)).astype(np.float32)
        start = int(rng.integers(0, length - 6))
        end = start + int(rng.integers(3, 6))
        features[start:end, v % width] += 3.0
        np.save(root / "features" / f"{video_id}.npy", features)
        split = "val" if v % 3 == 2 else "train"
        splits[split].append({
            "qid": f"{split}-{v}", "query": f"person does action number {v % width}",
            "vid": video_id, "duration": float(length), "relevant_windows": [[start, end]],
        })
    for split, rows in splits.items():
        with open(root / f"{split}.jsonl", "w") as handle:
            handle.writelines(json.dumps(r) + "\n" for r in rows)
    return root


@pytest.fixture()
def tiny_corpus(tmp_path: Path) -> Path:
    """A fresh tiny corpus directory (see :func:`write_tiny_corpus`)."""
    return write_tiny_corpus(tmp_path / "corpus")
