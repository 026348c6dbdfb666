"""The shipped checkpoints reproduce the val figures their reports give (the reports README's
status table is generated from, ``scripts/gen_docs.py``'s STATUS; marked slow: each answers the
453 val queries of the real Charades-STA CLIP corpus; `pytest -m slow`, which the README's test
command runs). One query is 0.22 points, so the tolerance is a query."""

import sys
from pathlib import Path

import pytest

from moment_search.eval.runner import evaluate_model
from tests.conftest import CHARADES_CLIP, require_shared_data

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import gen_docs  # noqa: E402

pytestmark = pytest.mark.slow

# model name -> the status table's single-video source of its shipped checkpoint
SOURCES = {row[1].split("-")[0]: row[2] for row in gen_docs.STATUS}


def test_every_shipped_model_has_a_reported_figure():
    assert sorted(SOURCES) == ["drn", "ensemble", "fian", "fvmr", "lpnet", "pln"]
    assert all(SOURCES.values()), SOURCES


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_shipped_model_reproduces_its_reported_val_figures(name):
    data = require_shared_data(CHARADES_CLIP)
    reported = gen_docs.find_row(SOURCES[name])
    metrics = evaluate_model(name, data, "val").metrics
    assert metrics["n_queries"] == 453
    for key in ("R1@0.5", "R1@0.7"):
        assert metrics[key] == pytest.approx(reported[key], abs=0.25), (key, metrics, reported)
