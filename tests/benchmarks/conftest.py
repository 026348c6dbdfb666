"""Fixtures of the benchmark tests."""

import pytest

from moment_search.train.folds import write_fold_corpus


@pytest.fixture()
def folds(session_corpus, tmp_path):
    """Two fold corpora (fold 0/2 and 1/2) of the session's tiny corpus."""
    return tuple(write_fold_corpus(session_corpus, (k, 2), tmp_path / f"f{k}") for k in (0, 1))
