"""The serve load benchmark end to end on a tiny index: a real server process, real clients."""

from __future__ import annotations

import json

from moment_search.benchmarks import serve_load


def test_serve_load_report(built_index, session_corpus, tmp_path):
    out = tmp_path / "report"
    serve_load.run(serve_load.ServeLoadConfig(built_index, session_corpus, out, clients=(1, 2),
                                              duration=1, batches=(4,)))
    rows = json.loads((out / "serve.json").read_text())["rows"]
    assert [r["clients"] for r in rows] == [1, 2]
    assert all(r["errors"] == 0 and r["requests"] > 0 for r in rows)
    assert all(r["p50_ms"] <= r["p99_ms"] for r in rows)
    assert (out / "serve.md").is_file() and (out / "serve_latency.png").is_file()
