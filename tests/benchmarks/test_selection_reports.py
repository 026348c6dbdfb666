"""The cross-validated choices: FVMR's teachers (benchmark teachers) and the corpus terms'
weights (benchmark corpus-cv), on tiny data."""

import json

import pytest
import torch
from moment_search.benchmarks import corpus_cv, teachers

from moment_search.errors import InputError
from moment_search.eval.runner import evaluate_model
from moment_search.models.base import CheckpointError
from moment_search.models.fvmr import FVMR, FVMRConfig
from moment_search.models.video_text import VideoText, VideoTextConfig
from moment_search.train.loop import selection_score
from tests.benchmarks.fold_checks import as_fold_model, assert_fold_means


def fvmr_checkpoint(path, seed, fold=None):
    """An untrained FVMR checkpoint; ``fold``: stored as trained with ``--fold fold``."""
    torch.manual_seed(seed)
    model = FVMR(FVMRConfig(feature_dim=8, n_clips=8, hidden_dim=16, space_dim=8, dropout=0.0))
    return model.eval().save_pretrained(path, extra={"feature_rate": 1.0, "max_tokens": 32,
                                                     "train_config": {"fold": fold}})


def test_teachers_choose_on_folds_and_report_val(session_corpus, folds, tmp_path):
    runs = {name: [fvmr_checkpoint(tmp_path / f"{name}{i}", seed, f"{i}/2") for i in range(2)]
            for name, seed in (("a", 0), ("b", 1))}
    configs = tuple(f"{name}={runs[name][0]},{runs[name][1]}|{runs[name][0]},{runs[name][1]}"
                    for name in runs)
    report = teachers.run(teachers.TeachersConfig(tmp_path / "out", configs, folds,
                                                  data=session_corpus))
    scores = {}
    for name, dirs in runs.items():
        per_fold = [evaluate_model("fvmr", fold, "val", d).metrics
                    for fold, d in zip(folds, dirs, strict=True)]
        scores[name] = sum(selection_score(m, "R1@0.5+R1@0.7") for m in per_fold) / 2
    assert scores["a"] != scores["b"]  # else the choice below would test nothing
    rows = {r["setting"]: r for r in report["settings"]}
    for name in runs:
        assert rows[name]["fold_score"] == pytest.approx(scores[name])
        assert len(rows[name]["val"]) == 2 and rows[name]["val R1@0.5 sd"] >= 0
    assert report["chosen"] == max(scores, key=scores.get)
    assert json.loads((tmp_path / "out" / "teachers.json").read_text())["chosen"] == \
        report["chosen"]
    assert "(chosen)" in (tmp_path / "out" / "teachers.md").read_text()


@pytest.mark.parametrize("configs, expected", [
    (("a=x|y",), "1 fold runs for 2"),
    (("a=x,y",), "LABEL=FOLD_RUN"),
])
def test_teachers_refuse_a_malformed_setting(configs, expected, folds, tmp_path):
    with pytest.raises(InputError, match=expected):
        teachers.run(teachers.TeachersConfig(tmp_path / "out", configs, folds))


def test_corpus_cv_means_the_folds_and_chooses(folds, tmp_path):
    fvmr = tuple(fvmr_checkpoint(tmp_path / f"fvmr{k}", k, f"{k}/2") for k in (0, 1))
    torch.manual_seed(0)
    video = VideoText(VideoTextConfig(feature_dim=8, hidden_dim=16, embed_dim=6)).eval()
    videos = tuple(video.save_pretrained(tmp_path / f"vt{k}", extra={"data": str(folds[k])})
                   for k in (0, 1))
    video_dir = videos[0]
    report = corpus_cv.run(corpus_cv.CorpusCVConfig(
        tmp_path / "out", folds, fvmr, videos, video_weights=(0.0, 1.0),
        hub_weights=(0.0, 0.5), hub_bank=1))
    assert len(report["rows"]) == 4
    fold_reports = [json.loads((tmp_path / "out" / f"fold{k}" / "corpus_eval.json").read_text())
                    for k in (0, 1)]
    for row in report["rows"]:
        per_fold = [next(r for r in f["rows"] if r["setting"] == row["setting"])
                    for f in fold_reports]
        assert row["R10@0.5"] == pytest.approx((per_fold[0]["R10@0.5"] +
                                                per_fold[1]["R10@0.5"]) / 2)
        assert row["score"] == pytest.approx(sum(
            selection_score(r, "R10@0.5+R10@0.7") for r in per_fold) / 2)
    best = max(report["rows"], key=lambda r: r["score"])
    assert report["chosen"] == {"beta": best["beta"], "gamma": best["gamma"]}
    with pytest.raises(InputError, match="one --fvmr and one --video-text per --fold-data"):
        corpus_cv.run(corpus_cv.CorpusCVConfig(tmp_path / "x", folds, fvmr[:1], (video_dir,)))


def test_a_fold_run_scored_on_another_fold_is_refused(session_corpus, folds, tmp_path):
    wrong = fvmr_checkpoint(tmp_path / "wrong", 0)
    config = json.loads((wrong / "config.json").read_text())
    config["extra"]["train_config"] = {"fold": "1/2"}  # trained without fold 1, not fold 0
    (wrong / "config.json").write_text(json.dumps(config))
    with pytest.raises(InputError, match="holds out fold 0/2"):
        teachers.run(teachers.TeachersConfig(tmp_path / "out", (f"a={wrong},{wrong}|{wrong}",),
                                             folds, data=session_corpus))


def test_cascade_cv_means_the_folds_chooses_w_and_stores_it(folds, tmp_path, tiny_pln_dir):
    from moment_search.benchmarks import cascade_cv

    from moment_search.search.rerank import stored_fusion_weight

    search = tuple(fvmr_checkpoint(tmp_path / f"fvmr{k}", k, f"{k}/2") for k in (0, 1))
    rerankers = tuple(as_fold_model(tiny_pln_dir, tmp_path / f"pln{k}", f"{k}/2")
                      for k in (0, 1))
    report = cascade_cv.run(cascade_cv.CascadeCVConfig(
        tmp_path / "out", "pln", folds, search, rerankers, weights=(0.0, 0.5, 1.0), videos=2,
        model=tiny_pln_dir, write_model=tmp_path / "pln-w"))
    assert [r["setting"] for r in report["rows"]] == ["index alone", "w = 0", "w = 0.5",
                                                      "w = 1"]
    assert_fold_means(report, "R10@0.5+R10@0.7")
    # w = 1 keeps the fast path's order: the same figures as the index alone
    rows = {r["setting"]: r for r in report["rows"]}
    assert rows["w = 1"]["R10@0.5"] == rows["index alone"]["R10@0.5"]
    best = max(report["rows"][1:], key=lambda r: r["score"])
    assert report["chosen_weight"] == best["w"]
    assert "fold 1 score" in (tmp_path / "out" / "cascade_cv.md").read_text()
    stored = json.loads((tmp_path / "pln-w" / "config.json").read_text())["extra"]
    assert stored_fusion_weight(stored) == report["chosen_weight"]
    assert (tmp_path / "pln-w" / "model.safetensors").read_bytes() == \
        (tiny_pln_dir / "model.safetensors").read_bytes()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".pln-w")]


def test_cascade_cv_checks_everything_before_evaluating(folds, tmp_path, tiny_pln_dir,
                                                       session_corpus):
    from moment_search.benchmarks import cascade_cv

    search = tuple(fvmr_checkpoint(tmp_path / f"fvmr{k}", k, f"{k}/2") for k in (0, 1))
    swapped = tuple(as_fold_model(tiny_pln_dir, tmp_path / f"pln{k}", f"{1 - k}/2")
                    for k in (0, 1))
    with pytest.raises(InputError, match="holds out fold 0/2"):
        cascade_cv.run(cascade_cv.CascadeCVConfig(tmp_path / "out", "pln", folds, search,
                                                  swapped))
    rerankers = swapped[::-1]
    wrong = {
        "not a reranker": (dict(reranker="fvmr"), InputError),
        "a corpus that is not a fold": (dict(fold_data=(folds[0], session_corpus)), InputError),
        "one fold twice": (dict(fold_data=(folds[0], folds[0])), InputError),
        "a checkpoint of another model": (dict(fold_models=(search[0], rerankers[1])),
                                          CheckpointError),
        "a missing --model": (dict(model=tmp_path / "missing"), CheckpointError),
        "a fold model as --model": (dict(model=rerankers[0]), InputError),
    }
    for options, error in wrong.values():
        config = dict(out=tmp_path / "out", reranker="pln", fold_data=folds, search=search,
                      fold_models=rerankers, model=tiny_pln_dir)
        config.update(options)
        with pytest.raises(error):
            cascade_cv.run(cascade_cv.CascadeCVConfig(**config))
    assert not (tmp_path / "out").exists()
    with pytest.raises(InputError, match="one --search and one --fold-model per --fold-data"):
        cascade_cv.CascadeCVConfig(tmp_path / "out", "pln", folds, search[:1], swapped)
    with pytest.raises(InputError, match="--write-model needs --model"):
        cascade_cv.CascadeCVConfig(tmp_path / "out", "pln", folds, search, swapped,
                                   write_model=tmp_path / "w")


def test_cascade_cv_cli_refuses_unpaired_folds(tmp_path, capsys):
    from moment_search.cli.app import main

    assert main(["benchmark", "cascade-cv", "--out", str(tmp_path / "r"), "--reranker", "drn",
                 "--fold-data", str(tmp_path), "--search", str(tmp_path),
                 "--fold-model", str(tmp_path)]) == 2
    assert "two folds or more" in capsys.readouterr().err


def test_per_video_cv_means_the_folds_and_chooses_on_the_fast_path(folds, tmp_path,
                                                                    tiny_pln_dir):
    from moment_search.benchmarks import per_video_cv
    from moment_search.benchmarks.fvmr_eval import CORPUS_COLUMNS, corpus_row, split_searcher

    from moment_search.data.corpus_dir import open_corpus
    from moment_search.registry import shipped_checkpoint
    from moment_search.search.rerank import stored_fusion_weight

    search = tuple(fvmr_checkpoint(tmp_path / f"fvmr{k}", k, f"{k}/2") for k in (0, 1))
    rerankers = tuple(as_fold_model(tiny_pln_dir, tmp_path / f"pln{k}", f"{k}/2")
                      for k in (0, 1))
    report = per_video_cv.run(per_video_cv.PerVideoCVConfig(
        tmp_path / "out", folds, search, caps=(None, 1, 2), rerankers={"pln": rerankers}))
    assert [r["setting"] for r in report["rows"]] == [
        "fast path, cap none", "pln, cap none", "fast path, cap 1", "pln, cap 1",
        "fast path, cap 2", "pln, cap 2"]
    assert_fold_means(report, "R10@0.5+R10@0.7")
    fast = {r["cap"]: r["score"] for r in report["rows"] if r["path"] == "fast path"}
    assert len(set(fast.values())) > 1  # else the choice below would test nothing
    # "none" is no cap at all (not the searcher's default one), "2" a hard cap of 2
    rows = {r["setting"]: r for r in report["folds"][0]}
    none, two = rows["fast path, cap none"], rows["fast path, cap 2"]
    assert none["R100@0.5"] != two["R100@0.5"]
    with split_searcher(folds[0], "val", search[0]) as searcher:
        corpus, _ = open_corpus(folds[0], split="val")
        for per_video, row in ((searcher.n_proposals, none), (2, two)):
            direct = corpus_row(searcher, folds[0], "val", corpus.queries, "x",
                                {"per_video": per_video})
            assert all(direct[c] == row[c] for c in CORPUS_COLUMNS)
    best = max(fast.values())
    assert fast[per_video_cv.cap_label(report["chosen_cap"])] == best
    # ties go to the larger cap (none above all)
    larger = [c for c in (None, 2, 1) if fast[per_video_cv.cap_label(c)] == best][0]
    assert report["chosen_cap"] == larger
    shipped = json.loads((shipped_checkpoint("pln") / "config.json").read_text())["extra"]
    assert report["fusion_weights"] == {"pln": stored_fusion_weight(shipped)}
    assert "Chosen: **" in (tmp_path / "out" / "per_video_cv.md").read_text()


def test_per_video_cv_searches_without_a_cap_for_none():
    from moment_search.benchmarks.per_video_cv import cap_options

    assert cap_options(None, 100) == {"per_video": 100} and cap_options(2, 100) == {"per_video": 2}


def test_per_video_cv_ties_go_to_the_larger_cap():
    from moment_search.benchmarks.per_video_cv import FAST_PATH, choose

    rows = [{"cap": c, "path": FAST_PATH, "score": s}
            for c, s in (("none", 3.0), ("1", 5.0), ("2", 5.0), ("3", 4.0))]
    assert choose(rows, (None, 1, 2, 3)) == 2
    rows[0]["score"] = 5.0
    assert choose(rows, (None, 1, 2, 3)) is None


def test_per_video_cv_checks_everything_before_evaluating(folds, tmp_path, tiny_pln_dir):
    from moment_search.benchmarks import per_video_cv

    search = tuple(fvmr_checkpoint(tmp_path / f"fvmr{k}", k, f"{k}/2") for k in (0, 1))
    swapped = tuple(as_fold_model(tiny_pln_dir, tmp_path / f"pln{k}", f"{1 - k}/2")
                    for k in (0, 1))
    with pytest.raises(InputError, match="holds out fold 0/2"):
        per_video_cv.run(per_video_cv.PerVideoCVConfig(tmp_path / "out", folds, search,
                                                       rerankers={"pln": swapped}))
    with pytest.raises(InputError, match="holds out"):
        per_video_cv.run(per_video_cv.PerVideoCVConfig(tmp_path / "out", folds, search[::-1]))
    assert not (tmp_path / "out").exists()
    with pytest.raises(InputError, match="one --search per --fold-data"):
        per_video_cv.PerVideoCVConfig(tmp_path / "out", folds, search[:1])
    with pytest.raises(InputError, match="positive integers or none"):
        per_video_cv.PerVideoCVConfig(tmp_path / "out", folds, search, caps=(0, 2))
    with pytest.raises(InputError, match="one checkpoint per fold"):
        per_video_cv.PerVideoCVConfig(tmp_path / "out", folds, search,
                                      rerankers={"pln": swapped[:1]})


def test_per_video_cv_cli_refuses_a_malformed_rerank(tmp_path, capsys):
    from moment_search.cli.app import main

    assert main(["benchmark", "per-video-cv", "--out", str(tmp_path / "r"), "--fold-data",
                 str(tmp_path), "--fold-data", str(tmp_path), "--search", str(tmp_path),
                 "--search", str(tmp_path), "--rerank", "drn"]) == 2
    assert "NAME=DIR0,DIR1" in capsys.readouterr().err
