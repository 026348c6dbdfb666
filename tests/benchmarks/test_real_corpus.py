import json

from moment_search.benchmarks.real_corpus import RealCorpusConfig, run


def test_real_corpus_benchmark_on_tiny_corpus(session_corpus, tiny_model_dir, tmp_path,
                                              monkeypatch):
    # the benchmark indexes with the shipped model; point the default at the tiny one
    monkeypatch.setattr("moment_search.indexer.build.default_model_dir",
                        lambda name: tiny_model_dir)
    run(RealCorpusConfig(session_corpus, tmp_path, "val", k=3))
    report = json.loads((tmp_path / "real_corpus.json").read_text())
    n = report["queries"]
    assert report["top1_agrees_with_brute_force"] == f"{n}/{n}"
    assert report["TE"]["p50_ms"] > 0 and report["CML"]["p50_ms"] > 0
    assert "| step |" in (tmp_path / "real_corpus.md").read_text()
