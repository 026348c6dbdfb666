"""Annotation readers: each policy and each bad input on tiny files (the real files:
test_readers_real)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from moment_search.data.corpus import CorpusError
from moment_search.data.readers import (
    QUERY_NO_VALID_WINDOW,
    QUERY_UNKNOWN_DURATION,
    WINDOW_AFTER_VIDEO_END,
    WINDOW_EMPTY,
    read_activitynet_2dtan,
    read_activitynet_2dtan_with_report,
    read_annotations,
    read_annotations_with_report,
    read_charades_sta,
    read_charades_sta_with_report,
    read_jsonl_queries,
    read_jsonl_queries_with_report,
    read_tacos_2dtan,
    read_tacos_2dtan_with_report,
    read_tvr,
    read_tvr_with_report,
)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def write_jsonl(path: Path, records: list[dict]) -> Path:
    return write(path, "".join(json.dumps(r) + "\n" for r in records))


# --------------------------------------------------------------------------- Charades-STA

CSV = "id,subject,length\nAAAAA,S1,30.0\nBBBBB,S2,\"10.5\"\n"


@pytest.fixture
def charades_csv(tmp_path: Path) -> Path:
    return write(tmp_path / "Charades_v1_train.csv", CSV)


def test_charades_windows_policy(tmp_path, charades_csv):
    txt = write(tmp_path / "charades_sta_train.txt", (
        "AAAAA 1.0 5.5##person opens a door.\n"
        "AAAAA 20.0 31.7##person sits down.\n"   # ends after 30.0: clipped
        "BBBBB 10.5 12.0##person eats.\n"        # starts at the duration: skipped
        "BBBBB 4.0 4.0##person drinks.\n"        # empty window: skipped
        "\n"
        "CCCCC 1.0 2.0##person runs.\n"          # not in the csv: skipped
    ))
    result = read_charades_sta_with_report(txt, charades_csv)
    corpus = result.corpus
    assert [(q.qid, q.windows) for q in corpus.queries] == [
        ("0", ((1.0, 5.5),)), ("1", ((20.0, 30.0),))]
    assert result.clipped_windows == 1
    assert result.skipped == {WINDOW_AFTER_VIDEO_END: 1, WINDOW_EMPTY: 1,
                              QUERY_NO_VALID_WINDOW: 2, QUERY_UNKNOWN_DURATION: 1}
    assert result.skipped_queries == 3
    # BBBBB has no valid query left but is still a video of the corpus
    assert list(corpus.videos) == ["AAAAA", "BBBBB"]
    assert corpus.videos["BBBBB"].duration == 10.5
    assert read_charades_sta(txt, charades_csv).queries == corpus.queries


@pytest.mark.parametrize("bad_line, message", [
    ("AAAAA 1.0 2.0 person walks.", "no '##'"),
    ("AAAAA one 2.0##person walks.", "must be numbers"),
    ("AAAAA 1.0 nan##person walks.", "must be finite"),
    ("AAAAA 1.0##person walks.", "expected 'video_id start end'"),
    ("AAAAA 1.0 2.0##   ", "empty sentence"),
])
def test_charades_malformed_line_names_file_and_line(tmp_path, charades_csv, bad_line, message):
    txt = write(tmp_path / "charades_sta_train.txt", f"AAAAA 1.0 2.0##ok.\n{bad_line}\n")
    with pytest.raises(CorpusError, match=message) as info:
        read_charades_sta(txt, charades_csv)
    assert f"{txt}:2:" in str(info.value)


@pytest.mark.parametrize("csv_text, message", [
    ("id,subject\nAAAAA,S1\n", "missing column"),
    ("id,length\nAAAAA,30.0\nBBBBB,long\n", r"Charades_v1_train.csv:3: length must be a number"),
    ("id,length\nAAAAA,0\n", r"Charades_v1_train.csv:2: length must be positive"),
])
def test_charades_bad_csv(tmp_path, csv_text, message):
    csv_path = write(tmp_path / "Charades_v1_train.csv", csv_text)
    txt = write(tmp_path / "charades_sta_train.txt", "AAAAA 1.0 2.0##ok.\n")
    with pytest.raises(CorpusError, match=message):
        read_charades_sta(txt, csv_path)


def test_charades_missing_files(tmp_path, charades_csv):
    with pytest.raises(CorpusError, match="does not exist"):
        read_charades_sta(tmp_path / "nope.txt", charades_csv)
    txt = write(tmp_path / "charades_sta_train.txt", "AAAAA 1.0 2.0##ok.\n")
    with pytest.raises(CorpusError, match="does not exist"):
        read_charades_sta(txt, tmp_path / "nope.csv")


# --------------------------------------------------------------------------- 2D-TAN JSON


def tacos_json(path: Path, **overrides) -> Path:
    video = {"timestamps": [[30, 90], [0, 300], [290, 400]], "fps": 30.0, "num_frames": 300,
             "sentences": ["He cuts.", "He cooks.", "He serves."]}
    video.update(overrides)
    return write(path, json.dumps({"s13-d21.avi": video}))


def test_tacos_frames_to_seconds(tmp_path):
    result = read_tacos_2dtan_with_report(tacos_json(tmp_path / "test.json"))
    video = result.corpus.videos["s13-d21"]
    assert video.duration == 10.0
    assert [q.windows for q in result.corpus.queries] == [((1.0, 3.0),), ((0.0, 10.0),),
                                                          ((290 / 30, 10.0),)]
    assert [q.qid for q in result.corpus.queries] == ["s13-d21#0", "s13-d21#1", "s13-d21#2"]
    assert result.clipped_windows == 1


@pytest.mark.parametrize("overrides, message", [
    ({"sentences": ["only one"]}, "3 timestamps but 1 sentences"),
    ({"fps": 0}, "fps must be > 0"),
    ({"fps": "30"}, "fps must be a finite number"),
    ({"timestamps": [[30], [0, 300], [290, 400]]}, r"sentence 0: a window must be a \[start,"),
    ({"sentences": ["a", "", "c"]}, "sentence 1: empty sentence"),
])
def test_tacos_malformed(tmp_path, overrides, message):
    path = tacos_json(tmp_path / "test.json", **overrides)
    with pytest.raises(CorpusError, match=message) as info:
        read_tacos_2dtan(path)
    assert f"{path}: video 's13-d21.avi'" in str(info.value)


def test_2dtan_missing_key_names_video_and_key(tmp_path):
    path = write(tmp_path / "val.json", json.dumps(
        {"v_a": {"duration": 5.0, "timestamps": [[0, 1]], "sentences": ["x"]},
         "v_b": {"timestamps": [[0, 1]], "sentences": ["y"]}}))
    with pytest.raises(CorpusError, match=r"video 'v_b': missing key 'duration' \(expected keys"):
        read_activitynet_2dtan(path)
    with pytest.raises(CorpusError, match="missing key 'fps'"):
        read_tacos_2dtan(path)


def test_activitynet_windows_policy_and_empty_video(tmp_path):
    path = write(tmp_path / "val.json", json.dumps({
        "v_a": {"duration": 20.0, "timestamps": [[0, 5.5], [18, 21]], "sentences": [" a.", "b."]},
        "v_b": {"duration": 8.0, "timestamps": [[9, 12]], "sentences": ["c."]},
    }))
    result = read_activitynet_2dtan_with_report(path)
    assert [(q.text, q.windows) for q in result.corpus.queries] == [
        ("a.", ((0.0, 5.5),)), ("b.", ((18.0, 20.0),))]
    assert list(result.corpus.videos) == ["v_a", "v_b"]
    assert result.skipped == {WINDOW_AFTER_VIDEO_END: 1, QUERY_NO_VALID_WINDOW: 1}


def test_2dtan_invalid_json_and_wrong_top_level(tmp_path):
    with pytest.raises(CorpusError, match=r"val.json:2: invalid JSON"):
        read_activitynet_2dtan(write(tmp_path / "val.json", '{"v_a":\n  {"duration": }}'))
    with pytest.raises(CorpusError, match="expected a JSON object of videos"):
        read_activitynet_2dtan(write(tmp_path / "list.json", "[1, 2]"))


# --------------------------------------------------------------------------- JSONL


def qv(qid, vid="vid1", duration=30.0, windows=((1.0, 4.0),), query="a dog runs."):
    return {"qid": qid, "query": query, "vid": vid, "duration": duration,
            "relevant_windows": [list(w) for w in windows]}


def test_jsonl_queries_windows_policy(tmp_path):
    path = write_jsonl(tmp_path / "val.jsonl", [
        qv(7, windows=[(1, 4), (5, 5), (28, 32)]),   # one empty window dropped, one clipped
        qv("x", vid="vid2", duration=10.0, windows=[(12, 14)]),
    ])
    result = read_jsonl_queries_with_report(path)
    queries = result.corpus.queries
    assert [(q.qid, q.windows) for q in queries] == [(7, ((1.0, 4.0), (28.0, 30.0)))]
    assert result.skipped == {WINDOW_EMPTY: 1, WINDOW_AFTER_VIDEO_END: 1, QUERY_NO_VALID_WINDOW: 1}
    assert result.clipped_windows == 1
    assert list(result.corpus.videos) == ["vid1", "vid2"]


def test_jsonl_blank_lines_and_extra_keys_ignored(tmp_path):
    record = dict(qv(1), saliency_scores=[[1, 2, 3]], relevant_clip_ids=[0, 1])
    path = write(tmp_path / "a.jsonl", "\n" + json.dumps(record) + "\n\n")
    assert len(read_jsonl_queries(path).queries) == 1


@pytest.mark.parametrize("line, message", [
    ('{"qid": 1, "query": "x",', "invalid JSON"),
    ("[1, 2]", "expected a JSON object"),
    (json.dumps({k: v for k, v in qv(1).items() if k != "relevant_windows"}),
     r"missing key 'relevant_windows' \(expected keys: qid, query, vid, duration, "
     r"relevant_windows\)"),
    (json.dumps(qv(1, duration="30")), "duration must be a finite number"),
    (json.dumps(dict(qv(1), relevant_windows=[1.0, 4.0])), "a window must be a"),
    (json.dumps(dict(qv(1), relevant_windows="1-4")), "relevant_windows must be a list"),
    (json.dumps(qv(1, query=" ")), "empty sentence"),
    (json.dumps(qv(1, query=5)), "query must be a string"),
    (json.dumps(qv(None)), "qid must be a non-empty string or integer"),
    (json.dumps(qv(0)), "duplicate query id 0$"),
    (json.dumps(qv("0")), r"duplicate query id '0' \(an earlier line has 0\)"),
    (json.dumps(qv(True)), "qid must be a non-empty string or integer, got True"),
    (json.dumps(qv(1, duration=45.0)), "video 'vid1' has two durations"),
    (json.dumps(qv(1, duration=-1.0)), "duration must be a positive number"),
])
def test_jsonl_malformed_names_file_and_line(tmp_path, line, message):
    path = write(tmp_path / "val.jsonl", json.dumps(qv(0)) + "\n\n" + line + "\n")
    with pytest.raises(CorpusError, match=message) as info:
        read_jsonl_queries(path)
    assert f"{path}:3:" in str(info.value)


def tvr(desc_id, vid="show_s01e01_clip_00", duration=60.0, ts=(1.0, 4.0), desc="He sits."):
    return {"vid_name": vid, "duration": duration, "ts": list(ts), "desc": desc,
            "type": "v", "desc_id": desc_id}


def test_tvr_durations_from_duration_file(tmp_path):
    path = write_jsonl(tmp_path / "tvr_val_release.jsonl", [
        tvr(1, ts=(50, 61)), tvr(2, vid="other_clip", duration=20.0)])
    durations = write(tmp_path / "tvr_video2dur_idx.json",
                      json.dumps({"val": {"show_s01e01_clip_00": [60.2, 0]}, "train": {}}))
    plain = read_tvr(path)
    assert plain.videos["show_s01e01_clip_00"].duration == 60.0
    assert [q.windows for q in plain.queries] == [((50.0, 60.0),), ((1.0, 4.0),)]
    result = read_tvr_with_report(path, durations)
    assert result.corpus.videos["show_s01e01_clip_00"].duration == 60.2
    assert [(q.qid, q.windows) for q in result.corpus.queries] == [(1, ((50.0, 60.2),))]
    assert result.skipped == {QUERY_UNKNOWN_DURATION: 1}
    assert "other_clip" not in result.corpus.videos


def test_tvr_malformed(tmp_path):
    record = {k: v for k, v in tvr(1).items() if k != "ts"}
    path = write_jsonl(tmp_path / "tvr.jsonl", [tvr(0), record])
    with pytest.raises(CorpusError, match=rf"{path}:2: missing key 'ts' \(expected keys: vid_name"):
        read_tvr(path)
    good = write_jsonl(tmp_path / "good.jsonl", [tvr(0)])
    bad_durations = write(tmp_path / "d.json", json.dumps({"val": {"show_s01e01_clip_00": 60.0}}))
    with pytest.raises(CorpusError, match=r"split 'val' video 'show_s01e01_clip_00': expected"):
        read_tvr(good, bad_durations)


# --------------------------------------------------------------------------- dispatch


def test_dispatch_charades_finds_sibling_csv(tmp_path, charades_csv):
    txt = write(tmp_path / "charades_sta_train.txt", "AAAAA 1.0 2.0##ok.\n")
    assert len(read_annotations(txt).queries) == 1
    other = write(tmp_path / "mine.txt", "AAAAA 1.0 2.0##ok.\n")
    with pytest.raises(CorpusError, match="pass csv_path"):
        read_annotations(other)
    assert len(read_annotations(other, csv_path=charades_csv).queries) == 1
    test_split = write(tmp_path / "charades_sta_test.txt", "AAAAA 1.0 2.0##ok.\n")
    with pytest.raises(CorpusError, match="Charades_v1_test.csv"):
        read_annotations(test_split)


def test_dispatch_by_content(tmp_path):
    tacos = tacos_json(tmp_path / "test.json")
    assert "s13-d21" in read_annotations(tacos).videos
    anet = write(tmp_path / "val.json", json.dumps(
        {"v_a": {"duration": 5.0, "timestamps": [[0, 1]], "sentences": ["x"]}}))
    assert "v_a" in read_annotations(anet).videos
    tvr_path = write_jsonl(tmp_path / "t.jsonl", [tvr(9)])
    assert read_annotations(tvr_path).queries[0].qid == 9
    qv_path = write_jsonl(tmp_path / "q.jsonl", [qv(3)])
    assert read_annotations_with_report(qv_path).corpus.queries[0].qid == 3
    assert len(read_annotations(write(tmp_path / "empty.jsonl", "\n"))) == 0


def test_dispatch_explicit_format(tmp_path):
    path = write_jsonl(tmp_path / "queries.data", [qv(3)])
    with pytest.raises(CorpusError, match="cannot tell the annotation format"):
        read_annotations(path)
    assert len(read_annotations(path, "qvhighlights").queries) == 1
    with pytest.raises(CorpusError, match="missing key 'vid_name'"):
        read_annotations(path, "tvr")
    with pytest.raises(CorpusError, match="unknown annotation format 'yaml'"):
        read_annotations(path, "yaml")


@pytest.mark.parametrize("name, text, message", [
    ("a.jsonl", json.dumps({"video_id": "x", "duration": 3.0}) + "\n",
     "not a known JSONL annotation format"),
    ("a.json", json.dumps({"v": {"timestamps": [], "sentences": []}}),
     "not a 2D-TAN annotation file"),
    ("a.json", "[]", "not a 2D-TAN annotation file"),
])
def test_dispatch_unknown_content(tmp_path, name, text, message):
    with pytest.raises(CorpusError, match=message):
        read_annotations(write(tmp_path / name, text))
