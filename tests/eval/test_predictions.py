"""Prediction files: round trips, kind detection, malformed lines, atomic writes, scoring."""

import json

import numpy as np
import pytest

from moment_search.data.corpus import Query
from moment_search.data.predictions import (
    read_predictions,
    write_corpus_predictions,
    write_single_predictions,
)
from moment_search.eval.predictions import score_predictions


def _query(qid, video_id, *windows):
    return Query(qid=qid, text=f"sentence {qid}", video_id=video_id, windows=tuple(windows))


def _write_lines(path, *records):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def test_single_round_trip(tmp_path):
    preds = {
        "q0": np.array([[1.5, 4.25, 0.9], [0.0, 2.0, 0.1]]),
        "q1": np.zeros((0, 3)),
        "q2": np.array([[3.0, 5.0]]),  # no scores
    }
    path = tmp_path / "single.jsonl"
    write_single_predictions(path, preds)
    kind, read = read_predictions(path)
    assert kind == "single"
    assert list(read) == ["q0", "q1", "q2"]
    for qid, windows in preds.items():
        np.testing.assert_array_equal(read[qid], windows)
    first = json.loads(path.read_text().splitlines()[0])
    assert first == {"qid": "q0", "pred_relevant_windows": [[1.5, 4.25, 0.9], [0.0, 2.0, 0.1]]}


def test_corpus_round_trip(tmp_path):
    preds = {"q0": [("vidA", 1.0, 3.5, 0.75), ("vidB", 0.0, 2.0, 0.5)], "q1": []}
    path = tmp_path / "corpus.jsonl"
    write_corpus_predictions(path, preds)
    kind, read = read_predictions(path)
    assert kind == "corpus"
    assert read == preds


def test_qids_keep_their_json_type_both_ways(tmp_path):
    path = tmp_path / "p.jsonl"
    write_single_predictions(path, {7: np.array([[0.0, 1.0, 1.0]]), "val-8": np.zeros((0, 3))})
    assert [json.loads(line)["qid"] for line in path.read_text().splitlines()] == [7, "val-8"]
    assert list(read_predictions(path)[1]) == [7, "val-8"]
    write_corpus_predictions(path, {12404: [("v", 0.0, 1.0, 0.5)]})
    assert json.loads(path.read_text())["qid"] == 12404
    assert list(read_predictions(path)[1]) == [12404]


@pytest.mark.parametrize("qid", [True, 1.5, None, ""])
def test_write_refuses_a_qid_that_is_not_a_string_or_integer(tmp_path, qid):
    with pytest.raises(ValueError, match="query id must be a non-empty string or an integer"):
        write_single_predictions(tmp_path / "p.jsonl", {qid: np.zeros((0, 3))})


def test_the_same_id_as_integer_and_string_is_a_repeat(tmp_path):
    path = _write_lines(tmp_path / "p.jsonl", {"qid": 7, "pred_relevant_windows": []},
                        {"qid": "7", "pred_relevant_windows": []})
    with pytest.raises(ValueError, match=r"line 2: query '7' already has predictions .*as 7"):
        read_predictions(path)


def test_ids_of_another_type_than_the_ground_truth_are_named(tmp_path):
    queries = [_query(7, "v1", (0.0, 10.0))]
    path = _write_lines(tmp_path / "p.jsonl", {"qid": "7", "pred_relevant_windows": [[0, 9, 1]]})
    with pytest.raises(ValueError, match=r"'7'.*ground truth has them as ints, e\.g\. 7"):
        score_predictions(path, queries)
    write_single_predictions(path, {7: np.array([[0.0, 9.0, 1.0]])})
    assert score_predictions(path, queries)["R1@0.7"] == 100.0


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ({"pred_moments": []}, "'qid'"),
        ({"qid": "a"}, "exactly one of"),
        ({"qid": "a", "pred_moments": [], "pred_relevant_windows": []}, "exactly one of"),
        ({"qid": "a", "pred_relevant_windows": [[0, 1, 2, 3]]}, "window 0.*start_s, end_s, score"),
        ({"qid": "a", "pred_relevant_windows": [[5, 1, 0.3]]}, "window 0.*start_s <= end_s"),
        ({"qid": "a", "pred_relevant_windows": [[0, 1, 0.3], [0, 1]]}, "window 1.*has 2 values"),
        ({"qid": "a", "pred_relevant_windows": [[0, 1, "high"]]}, "score"),
        ('{"qid": "a", "pred_relevant_windows": [[0, NaN, 1]]}', "finite"),
        ({"qid": "a", "pred_moments": [[0, 1, 2, 3]]}, "moment 0.*video id"),
        ({"qid": "a", "pred_moments": [["v", 0, 1]]}, "moment 0.*video_id, start_s"),
        ({"qid": "a", "pred_moments": {"v": 1}}, "must be a list"),
    ],
)
def test_malformed_line_names_file_line_and_expectation(tmp_path, line, expected):
    good = {"qid": "ok", "pred_relevant_windows": [[0, 1, 1]]}
    if isinstance(line, dict) and "pred_moments" in line and "pred_relevant_windows" not in line:
        good = {"qid": "ok", "pred_moments": [["v", 0, 1, 1]]}
    path = _write_lines(tmp_path / "bad.jsonl", good, line)
    with pytest.raises(ValueError, match=rf"bad\.jsonl, line 2: .*{expected}"):
        read_predictions(path)


def test_mixed_kinds_and_repeated_qids_are_errors(tmp_path):
    mixed = _write_lines(tmp_path / "mixed.jsonl",
                         {"qid": "a", "pred_relevant_windows": [[0, 1, 1]]}, "",
                         {"qid": "b", "pred_moments": [["v", 0, 1, 1]]})
    with pytest.raises(ValueError, match=r"mixed\.jsonl, line 3: a corpus prediction in a file "
                                         r"of single"):
        read_predictions(mixed)
    repeated = _write_lines(tmp_path / "rep.jsonl",
                            {"qid": "a", "pred_relevant_windows": []},
                            {"qid": "a", "pred_relevant_windows": []})
    with pytest.raises(ValueError, match=r"line 2: query 'a' already"):
        read_predictions(repeated)


def test_empty_file_is_an_error(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("\n")
    with pytest.raises(ValueError, match="empty"):
        read_predictions(path)


def test_failed_write_leaves_old_file_and_no_temp(tmp_path):
    path = tmp_path / "p.jsonl"
    write_single_predictions(path, {"a": np.array([[0.0, 1.0, 1.0]])})
    before = path.read_text()
    with pytest.raises(ValueError, match="'b'"):
        write_single_predictions(path, {"a": np.zeros((1, 3)), "b": np.zeros((1, 5))})
    with pytest.raises(ValueError, match="'b'"):
        write_corpus_predictions(path, {"b": [("v", 0.0, 1.0)]})
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["p.jsonl"]
    with pytest.raises(FileNotFoundError):
        write_single_predictions(tmp_path / "missing" / "p.jsonl", {})


def test_score_predictions_picks_the_metric_by_kind(tmp_path):
    queries = [_query("a", "v1", (0.0, 10.0)), _query("b", "v2", (0.0, 10.0))]
    single = tmp_path / "single.jsonl"
    write_single_predictions(single, {"a": np.array([[0.0, 9.0, 1.0]])})
    metrics = score_predictions(single, queries)
    assert metrics["R1@0.7"] == 50.0 and metrics["mIoU"] == pytest.approx(45.0)
    # query a: AP 1 up to IoU 0.9, 0 at 0.95; query b has no prediction (AP 0)
    assert metrics["mAP@0.5"] == 50.0 and metrics["mAP"] == pytest.approx(45.0)
    assert list(metrics)[-1] == "n_queries"
    corpus = tmp_path / "corpus.jsonl"
    write_corpus_predictions(corpus, {"a": [("v2", 0.0, 10.0, 1.0)], "b": [("v2", 0, 8, 1)]})
    metrics = score_predictions(corpus, queries)
    assert metrics["R1@0.7"] == 50.0 and "mIoU" not in metrics and "mAP" not in metrics
    assert {"R1@0.5", "R5@0.5", "R10@0.5", "R100@0.5"} <= set(metrics)
    write_corpus_predictions(corpus, {"c": []})
    with pytest.raises(ValueError, match=r"corpus\.jsonl: .*'c'"):
        score_predictions(corpus, queries)
