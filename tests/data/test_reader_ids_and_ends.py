"""Readers: query ids keep their JSON type; ends within a rounded duration stay as written."""

from moment_search.data.readers import read_jsonl_queries, read_jsonl_queries_with_report

from .test_readers import qv, write_jsonl


def test_window_ends_within_the_rounding_of_the_duration_are_kept_as_written(tmp_path):
    path = write_jsonl(tmp_path / "val.jsonl", [
        qv("a", duration=30.63, windows=[(25.0, 30.630630630630627)]),  # charades-sta-clip val-2
        qv("b", duration=30.63, windows=[(25.0, 30.64)]),  # 0.01 s past: clipped and counted
    ])
    result = read_jsonl_queries_with_report(path)
    assert [q.windows for q in result.corpus.queries] == [((25.0, 30.630630630630627),),
                                                          ((25.0, 30.63),)]
    assert result.clipped_windows == 1


def test_jsonl_qids_keep_their_type(tmp_path):
    path = write_jsonl(tmp_path / "val.jsonl", [qv(12404), qv("val-1"), qv(-3)])
    assert [q.qid for q in read_jsonl_queries(path).queries] == [12404, "val-1", -3]
