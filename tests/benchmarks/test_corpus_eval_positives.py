"""``benchmark corpus-eval --positives``: multi-positive R@k beside the single-truth table."""

import json

import pytest
from moment_search.benchmarks import corpus_eval
from moment_search.cli.app import main


def mvmr_file_for(corpus, path):
    """An MVMR-format file over the corpus's val sentences: each gets a positive in the next val
    video (indexed), one in a train video and one in a video that does not exist (both ignored)."""
    rows = [json.loads(line) for line in (corpus / "val.jsonl").read_text().splitlines()]
    data = {}
    for n, row in enumerate(rows):
        other = rows[(n + 1) % len(rows)]
        positives = [[other["vid"], other["query"], other["relevant_windows"][0]],
                     ["vid000", "person does action number 0", [1.0, 4.0]],
                     ["ZZZZZ", "not in this corpus", [0.0, 2.0]]]
        data[row["vid"]] = {"duration": row["duration"], "timestamps": row["relevant_windows"],
                            "sentences": [row["query"].upper()], "pos_moments": [positives],
                            "retrieval_pool": [[row["vid"], other["vid"]]]}
    path.write_text(json.dumps(data))
    return path


def test_report_has_multi_positive_table_and_counts(session_corpus, tiny_model_dir, tmp_path):
    positives = mvmr_file_for(session_corpus, tmp_path / "mvmr.json")
    report = corpus_eval.run(corpus_eval.CorpusEvalConfig(
        session_corpus, tmp_path / "report", model=tiny_model_dir, hub_bank=2,
        positives=positives))
    row = report["rows"][0]
    assert row["setting"] == f"{tiny_model_dir.name} (as is)"
    for k in corpus_eval.MULTI_KS:
        for m in (0.5, 0.7):
            assert row[f"R{k}@{m}"] <= row[f"multi_R{k}@{m}"] <= 100  # positives only add hits
    info = report["positives"]
    assert (info["sentences"], info["matched_exact"], info["unmatched"]) == (3, 3, 0)
    assert (info["file_positives"], info["kept"], info["outside_corpus"]) == (9, 3, 6)
    assert info["positives_mean"] == 2 and info["annotated_only_pct"] == 0
    text = (tmp_path / "report" / "corpus_eval.md").read_text()
    assert "multi R100@0.5" in text and "3 are inside the indexed videos and 6 outside" in text
    saved = json.loads((tmp_path / "report" / "corpus_eval.json").read_text())
    assert saved["positives"]["sha256"] == info["sha256"]


def test_cli_runs_a_checkpoint_as_is_with_positives(session_corpus, tiny_model_dir, tmp_path):
    positives = mvmr_file_for(session_corpus, tmp_path / "mvmr.json")
    out = tmp_path / "cli-report"
    assert main(["benchmark", "corpus-eval", "--data", str(session_corpus), "--out", str(out),
                 "--model", str(tiny_model_dir), "--positives", str(positives)]) == 0
    assert "multi_R1@0.5" in json.loads((out / "corpus_eval.json").read_text())["rows"][0]


def test_cli_rejects_a_malformed_positives_file(session_corpus, tiny_model_dir, tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"vid002": {"timestamps": [[1, 2]], "sentences": ["x"],
                                          "pos_moments": [[["vid005", "y", [3, 1]]]]}}))
    assert main(["benchmark", "corpus-eval", "--data", str(session_corpus), "--out",
                 str(tmp_path / "r"), "--model", str(tiny_model_dir), "--positives", str(bad)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "bad.json" in err and "'vid002', sentence 0, positive 0" in err


@pytest.mark.parametrize("extra", [["--video-weights", "0,1"], ["--hub-weights", "0.5"]])
def test_grid_options_need_fvmr(session_corpus, tmp_path, extra, capsys):
    assert main(["benchmark", "corpus-eval", "--data", str(session_corpus), "--out",
                 str(tmp_path), *extra]) == 2
    assert "compose a grid from --fvmr" in " ".join(capsys.readouterr().err.split())
