"""On the 1,000 real Charades-STA videos: milvus-lite's top-100 agrees with FAISS exact search
(marked slow: two full builds; `pytest -m slow`, which the README's test command runs)."""

from __future__ import annotations

import numpy as np
import pytest
from moment_search.indexer.build import BuildConfig, build_index

from moment_search.search.searcher import Searcher

from ..conftest import CHARADES_CLIP, require_shared_data

pytestmark = pytest.mark.slow


def test_milvus_lite_top_100_agrees_with_faiss_exact(tmp_path):
    data = require_shared_data(CHARADES_CLIP)
    settings = {"device": "cpu", "index_kind": "flat"}  # exact on both sides (FAISS / FLAT)
    build_index(data, tmp_path / "faiss", config=BuildConfig(**settings))
    build_index(data, tmp_path / "milvus", config=BuildConfig(**settings, backend="milvus"))
    faiss_side = Searcher.open(tmp_path / "faiss", device="cpu")
    milvus_side = Searcher.open(tmp_path / "milvus", device="cpu")
    from moment_search.data.corpus_dir import open_corpus

    corpus, _ = open_corpus(data, split="val")
    queries = faiss_side.encoder.encode([q.text for q in corpus.queries[:100]])
    exact = faiss_side.index.search(queries, 100)[1]
    found = milvus_side.index.search(queries, 100)[1]
    recall = np.mean([len(np.intersect1d(a, b)) / 100 for a, b in zip(found, exact,
                                                                      strict=True)])
    assert recall >= 0.99, recall
