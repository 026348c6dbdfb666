"""The query-latency benchmark on the tiny index: every section filled, answers checked."""

from __future__ import annotations

import json

from moment_search.benchmarks.query_latency import LatencyConfig, write


def test_query_latency_report_on_a_tiny_index(built_index, session_corpus, tmp_path):
    out = tmp_path / "report"
    config = LatencyConfig(built_index, session_corpus, out,
                           encoders=("pytorch", "fp32", "int8", "fp16"), cold_runs=1,
                           warm_queries=3, skip_serve=True, baseline_index=built_index)
    report = write(config)
    assert report.encoders == ["pytorch", "fp32", "int8"]
    assert "fp16" in report.skipped  # the index holds no such graph: said, not run
    assert {row["encoder"] for row in report.agreement} == {"pytorch", "fp32", "int8"}
    overlap = {row["encoder"]: row["top10_overlap_with_pytorch"] for row in report.agreement}
    assert overlap["pytorch"] == 1.0 and overlap["fp32"] >= 0.99
    assert [row["command"] for row in report.cold] == [
        "--help", "baseline (flat): query --encoder pytorch", "query --encoder pytorch",
        "query --encoder fp32", "query --encoder int8"]
    assert all(row["wall_s"] > 0 and row["peak_mb"] > 10 for row in report.cold)
    assert {(row["encoder"], row["threads"]) for row in report.warm} >= {
        ("baseline", 1), ("pytorch", 1), ("fp32", 1), ("int8", 1)}
    assert all(row["encode_p50_ms"] > 0 for row in report.warm)
    saved = json.loads((out / "query_latency.json").read_text())
    assert saved["cold"][0]["command"] == "--help"
    assert (out / "query_latency.md").read_text().startswith("# Query latency")
    assert (out / "query_latency.png").stat().st_size > 0
