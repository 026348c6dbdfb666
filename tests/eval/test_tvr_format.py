"""TVRetrieval's VCMR submission: the fields and types its evaluator reads, round trip, errors."""

import json

import pytest

from moment_search.data.corpus import Query
from moment_search.data.predictions import read_predictions, write_corpus_predictions
from moment_search.data.tvr_format import read_tvr_predictions, write_tvr_predictions
from moment_search.eval.predictions import score_predictions

ANSWERS = [
    (90200, "Phoebe puts a ponytail in her mouth.",
     [("vidB", 9.0, 12.0, 1.7), ("vidA", 0, 3, 1.2)]),
    (90201, "Ross sits down.", []),
]
CORPUS = ["vidC", "vidA", "vidB"]


def test_fields_and_types_are_what_tvrs_evaluator_reads(tmp_path):
    path = tmp_path / "sub.json"
    write_tvr_predictions(path, ANSWERS, CORPUS)
    submission = json.loads(path.read_text())
    assert set(submission) == {"video2idx", "VCMR"}
    # every corpus video is numbered, the unretrieved vidC too (the evaluator looks GT videos up)
    assert submission["video2idx"] == {"vidA": 0, "vidB": 1, "vidC": 2}
    first = submission["VCMR"][0]
    assert set(first) == {"desc_id", "desc", "predictions"}
    assert first["desc_id"] == 90200 and isinstance(first["desc_id"], int)
    assert first["desc"] == "Phoebe puts a ponytail in her mouth."
    assert first["predictions"] == [[1, 9.0, 12.0, 1.7], [0, 0.0, 3.0, 1.2]]
    row = first["predictions"][0]
    assert isinstance(row[0], int) and all(isinstance(v, float) for v in row[1:])
    assert submission["VCMR"][1] == {"desc_id": 90201, "desc": "Ross sits down.",
                                     "predictions": []}


def test_round_trip_and_scoring_equal_the_jsonl_predictions(tmp_path):
    tvr, jsonl = tmp_path / "sub.json", tmp_path / "pred.jsonl"
    write_tvr_predictions(tvr, ANSWERS, CORPUS)
    write_corpus_predictions(jsonl, {qid: moments for qid, _, moments in ANSWERS})
    kind, read = read_predictions(tvr)
    assert kind == "corpus"
    assert read == {90200: [("vidB", 9.0, 12.0, 1.7), ("vidA", 0.0, 3.0, 1.2)], 90201: []}
    truth = [Query(90200, "x", "vidA", ((0.0, 3.0),)), Query(90201, "y", "vidC", ((1.0, 2.0),))]
    metrics = score_predictions(tvr, truth)
    assert metrics == score_predictions(jsonl, truth)
    assert (metrics["R1@0.5"], metrics["R5@0.5"]) == (0.0, 50.0)


def test_a_moment_of_a_video_outside_the_corpus_is_an_error(tmp_path):
    with pytest.raises(ValueError, match=r"query 90200, moment 1: video 'vidA' is not one of"):
        write_tvr_predictions(tmp_path / "sub.json", ANSWERS, ["vidB"])
    assert not (tmp_path / "sub.json").exists()


@pytest.mark.parametrize(("document", "expected"), [
    ("[1", "not valid JSON"),
    ({"VCMR": []}, "'video2idx' and 'VCMR'"),
    ({"video2idx": {"a": 0, "b": 0}, "VCMR": [{}]}, "distinct integer"),
    ({"video2idx": {"a": 0}, "VCMR": []}, "non-empty list"),
    ({"video2idx": {"a": 0}, "VCMR": [{"desc_id": 1}]}, r"VCMR\[0\]: expected an object"),
    ({"video2idx": {"a": 0}, "VCMR": [{"desc_id": 1.5, "predictions": []}]}, "query id"),
    ({"video2idx": {"a": 0}, "VCMR": [{"desc_id": 1, "predictions": [[3, 0, 1, 1]]}]},
     r"VCMR\[0\] \(desc_id 1\), prediction 0: video index 3 is not in 'video2idx'"),
    ({"video2idx": {"a": 0}, "VCMR": [{"desc_id": 1, "predictions": [["a", 0, 1, 1]]}]},
     r"expected \[video_idx, start_s, end_s, score\]"),
    ({"video2idx": {"a": 0}, "VCMR": [{"desc_id": 1, "predictions": [[0, 5, 1, 1]]}]},
     "start 5 is after end 1"),
    ({"video2idx": {"a": 0}, "VCMR": [{"desc_id": 1, "predictions": []},
                                      {"desc_id": 1, "predictions": []}]},
     r"VCMR\[1\]: desc_id 1 is given twice"),
])
def test_malformed_submissions_name_the_file_and_entry(tmp_path, document, expected):
    path = tmp_path / "bad.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    with pytest.raises(ValueError, match=rf"bad\.json: .*{expected}"):
        read_tvr_predictions(path)
