import json

import pytest
from moment_search.benchmarks.fvmr_eval import main, parse_models

from moment_search.search.localize import CORPUS_PER_VIDEO


def test_report_on_tiny_corpus(tiny_corpus, tiny_model_dir, tiny_pln_dir, tmp_path):
    assert main(["--data", str(tiny_corpus), "--model", f"tiny={tiny_model_dir}",
                 "--rerank", f"pln={tiny_pln_dir}", "--rerank-videos", "1,2",
                 "--out", str(tmp_path / "out")]) == 0
    report = json.loads((tmp_path / "out" / "fvmr_eval.json").read_text())
    pairings = [(r["model"], r["pairing"]) for r in report["single_video"]]
    assert pairings == [("prior", "real"), ("tiny", "real"), ("tiny", "shuffled-video"),
                        ("tiny", "shuffled-query")]
    assert report["corpus"][0]["videos"] == 2 and "R10@0.5" in report["corpus"][0]
    assert report["per_video"] == CORPUS_PER_VIDEO  # the cap the corpus rows ran under
    assert [r["model"] for r in report["corpus"]][1:] == [
        "tiny + pln (M=1, w=0.5)", "tiny + pln (M=2, w=0.5)"]
    assert "| model | pairing |" in (tmp_path / "out" / "fvmr_eval.md").read_text()


def test_bad_model_argument():
    with pytest.raises(ValueError, match="NAME=CHECKPOINT_DIR"):
        parse_models(["oops"])


def test_cli_passes_the_fusion_weight(tiny_corpus, tiny_model_dir, tiny_pln_dir, tmp_path):
    from cli.app import main as cli

    out = tmp_path / "out"
    assert cli(["benchmark", "fvmr-accuracy", "--data", str(tiny_corpus), "--out", str(out),
                "--model", f"tiny={tiny_model_dir}", "--rerank", f"pln={tiny_pln_dir}",
                "--rerank-videos", "2", "--rerank-weight", "0.75"]) == 0
    report = json.loads((out / "fvmr_eval.json").read_text())
    assert [r["model"] for r in report["corpus"]][1:] == ["tiny + pln (M=2, w=0.75)"]
