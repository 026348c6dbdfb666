import json

import pytest
from moment_search.cli.app import main

from moment_search.eval.runner import evaluate_model


def test_prior_and_fvmr_on_tiny_corpus(tiny_corpus, tiny_model_dir, tmp_path):
    prior = evaluate_model("prior", tiny_corpus, "val")
    assert prior.metrics["n_queries"] == 2
    pred = tmp_path / "pred.jsonl"
    fvmr = evaluate_model("fvmr", tiny_corpus, "val", tiny_model_dir, pred)
    assert {"TE_ms_median", "CML_ms_median"} <= set(fvmr.timings)
    assert len(pred.read_text().splitlines()) == 2
    fused = evaluate_model("fvmr-pq", tiny_corpus, "val", tiny_model_dir)
    assert fused.metrics["n_queries"] == 2
    control = evaluate_model("fvmr", tiny_corpus, "val", tiny_model_dir, control="shuffled-video")
    assert control.model == "fvmr (shuffled-video)"


def test_unknown_model(tiny_corpus):
    with pytest.raises(ValueError, match="unknown model 'nope'.*fvmr"):
        evaluate_model("nope", tiny_corpus, "val")


def test_cli_evaluate_json(tiny_corpus, capsys):
    assert main(["evaluate", "model", "prior", "--data", str(tiny_corpus), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["model"] == "prior" and "R1@0.5" in payload["metrics"]
    assert main(["evaluate", "model", "prior", "--data", str(tiny_corpus / "nope")]) == 2


def test_localizers_read_videos_at_the_training_feature_rate(tiny_corpus, tiny_model_dir,
                                                             tiny_pln_dir):
    from moment_search.eval.runner import load_localizer

    for name, model in (("fvmr", tiny_model_dir), ("fvmr-pq", tiny_model_dir),
                        ("pln", tiny_pln_dir)):
        assert load_localizer(name, tiny_corpus, model).feature_rate == 1.0
