"""A served tiny index whose corpus names raw video files (the two real videos when present)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from ..conftest import SHARED_DATA, write_tiny_corpus

VIDEOS = SHARED_DATA / "videos"


def corpus_with_files(root: Path) -> Path:
    """The tiny corpus plus a manifest; vid000 and vid001 name raw files (real ones if there,
    else none), the others have no file."""
    corpus = write_tiny_corpus(root, n_videos=6)
    files = sorted(VIDEOS.glob("*.mp4")) if VIDEOS.is_dir() else []
    rows = []
    for path in sorted((corpus / "features").glob("*.npy")):
        row = {"video_id": path.stem, "duration": float(len(np.load(path))),
               "feature_rate": 1.0}
        index = int(path.stem[3:])
        if index < len(files):
            row["video_path"] = str(files[index])
        rows.append(json.dumps(row))
    (corpus / "videos.jsonl").write_text("\n".join(rows) + "\n")
    for split in ("train", "val"):  # the manifest is the corpus: a user's corpus
        shutil.move(corpus / f"{split}.jsonl", root.parent / f"{split}.jsonl")
    return corpus


@pytest.fixture(scope="session")
def served_index(tmp_path_factory, tiny_model_dir):
    from moment_search.indexer.build import BuildConfig, build_index

    root = tmp_path_factory.mktemp("serve")
    corpus = corpus_with_files(root / "corpus")
    out = root / "index"
    build_index(corpus, out, tiny_model_dir, BuildConfig(shard_videos=2, device="cpu"))
    return out
