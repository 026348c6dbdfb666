"""A GPU FAISS search returns at most GPU_MAX_K hits per query; the rest are padded as absent
(the GPU search itself is checked by test_faiss_index's gpu test)."""

import numpy as np
import pytest

pytest.importorskip("faiss")

from moment_search.indexer.faiss_search import pad_results  # noqa: E402


def test_pad_results_marks_the_missing_columns_as_absent_hits():
    scores = np.array([[3.0, 2.0]], np.float32)
    ids = np.array([[7, 4]], np.int64)
    padded_scores, padded_ids = pad_results(scores, ids, 4)
    assert padded_ids.tolist() == [[7, 4, -1, -1]] and padded_ids.dtype == np.int64
    assert padded_scores[0, :2].tolist() == [3.0, 2.0] and np.isneginf(padded_scores[0, 2:]).all()
    assert padded_scores.dtype == np.float32
    assert pad_results(scores, ids, 2)[1] is ids  # nothing missing: unchanged
