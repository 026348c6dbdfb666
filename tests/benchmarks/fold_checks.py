"""What the fold-choice benchmarks' tests share (benchmark cascade-cv, ensemble-cv): a checkpoint
stored as if trained on a fold, and the check of a report's fold means. The fold corpora are the
``folds`` fixture (``conftest.py`` beside this file)."""

import json

import pytest

from moment_search.train.loop import selection_score


def as_fold_model(source, path, fold):
    """A copy of the tiny checkpoint ``source`` stored as if trained with ``--fold fold``."""
    stored = json.loads((source / "config.json").read_text())
    stored["extra"]["train_config"] = {"fold": fold}
    path.mkdir()
    (path / "config.json").write_text(json.dumps(stored))
    (path / "model.safetensors").write_bytes((source / "model.safetensors").read_bytes())
    return path


def assert_fold_means(report: dict, metric: str) -> None:
    """Every mean row of ``report`` is the mean over its folds of ``metric``, each fold's score
    beside it."""
    for row in report["rows"]:
        per_fold = [next(r for r in fold if r["setting"] == row["setting"])
                    for fold in report["folds"]]
        scores = [selection_score(r, metric) for r in per_fold]
        assert row["score"] == pytest.approx(sum(scores) / 2)
        assert [row["fold 0 score"], row["fold 1 score"]] == pytest.approx(scores)
