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


def _with_integer_qids(corpus_dir):
    """The tiny corpus with its val qids rewritten as integers, as lighthouse writes them."""
    path = corpus_dir / "val.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    path.write_text("".join(json.dumps(dict(r, qid=1000 + i)) + "\n" for i, r in enumerate(rows)))
    return [1000 + i for i in range(len(rows))]


def test_integer_qids_come_back_as_integers(tiny_corpus, tmp_path, capsys):
    qids = _with_integer_qids(tiny_corpus)
    pred = tmp_path / "pred.jsonl"
    assert main(["evaluate", "model", "prior", "--data", str(tiny_corpus),
                 "--predictions", str(pred)]) == 0
    assert [json.loads(line)["qid"] for line in pred.read_text().splitlines()] == qids
    capsys.readouterr()
    assert main(["evaluate", "score", str(pred), str(tiny_corpus / "val.jsonl"), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["n_queries"] == len(qids)
    assert {"mIoU", "mAP@0.5", "mAP@0.75", "mAP"} <= set(metrics)


MODEL_DIRS = {"prior": None, "fvmr": "fvmr", "fvmr-pq": "fvmr", "pln": "pln", "pln-s2": "pln",
              "fian": "fian", "drn": "drn", "lpnet": "lpnet", "ensemble": "ensemble"}


def test_every_listed_model_runs_and_is_in_the_help(tiny_corpus, tiny_model_dir, tiny_pln_dir,
                                                     tiny_fian_dir, tiny_drn_dir, tiny_lpnet_dir,
                                                     tiny_ensemble_dir, capsys):
    from moment_search.eval.runner import model_names

    unknown = set(model_names()) - set(MODEL_DIRS)
    assert not unknown, (f"evaluate model --help lists {sorted(unknown)}: give MODEL_DIRS a tiny "
                         f"checkpoint for each so that this test runs it")
    assert main(["evaluate", "model", "--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.replace("│", " ").split())  # unwrapped
    assert "Model name: " + ", ".join(model_names()) + "." in help_text
    dirs = {"fvmr": tiny_model_dir, "pln": tiny_pln_dir, "fian": tiny_fian_dir,
            "drn": tiny_drn_dir, "lpnet": tiny_lpnet_dir, "ensemble": tiny_ensemble_dir,
            None: None}
    for name in model_names():
        result = evaluate_model(name, tiny_corpus, "val", dirs[MODEL_DIRS[name]])
        assert result.metrics["n_queries"] == 2, name


def test_every_model_checks_features_of_the_evaluated_split_only(tiny_corpus, tiny_model_dir,
                                                                 capsys):
    """train.jsonl names videos whose features are elsewhere: the prior (train annotations only)
    and FVMR both answer val; a val video without features stops both, the same way."""
    train_ids = [json.loads(line)["vid"]
                 for line in (tiny_corpus / "train.jsonl").read_text().splitlines()]
    for video_id in train_ids:
        (tiny_corpus / "features" / f"{video_id}.npy").unlink()
    for name, model in (("prior", None), ("fvmr", tiny_model_dir)):
        assert evaluate_model(name, tiny_corpus, "val", model).metrics["n_queries"] == 2
    assert main(["evaluate", "model", "prior", "--data", str(tiny_corpus)]) == 0
    val_id = json.loads((tiny_corpus / "val.jsonl").read_text().splitlines()[0])["vid"]
    (tiny_corpus / "features" / f"{val_id}.npy").unlink()
    for name, model in (("prior", None), ("fvmr", tiny_model_dir)):
        with pytest.raises(ValueError, match=rf"1 video\(s\) have no features, e.g. "
                                             rf"\['{val_id}'\]"):
            evaluate_model(name, tiny_corpus, "val", model)
    capsys.readouterr()
    assert main(["evaluate", "model", "prior", "--data", str(tiny_corpus)]) == 2
    assert "have no features" in capsys.readouterr().err
