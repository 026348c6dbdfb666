"""MVMR positives: the reader, the query matching, the corpus filter and multi-positive R@k."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from moment_search.data.corpus import Query
from moment_search.eval.multi_positive import (
    multi_positive_metrics,
    positives_summary,
    query_positives,
)
from moment_search.eval.mvmr import (
    PositiveMoment,
    PositivesError,
    match_queries,
    normalise_text,
    read_mvmr,
)
from moment_search.geometry.spans import temporal_iou
from moment_search.metrics import corpus_metrics
from tests.conftest import CHARADES_CLIP, require_shared_data

# Two videos in the MVMR layout: per sentence a window, a text and [video, text, window] positives.
MVMR_SAMPLE = {
    "AAAAA": {"duration": 30.0,
              "timestamps": [[2.0, 8.0], [20.0, 29.9]],
              "sentences": ["person opens the door.", "person turn off the light."],
              "pos_moments": [[["BBBBB", "a person opens a door.", [10.0, 15.0]],
                               ["ZZZZZ", "person opens the door.", [1.0, 4.0]]],
                              []],
              "retrieval_pool": [["AAAAA", "BBBBB", "ZZZZZ"], ["AAAAA", "BBBBB"]]},
    "BBBBB": {"duration": 20.0,
              "timestamps": [[10.0, 15.0]],
              "sentences": ["a person opens a door."],
              "pos_moments": [[["AAAAA", "person opens the door.", [2.0, 8.0]]]],
              "retrieval_pool": [["BBBBB", "AAAAA"]]},
}
QUERIES = [
    Query("q0", "Person opens the door", "AAAAA", ((2.0, 8.0),)),
    Query("q1", "person turn oof the light.", "AAAAA", ((20.0, 30.0),)),  # typo, end clipped
    Query("q2", "a person opens a door.", "BBBBB", ((11.0, 14.0),)),  # window differs
]


def write_mvmr(tmp_path: Path, data: object, name: str = "mvmr.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def test_read_mvmr_keeps_order_windows_and_positives(tmp_path):
    sentences = read_mvmr(write_mvmr(tmp_path, MVMR_SAMPLE))
    assert list(sentences) == ["AAAAA", "BBBBB"]
    first = sentences["AAAAA"][0]
    assert (first.index, first.text, first.window) == (0, "person opens the door.", (2.0, 8.0))
    assert first.positives == (PositiveMoment("BBBBB", 10.0, 15.0),
                               PositiveMoment("ZZZZZ", 1.0, 4.0))
    assert sentences["AAAAA"][1].positives == ()


def _broken(video: str, **changes) -> dict:
    data = json.loads(json.dumps(MVMR_SAMPLE))
    data[video].update(changes)
    return data


@pytest.mark.parametrize(("data", "named"), [
    ([1, 2], "JSON object keyed by video id"),
    (_broken("AAAAA", sentences=["only one"]), "video 'AAAAA': timestamps, sentences"),
    ({"AAAAA": {"timestamps": [], "sentences": []}}, "video 'AAAAA': expected an object"),
    (_broken("BBBBB", timestamps=[[15.0, 10.0]]), "video 'BBBBB', sentence 0: a window"),
    (_broken("BBBBB", pos_moments=[[["AAAAA", [2.0, 8.0]]]]), "sentence 0, positive 0: expected"),
    (_broken("BBBBB", pos_moments=[[["AAAAA", "x", ["a", 8]]]]), "sentence 0, positive 0"),
    (_broken("AAAAA", sentences=[None, "x"]), "video 'AAAAA', sentence 0: the sentence"),
])
def test_malformed_mvmr_files_name_file_video_and_sentence(tmp_path, data, named):
    path = write_mvmr(tmp_path, data)
    with pytest.raises(PositivesError, match="mvmr.json") as error:
        read_mvmr(path)
    assert named in str(error.value)


def test_a_file_that_is_not_json_is_named(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"AAAAA": ')
    with pytest.raises(PositivesError, match="broken.json: not a JSON file"):
        read_mvmr(path)


def test_queries_match_by_video_window_and_text(tmp_path):
    assert normalise_text("person shoe,ran out.") == normalise_text("Person shoe, ran out")
    matched, counts = match_queries(QUERIES, read_mvmr(write_mvmr(tmp_path, MVMR_SAMPLE)))
    assert (counts.exact, counts.close, counts.unmatched) == (1, 1, 1)
    assert matched["q0"].index == 0 and matched["q1"].index == 1 and "q2" not in matched


def test_positives_outside_the_corpus_are_ignored_and_counted(tmp_path):
    matched, _ = match_queries(QUERIES, read_mvmr(write_mvmr(tmp_path, MVMR_SAMPLE)))
    durations = {"AAAAA": 30.0, "BBBBB": 12.0}  # ZZZZZ not indexed; BBBBB shorter here
    positives, counts = query_positives(QUERIES, matched, durations)
    assert positives["q0"] == (PositiveMoment("AAAAA", 2.0, 8.0),
                               PositiveMoment("BBBBB", 10.0, 12.0))  # clipped to the duration
    assert positives["q2"] == (PositiveMoment("BBBBB", 11.0, 14.0),)  # unmatched: annotated only
    assert counts == {"file_positives": 2, "kept": 1, "outside_corpus": 1}
    summary = positives_summary(positives)
    assert summary["positives_mean"] == pytest.approx(4 / 3) and summary["positives_max"] == 2
    assert summary["annotated_only_pct"] == pytest.approx(200 / 3)


def test_a_hit_on_a_non_annotated_positive_counts_only_with_positives():
    query = Query("q", "person opens the door", "AAAAA", ((2.0, 8.0),))
    positives = {"q": (PositiveMoment("AAAAA", 2.0, 8.0), PositiveMoment("BBBBB", 10.0, 15.0))}
    ranked = [("BBBBB", 10.5, 15.0, 0.9),  # IoU 0.9 with the other-video positive
              ("CCCCC", 2.0, 8.0, 0.8),  # right times, video without a positive
              ("AAAAA", 5.0, 8.0, 0.7)]  # annotated video, IoU 0.5
    single = corpus_metrics({"q": ranked}, [query], ks=(1, 2, 3), ms=(0.5, 0.7))
    multi = multi_positive_metrics({"q": ranked}, positives, ks=(1, 2, 3), ms=(0.5, 0.7))
    assert [single[f"R{k}@0.5"] for k in (1, 2, 3)] == [0.0, 0.0, 100.0]
    assert [multi[f"R{k}@0.5"] for k in (1, 2, 3)] == [100.0, 100.0, 100.0]
    assert single["R3@0.7"] == 0.0 and multi["R1@0.7"] == 100.0


def test_with_only_the_annotated_positive_it_equals_corpus_metrics():
    rng = np.random.default_rng(0)
    queries, predictions = [], {}
    for q in range(20):
        start = float(rng.uniform(0, 20))
        queries.append(Query(q, f"sentence {q}", f"v{q % 4}", ((start, start + 5.0),)))
        starts = rng.uniform(0, 20, size=30)
        predictions[q] = [(f"v{v}", s, s + 5.0, 0.0) for v, s in zip(rng.integers(0, 4, 30),
                                                                    starts, strict=True)]
    positives = {q.qid: (PositiveMoment(q.video_id, *q.windows[0]),) for q in queries}
    single = corpus_metrics(predictions, queries, ks=(1, 10, 30))
    multi = multi_positive_metrics(predictions, positives, ks=(1, 10, 30))
    assert multi == single


def _loop_recall(predictions, positives, k, m):
    """The slow path: every (prediction, positive) pair, one at a time."""
    hits = 0
    for qid, moments in positives.items():
        hits += any(p.video_id == video
                    and temporal_iou([(s, e)], [(p.start_s, p.end_s)])[0, 0] >= m
                    for video, s, e, _ in predictions.get(qid, [])[:k] for p in moments)
    return 100.0 * hits / len(positives)


def test_multi_positive_recall_matches_a_plain_loop():
    rng = np.random.default_rng(1)
    positives, predictions = {}, {}
    for q in range(30):
        starts = rng.uniform(0, 20, size=4)
        positives[q] = tuple(PositiveMoment(f"v{v}", s, s + 4.0)
                             for v, s in zip(rng.integers(0, 5, 4), starts, strict=True))
        starts = rng.uniform(0, 20, size=12)
        predictions[q] = [(f"v{v}", s, s + 4.0, 0.0) for v, s in zip(rng.integers(0, 5, 12),
                                                                     starts, strict=True)]
    multi = multi_positive_metrics(predictions, positives, ks=(1, 5, 12), ms=(0.3, 0.7))
    for k in (1, 5, 12):
        for m in (0.3, 0.7):
            assert multi[f"R{k}@{m}"] == pytest.approx(_loop_recall(predictions, positives, k, m))


def test_multi_positive_metrics_reject_unknown_queries_and_bad_moments():
    positives = {"q": (PositiveMoment("A", 0.0, 1.0),)}
    with pytest.raises(ValueError, match="without positives: 'x'"):
        multi_positive_metrics({"x": []}, positives)
    with pytest.raises(ValueError, match="prediction 0: expected"):
        multi_positive_metrics({"q": [("A", 0.0, 1.0)]}, positives)


REAL_FILE_VARIABLE = "MOMENT_SEARCH_MVMR_FILE"


def test_the_real_mvmr_file_matches_every_val_sentence():
    path = os.environ.get(REAL_FILE_VARIABLE)
    if not path or not Path(path).is_file():
        pytest.skip(f"set {REAL_FILE_VARIABLE} to MVMR's charades_test_mvmr.json "
                    f"(yny0506/Massive-Videos-Moment-Retrieval, CROCS/crocs/mvmr/samples/); "
                    f"got {path!r}")
    from moment_search.data.corpus_dir import open_corpus

    corpus, _ = open_corpus(require_shared_data(CHARADES_CLIP), split="val")
    sentences = read_mvmr(path)
    assert len(sentences) == 1334 and sum(len(s) for s in sentences.values()) == 3720
    matched, counts = match_queries(corpus.queries, sentences)
    assert (counts.exact, counts.close, counts.unmatched) == (452, 1, 0)
