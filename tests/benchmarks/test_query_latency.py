"""The query-latency benchmark on the tiny index: every section filled, answers checked."""

from __future__ import annotations

import json

from moment_search.benchmarks.query_latency import LatencyConfig, write


def test_query_latency_report_on_a_tiny_index(built_index, session_corpus, tmp_path):
    out = tmp_path / "report"
    config = LatencyConfig(built_index, session_corpus, out, encoders=("pytorch", "fp32", "int8"),
                           cold_runs=1, warm_queries=3, skip_serve=True)
    report = write(config)
    assert report.encoders == ["pytorch", "fp32"]
    assert "int8" in report.skipped  # the tiny index holds no int8 graph
    assert {row["encoder"] for row in report.agreement} == {"pytorch", "fp32"}
    assert all(row["top10_overlap_with_pytorch"] >= 0.99 for row in report.agreement)
    assert [row["command"] for row in report.cold] == ["--help", "query --encoder pytorch",
                                                       "query --encoder fp32"]
    assert all(row["wall_s"] > 0 and row["peak_mb"] > 10 for row in report.cold)
    assert {(row["encoder"], row["threads"]) for row in report.warm} >= {("fp32", 1)}
    saved = json.loads((out / "query_latency.json").read_text())
    assert saved["cold"][0]["command"] == "--help"
    assert (out / "query_latency.md").read_text().startswith("# Query latency")
    assert (out / "query_latency.png").stat().st_size > 0
