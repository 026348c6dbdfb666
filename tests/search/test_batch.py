"""Batch search: query files, answers in order with their ids' types, both prediction formats."""

import json

import pytest

from moment_search.data.predictions import read_predictions
from moment_search.data.readers import read_jsonl_queries
from moment_search.eval.predictions import score_predictions
from moment_search.search.batch import (
    answer_file,
    corpus_video_ids,
    read_query_file,
    search_file,
    write_predictions,
)


def _write(path, text):
    path.write_text(text)
    return path


def test_txt_qids_are_line_numbers(tmp_path):
    path = _write(tmp_path / "q.txt", "person sits down\n\nperson opens a door\n")
    assert read_query_file(path) == [(1, "person sits down"), (3, "person opens a door")]


def test_jsonl_qids_keep_their_type_and_tvr_keys_work(tmp_path):
    path = _write(tmp_path / "q.jsonl", "\n".join([
        json.dumps({"qid": 12404, "query": "a"}), json.dumps({"qid": "val-1", "query": "b"}),
        json.dumps({"query": "c"}), json.dumps({"desc_id": 90200, "desc": "d"})]) + "\n")
    assert read_query_file(path) == [(12404, "a"), ("val-1", "b"), (3, "c"), (90200, "d")]


@pytest.mark.parametrize(("lines", "expected"), [
    ([{"qid": 1, "query": "a"}, {"qid": "1", "query": "b"}],
     r"line 2: query id '1' is already used on line 1"),
    ([{"qid": 1.5, "query": "a"}], r"line 1: a query id must be a non-empty string or an integer"),
    ([{"qid": 1, "query": " "}], r"line 1: expected a JSON object with a non-empty 'query'"),
    (["{oops"], r"line 1: not valid JSON"),
])
def test_bad_query_lines_name_the_file_and_line(tmp_path, lines, expected):
    text = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    with pytest.raises(ValueError, match=rf"q\.jsonl, {expected}"):
        read_query_file(_write(tmp_path / "q.jsonl", text))


def test_answers_keep_the_file_order_and_equal_one_at_a_time(searcher, session_corpus):
    path = session_corpus / "val.jsonl"
    answers = answer_file(searcher, path, k=5, batch_size=2)
    queries = read_jsonl_queries(path).queries
    assert [(a.qid, a.text) for a in answers] == [(q.qid, q.text) for q in queries]
    for answer in answers:
        alone = searcher.search(answer.text, k=5)
        assert [(m.video_id, m.proposal_id) for m in answer.moments] == [
            (m.video_id, m.proposal_id) for m in alone]
        assert [m.score for m in answer.moments] == pytest.approx([m.score for m in alone],
                                                                   rel=1e-5)
    assert search_file(searcher, path, k=5, batch_size=2) == {a.qid: a.moments for a in answers}
    record = answers[0].to_dict()
    assert set(record) == {"qid", "query", "moments"} and record["moments"][0]["rank"] == 1


def test_tvr_and_jsonl_predictions_score_alike(tmp_path, searcher, session_corpus):
    path = session_corpus / "val.jsonl"
    answers = answer_file(searcher, path, k=10)
    videos = corpus_video_ids(searcher)
    assert sorted(videos) == sorted(read_jsonl_queries(session_corpus / "train.jsonl").videos
                                    | read_jsonl_queries(path).videos)
    jsonl, tvr = tmp_path / "pred.jsonl", tmp_path / "pred.json"
    write_predictions(jsonl, answers)
    write_predictions(tvr, answers, "tvr", videos)
    submission = json.loads(tvr.read_text())
    assert sorted(submission["video2idx"]) == sorted(videos)
    assert [e["desc_id"] for e in submission["VCMR"]] == [a.qid for a in answers]
    assert read_predictions(tvr) == read_predictions(jsonl)
    truth = read_jsonl_queries(path).queries
    assert score_predictions(tvr, truth) == score_predictions(jsonl, truth)
    with pytest.raises(ValueError, match="needs the corpus's video ids"):
        write_predictions(tvr, answers, "tvr")
    with pytest.raises(ValueError, match="unknown prediction format 'csv'"):
        write_predictions(tvr, answers, "csv")
