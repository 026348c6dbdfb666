"""The prior baseline: grid, fitting on hand-built splits, persistence, and real data."""

import json

import numpy as np
import pytest

from moment_search.data.corpus import Query
from moment_search.eval.prior import PriorBaseline, grid_moments
from moment_search.metrics import single_video_metrics

from ..conftest import CHARADES_CLIP

CHARADES = CHARADES_CLIP


def _query(qid, video_id, *windows):
    return Query(qid=qid, text=f"sentence {qid}", video_id=video_id, windows=tuple(windows))


def _pairwise_iou(spans):
    inter = np.clip(np.minimum(spans[:, None, 1], spans[None, :, 1])
                    - np.maximum(spans[:, None, 0], spans[None, :, 0]), 0, None)
    lengths = spans[:, 1] - spans[:, 0]
    return inter / (lengths[:, None] + lengths[None, :] - inter)


def test_grid_moments_cover_every_cell_range():
    grid = grid_moments(4)
    assert grid.shape == (10, 2)
    assert np.all(grid[:, 0] < grid[:, 1])
    assert [0.0, 1.0] in grid.tolist() and [0.75, 1.0] in grid.tolist()
    assert len({tuple(row) for row in grid.tolist()}) == 10
    with pytest.raises(ValueError, match="n_cells"):
        grid_moments(0)


def test_fit_ranks_the_most_frequent_position_first():
    # Every training moment covers the last quarter of its video. [0.5, 1] also matches each at
    # IoU exactly 0.5 and comes first in grid order, so only the mean-IoU tie-break ranks it second.
    durations = {"v1": 40.0, "v2": 20.0, "v3": 8.0}
    train = [_query(f"q{i}", vid, (0.75 * d, d)) for i, (vid, d) in enumerate(durations.items())]
    prior = PriorBaseline.fit(train, durations, n_cells=4)
    top = prior.predict(100.0, k=3)
    np.testing.assert_allclose(top[0], [75.0, 100.0, 1.0])
    np.testing.assert_allclose(top[1], [50.0, 100.0, 1.0])
    assert top.shape[1] == 3 and np.all(np.diff(top[:, 2]) <= 0)
    np.testing.assert_allclose(prior.predict(50.0, k=3)[:, :2], top[:, :2] / 2)


def test_top_k_are_diverse_after_nms():
    rng = np.random.default_rng(0)
    starts = rng.uniform(0, 20, size=50)
    train = [_query(f"q{i}", "v", (s, s + rng.uniform(2, 10))) for i, s in enumerate(starts)]
    top = PriorBaseline.fit(train, {"v": 30.0}, n_cells=16).predict(30.0, k=10)
    assert len(top) == 10
    iou = _pairwise_iou(top[:, :2])
    assert np.all(iou[~np.eye(len(top), dtype=bool)] <= 0.5)


def test_errors_name_what_is_wrong(tmp_path):
    with pytest.raises(ValueError, match="moments must be"):
        PriorBaseline(moments=np.zeros((0, 2)), scores=np.zeros(0))
    with pytest.raises(ValueError, match="scores must be"):
        PriorBaseline(moments=np.array([[0.0, 0.5]]), scores=np.zeros(2))
    with pytest.raises(ValueError, match="'v9'"):
        PriorBaseline.fit([_query("a", "v9", (0.0, 1.0))], {"v1": 10.0})
    prior = PriorBaseline.fit([_query("a", "v", (0.0, 1.0))], {"v": 4.0}, n_cells=4)
    with pytest.raises(ValueError, match="duration"):
        prior.predict(0.0)
    with pytest.raises(ValueError, match="'q'.*'w'"):
        prior.predict_queries([_query("q", "w", (0.0, 1.0))], {"v": 4.0})
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"kind": "something else"}))
    with pytest.raises(ValueError, match=r"bad\.json"):
        PriorBaseline.load(bad)


def test_save_load_round_trip(tmp_path):
    train = [_query("a", "v", (2.0, 5.0)), _query("b", "v", (0.0, 3.0)),
             _query("c", "w", (10.0, 20.0))]
    prior = PriorBaseline.fit(train, {"v": 10.0, "w": 20.0}, n_cells=8)
    path = tmp_path / "prior.json"
    prior.save(path)
    loaded = PriorBaseline.load(path)
    assert (loaded.n_cells, loaded.match_iou, loaded.nms_iou) == (8, 0.5, 0.5)
    np.testing.assert_array_equal(loaded.predict(37.0, k=5), prior.predict(37.0, k=5))
    assert [p.name for p in tmp_path.iterdir()] == ["prior.json"]


def _read_split(path):
    queries, durations = [], {}
    with open(path, encoding="utf-8") as stream:
        for line in stream:
            record = json.loads(line)
            windows = tuple(tuple(w) for w in record["relevant_windows"])
            queries.append(Query(qid=str(record["qid"]), text=record["query"],
                                 video_id=record["vid"], windows=windows))
            durations[record["vid"]] = float(record["duration"])
    return queries, durations


@pytest.mark.skipif(not CHARADES.is_dir(),
                    reason=f"real data not found at {CHARADES} (expected ../shared/data beside "
                           f"the repo)")
def test_prior_on_charades_sta_val_is_in_the_published_band():
    train, train_durations = _read_split(CHARADES / "train.jsonl")
    val, val_durations = _read_split(CHARADES / "val.jsonl")
    prior = PriorBaseline.fit(train, train_durations)
    metrics = single_video_metrics(prior.predict_queries(val, val_durations, k=5), val)
    assert metrics["n_queries"] == len(val)
    assert 15.0 < metrics["R1@0.5"] < 40.0  # README: about 27 on held-back data
    assert metrics["R5@0.5"] > metrics["R1@0.5"] > metrics["R1@0.7"]
