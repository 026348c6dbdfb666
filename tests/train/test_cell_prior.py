"""The per-cell prior of corpus search (train.cell_prior, FVMR.cell_prior, benchmark position-bias):
the fit moves the top-1 cells toward the ground truth's, the prior rides in the search vectors'
constant column, and an index built from a checkpoint with a prior answers with base + prior."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from moment_search.benchmarks.position_bias import PositionBiasConfig, run
from moment_search.indexer.build import BuildConfig, build_index
from moment_search.indexer.query_encoder import PyTorchFallbackWarning

from moment_search.data.corpus_dir import open_corpus
from moment_search.errors import InputError
from moment_search.models.fvmr import FVMR, FVMRConfig
from moment_search.search.searcher import Searcher
from moment_search.train.cell_prior import PriorConfig, fit_cell_prior, with_cell_prior
from moment_search.train.compose import compose

from ..conftest import write_tiny_corpus


def biased_scores(n_queries: int = 400, n_cells: int = 10, seed: int = 0):
    """Best-per-cell scores where cell 0 carries +1.5 for every query; truth uniform."""
    rng = np.random.default_rng(seed)
    best = rng.normal(size=(n_queries, n_cells)).astype(np.float32)
    best[:, 0] += 1.5
    return best, rng.integers(0, n_cells, n_queries)


def test_the_fit_moves_top_cells_toward_the_truth():
    best, truth = biased_scores()
    before = np.mean(best.argmax(1) == 0)
    prior = fit_cell_prior(best, truth, PriorConfig(steps=60))
    after = np.mean((best + prior).argmax(1) == 0)
    assert before > 0.4 and after < 0.2  # truth: 0.1
    assert prior[0] == prior.min() and abs(prior.mean()) < 1e-6


def test_strength_scales_the_prior_and_zero_means_none():
    best, truth = biased_scores()
    full = fit_cell_prior(best, truth, PriorConfig(strength=1.0))
    half = fit_cell_prior(best, truth, PriorConfig(strength=0.5))
    np.testing.assert_allclose(half, full / 2, atol=1e-6)
    assert not fit_cell_prior(best, truth, PriorConfig(strength=0.0)).any()


def test_the_fit_refuses_mismatched_inputs():
    best, truth = biased_scores()
    with pytest.raises(ValueError, match="one per query"):
        fit_cell_prior(best, truth[:-1])
    with pytest.raises(ValueError, match="one per query"):
        fit_cell_prior(best, truth + best.shape[1])


@pytest.mark.parametrize("hub", [0, 3])
def test_the_prior_is_added_by_the_one_inner_product(hub):
    torch.manual_seed(0)
    config = FVMRConfig(feature_dim=8, n_clips=8, hidden_dim=16, space_dim=8, dropout=0.0,
                        hub_bank=hub, hub_weight=0.5 if hub else 0.0)
    base = FVMR(config).eval()
    if hub:
        base.hub_queries.normal_()
    prior = np.linspace(-1, 1, base.n_proposals).astype(np.float32)
    model = with_cell_prior(base, prior)
    clips, tokens = torch.randn(2, 8, 8), torch.randn(3, 5, 384)
    mask = torch.ones(3, 5, dtype=torch.bool)
    with torch.inference_mode():
        want = torch.einsum("vpd,qd->qvp", base.encode_moments(clips), base.encode_queries(
            tokens, mask)) + torch.from_numpy(prior)
        got = torch.einsum("vpd,qd->qvp", model.encode_moments(clips), model.encode_queries(
            tokens, mask))
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert model.embedding_dim % 8 == 0


def test_single_video_evaluation_ranks_as_a_search_within_one_video(tmp_path):
    from moment_search.data.corpus_dir import open_corpus as open_dir
    from moment_search.eval.fvmr_localizer import FVMRLocalizer

    corpus_dir = write_tiny_corpus(tmp_path / "corpus", n_videos=4)
    corpus, store = open_dir(corpus_dir, "val")
    torch.manual_seed(0)
    base = FVMR(FVMRConfig(feature_dim=8, n_clips=8, hidden_dim=16, space_dim=8,
                           dropout=0.0)).eval()
    prior = np.linspace(-3, 3, base.n_proposals).astype(np.float32)  # would reorder cells
    scored = []
    for model in (base, with_cell_prior(base, prior)):
        localizer = FVMRLocalizer(model)
        localizer.prepare(corpus, store, sorted(corpus.videos))
        query = localizer.encode_query("a person opens a door")
        scored.append(np.stack([localizer.score_video(query, v) for v in sorted(corpus.videos)]))
    np.testing.assert_allclose(scored[1], scored[0], atol=1e-5)  # the prior left out
    assert localizer.queries.one_video.constant_column == (model.embedding_dim - 1
                                                          - model._padding)


def test_a_prior_survives_save_and_load(tmp_path):
    base = FVMR(FVMRConfig(feature_dim=8, n_clips=8, hidden_dim=16, space_dim=8)).eval()
    prior = np.arange(base.n_proposals, dtype=np.float32)
    with_cell_prior(base, prior).save_pretrained(tmp_path / "m")
    loaded = FVMR.from_pretrained(tmp_path / "m")
    assert loaded.config.cell_prior
    np.testing.assert_array_equal(loaded.proposal_prior.numpy(), prior)
    with pytest.raises(ValueError, match="a finite prior of 36 cells expected"):
        with_cell_prior(base, prior[:-1])


def test_position_bias_benchmark_writes_a_checkpoint_an_index_can_serve(tmp_path, monkeypatch,
                                                                        tiny_model_dir):
    from moment_search.benchmarks import position_bias

    # an untrained model's folds may well choose no prior (the rule has its own test below);
    # this test is about the checkpoint written when a strength is chosen
    chosen = []
    monkeypatch.setattr(position_bias, "choose", lambda means: chosen.append(means) or
                        (1.0, "fixed by the test"))
    corpus = write_tiny_corpus(tmp_path / "corpus", n_videos=15)
    config = PositionBiasConfig(out=tmp_path / "report", data=corpus, model=tiny_model_dir,
                                write_model=tmp_path / "with-prior")
    report = run(config)
    assert [m["setting"] for m in chosen[0]] == ["none", *config.strengths]
    assert report["chosen_strength"] == 1.0 and report["fitted_on"] == "train"
    assert {r["fold"] for r in report["folds"]} == set(range(5))
    assert [r["search vectors"] for r in report["causes"]] == ["all terms"]  # FVMR term only
    assert report["causes"][0]["top1_start0"] == report["val"]["before"]["top1_start0"]
    assert (tmp_path / "report" / "position_bias.md").read_text().count("|") > 20
    prior = np.array(report["prior"], dtype=np.float32)
    assert FVMR.read_config(tmp_path / "with-prior")[1]["cell_prior"]["strength"] == \
        report["chosen_strength"]
    index = tmp_path / "index"
    build_index(corpus, index, tmp_path / "with-prior", BuildConfig(device="cpu",
                                                                    index_kind="flat"))
    # its ONNX query encoder (fp32: the 8-bit one rounds) carries the constant column
    searcher = Searcher.open(index, device="cpu", encoder="fp32")
    plain = tmp_path / "plain"
    build_index(corpus, plain, tiny_model_dir, BuildConfig(device="cpu", index_kind="flat",
                                                           query_encoder=False))
    with pytest.warns(PyTorchFallbackWarning):
        plain = Searcher.open(plain, device="cpu")
    query, every = "person does action number 3", searcher.n_proposals
    base = {m.proposal_id: m.score for m in plain.search(query, k=every, nms=1.0,
                                                         candidates=every)}
    moments = searcher.search(query, k=every, nms=1.0, candidates=every)
    assert len(moments) == len(base) == every
    for moment in moments:
        cell = moment.proposal_id % len(prior)  # every tiny video has the same dense map
        assert moment.score == pytest.approx(base[moment.proposal_id] + prior[cell], abs=1e-4)


def test_compose_drops_a_prior_fitted_for_other_terms(tmp_path, tiny_model_dir):
    base = FVMR.from_pretrained(tiny_model_dir)
    with_prior = tmp_path / "with-prior"
    with_cell_prior(base, np.ones(base.n_proposals, np.float32)).save_pretrained(
        with_prior, extra={"cell_prior": {"strength": 1.0}})
    out = compose(with_prior, tmp_path / "composed")
    config, extra = FVMR.read_config(out)
    assert not config.cell_prior and "cell_prior" not in extra
    composed = FVMR.from_pretrained(out)
    clips = torch.randn(1, 8, 8)
    with torch.inference_mode():
        torch.testing.assert_close(composed.encode_moments(clips), base.encode_moments(clips))


@pytest.mark.parametrize("strengths", [(), (0.0,), (-1.0, 1.0)])
def test_position_bias_refuses_bad_strengths(tmp_path, strengths):
    with pytest.raises(InputError, match="strengths must be one or more numbers"):
        PositionBiasConfig(out=tmp_path, strengths=strengths)


def fold_checkpoint(tiny_model_dir, out, fold: str, shift: float = 0.0):
    """The tiny model saved as if trained with ``--fold fold`` (what a fold run records), its
    first weight moved by ``shift`` so that each fold model can be told apart."""
    model = FVMR.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        next(model.parameters()).add_(shift)
    _, extra = FVMR.read_config(tiny_model_dir)
    model.save_pretrained(out, extra={**extra, "train_config": {"fold": fold}})
    return out


def first_weight(model) -> float:
    return float(next(model.parameters()).detach().flatten()[0])


@pytest.fixture
def held_out(tmp_path, tiny_model_dir):
    """A tiny corpus, its two fold corpora and a fold model for each (different weights)."""
    from moment_search.train.folds import write_fold_corpus

    corpus = write_tiny_corpus(tmp_path / "corpus", n_videos=30)
    folds = tuple(write_fold_corpus(corpus, (k, 2), tmp_path / f"f{k}") for k in range(2))
    models = tuple(fold_checkpoint(tiny_model_dir, tmp_path / f"m{k}", f"{k}/2", 0.1 * (k + 1))
                   for k in range(2))
    return corpus, folds, models


def test_the_prior_is_chosen_and_fitted_on_held_out_folds(tmp_path, tiny_model_dir, held_out,
                                                          monkeypatch):
    from moment_search.benchmarks import position_bias

    corpus, folds, models = held_out
    embedded, fitted = [], []
    embed, rows = position_bias.embed_split, position_bias.setting_rows
    monkeypatch.setattr(position_bias, "embed_split", lambda model, data, split, rate: (
        embedded.append((first_weight(model), Path(data).name, split)) or
        embed(model, data, split, rate)))
    monkeypatch.setattr(position_bias, "setting_rows", lambda fold, fit_on, measured, strengths: (
        fitted.append((fold, [s.videos for s in fit_on], measured.videos)) or
        rows(fold, fit_on, measured, strengths)))
    config = PositionBiasConfig(out=tmp_path / "report", data=corpus, model=tiny_model_dir,
                                fold_models=models, fold_data=folds, fit_on="held-out",
                                write_model=tmp_path / "with-prior")
    report = run(config)
    base = first_weight(FVMR.from_pretrained(tiny_model_dir))
    # val through the model given; each fold's held-out split through its own fold model
    assert embedded == [(base, "corpus", "val"), (pytest.approx(base + 0.1), "f0", "val"),
                        (pytest.approx(base + 0.2), "f1", "val")]
    # each fold measured with a prior fitted on the other fold only
    assert [(fold, len(fit_on)) for fold, fit_on, _ in fitted] == [(0, 1), (1, 1)]
    assert all(measured not in fit_on for _, fit_on, measured in fitted)
    assert fitted[0][1] == [fitted[1][2]] and fitted[1][1] == [fitted[0][2]]
    assert report["fitted_on"] == "held-out folds" and report["n_folds"] == 2
    assert [(r["fold"], r["setting"]) for r in report["folds"]] == [
        (k, s) for k in range(2) for s in ("none", *config.strengths)]
    assert "--fold-model" in report["config"]["command"]
    assert "trained without that fold" in (tmp_path / "report" / "position_bias.md").read_text()
    record = FVMR.read_config(tmp_path / "with-prior")[1]["cell_prior"]
    assert record["fitted_on"] == "held-out folds"


def test_each_prior_is_fitted_on_its_own_models_training_sentences(tmp_path, tiny_model_dir,
                                                                    held_out, monkeypatch):
    from moment_search.benchmarks import position_bias

    corpus, folds, models = held_out
    embedded, fitted, final = [], [], []
    embed, rows, fit = position_bias.embed_split, position_bias.setting_rows, position_bias.fit
    monkeypatch.setattr(position_bias, "embed_split", lambda model, data, split, rate: (
        embedded.append((first_weight(model), Path(data).name, split)) or
        embed(model, data, split, rate)))
    monkeypatch.setattr(position_bias, "setting_rows", lambda fold, fit_on, measured, strengths: (
        fitted.append((fold, fit_on, measured)) or rows(fold, fit_on, measured, strengths)))
    monkeypatch.setattr(position_bias, "choose", lambda means: (1.0, "fixed by the test"))
    monkeypatch.setattr(position_bias, "fit", lambda splits, strength=1.0: (
        final.append(splits) or fit(splits, strength)))
    config = PositionBiasConfig(out=tmp_path / "report", data=corpus, model=tiny_model_dir,
                                fold_models=models, fold_data=folds,
                                write_model=tmp_path / "with-prior",
                                write_fold_models=tmp_path / "fold-priors")
    assert config.fit_on == "own-train" and config.command().endswith("--fit-on own-train")
    assert "--write-fold-models" in config.command()
    report = run(config)
    base = first_weight(FVMR.from_pretrained(tiny_model_dir))
    # each fold model embeds its held-out fold and its own training part; the model given
    # embeds val, then its own training sentences for the prior it ships with
    assert embedded == [(base, "corpus", "val"),
                        (pytest.approx(base + 0.1), "f0", "val"),
                        (pytest.approx(base + 0.1), "f0", "train"),
                        (pytest.approx(base + 0.2), "f1", "val"),
                        (pytest.approx(base + 0.2), "f1", "train"),
                        (base, "corpus", "train")]
    train_videos = {q.video_id for q in open_corpus(corpus, "train")[0].queries}
    for fold, (k, chunks, measured) in enumerate(fitted):
        assert k == fold and chunks  # fitted on chunks of the fold model's own training part
        seen = [v for c in chunks for v in c.videos]
        assert len(seen) == len(set(seen)) and not set(seen) & set(measured.videos)
        # chunks about the size of the fold they are measured on
        assert all(abs(len(c.videos) - len(measured.videos)) <= len(measured.videos) // 2
                   for c in chunks)
    # the fits: one per fold (setting_rows), the shipped prior, then one per fold model written
    assert len(final) == 2 * len(fitted) + 1
    assert {v for c in final[len(fitted)] for v in c.videos} == train_videos
    assert report["fitted_on"] == "own training sentences" and report["n_folds"] == 2
    assert [r["model"] for r in report["own_train_bias"]] == [*map(str, models),
                                                               str(tiny_model_dir)]
    assert all(0 <= r["top1_start0"] <= 100 for r in report["own_train_bias"])
    assert "own training sentences" in (tmp_path / "report" / "position_bias.md").read_text()
    record = FVMR.read_config(tmp_path / "with-prior")[1]["cell_prior"]
    assert record["fitted_on"] == "own training sentences" and record["strength"] == 1.0
    # each fold model written with the prior its fold was measured with, still its fold's model
    from moment_search.train.folds import check_fold_checkpoint

    for k, (_, chunks, _) in enumerate(fitted):
        written = tmp_path / "fold-priors" / f"fold-{k}"
        check_fold_checkpoint(folds[k], written)
        model = FVMR.from_pretrained(written)
        assert model.config.cell_prior
        assert first_weight(model) == pytest.approx(base + 0.1 * (k + 1))
        np.testing.assert_allclose(model.proposal_prior.numpy(), fit(chunks, 1.0), atol=1e-6)


def test_position_bias_refuses_an_unknown_fit_on(tmp_path):
    with pytest.raises(InputError, match="fit_on must be own-train or held-out, got 'val'"):
        PositionBiasConfig(out=tmp_path, fit_on="val")
    with pytest.raises(InputError, match="fit_on held-out needs --fold-model"):
        PositionBiasConfig(out=tmp_path, fit_on="held-out")
    with pytest.raises(InputError, match="--write-fold-models .*folds needs --fold-model"):
        PositionBiasConfig(out=tmp_path, write_fold_models=tmp_path / "folds")


def test_own_training_chunks_are_disjoint_covering_and_fold_sized(tmp_path, tiny_model_dir):
    from moment_search.benchmarks.position_bias import own_train_chunks

    corpus = write_tiny_corpus(tmp_path / "corpus", n_videos=30)
    train_videos = set(open_corpus(corpus, "train")[0].videos)
    model = with_cell_prior(FVMR.from_pretrained(tiny_model_dir), None)
    with torch.inference_mode():
        chunks = own_train_chunks(model, corpus, None, chunk_videos=4)
    seen = [v for c in chunks for v in c.videos]
    assert len(chunks) == round(len(train_videos) / 4) > 2
    assert len(seen) == len(set(seen)) and set(seen) == train_videos
    assert all(abs(len(c.videos) - 4) <= 1 for c in chunks)
    # each chunk searches its own sentences over its own videos only
    assert all(set(c.own) <= set(range(len(c.videos))) and len(c.queries) for c in chunks)


def test_no_prior_chosen_writes_fold_models_without_one(tmp_path, tiny_model_dir, held_out,
                                                        monkeypatch):
    from moment_search.benchmarks import position_bias

    corpus, folds, models = held_out
    monkeypatch.setattr(position_bias, "choose", lambda means: ("none", "fixed by the test"))
    run(PositionBiasConfig(out=tmp_path / "report", data=corpus, model=tiny_model_dir,
                           fold_models=models, fold_data=folds,
                           write_fold_models=tmp_path / "fold-priors"))
    for k in range(2):
        config, extra = FVMR.read_config(tmp_path / "fold-priors" / f"fold-{k}")
        assert not config.cell_prior and extra["cell_prior"]["strength"] == 0.0
        assert extra["train_config"]["fold"] == f"{k}/2"


def test_no_prior_chosen_writes_a_checkpoint_without_one(tmp_path, tiny_model_dir, held_out,
                                                         monkeypatch):
    from moment_search.benchmarks import position_bias
    from safetensors.numpy import load_file

    corpus, folds, models = held_out
    monkeypatch.setattr(position_bias, "choose", lambda means: ("none", "fixed by the test"))
    report = run(PositionBiasConfig(out=tmp_path / "report", data=corpus, model=tiny_model_dir,
                                    fold_models=models, fold_data=folds,
                                    write_model=tmp_path / "written"))
    config, extra = FVMR.read_config(tmp_path / "written")
    assert not config.cell_prior and "proposal_prior" not in load_file(
        tmp_path / "written" / "model.safetensors")
    assert extra["cell_prior"]["strength"] == 0.0 and report["prior"] is None
    assert report["val"]["after"] == report["val"]["before"]
    text = (tmp_path / "report" / "position_bias.md").read_text()
    assert "no prior (chosen)" in text and "with the prior" not in text


def test_fold_pairs_are_checked_before_anything_is_embedded(tmp_path, tiny_model_dir, held_out,
                                                            monkeypatch):
    from moment_search.benchmarks import position_bias

    from moment_search.train.folds import write_fold_corpus

    corpus, folds, models = held_out
    monkeypatch.setattr(position_bias, "embed_split", lambda *a: pytest.fail("embedded"))
    other_n = write_fold_corpus(corpus, (1, 3), tmp_path / "f1of3")
    of_val = write_fold_corpus(corpus, (1, 2), tmp_path / "val-fold", split="val")
    cases = {
        "the model saw its fold": ((models[1], models[0]), folds, "holds out fold 0/2"),
        "one fold twice": ((models[0], models[0]), (folds[0], folds[0]), "different folds"),
        "folds of two cuts": ((models[0], fold_checkpoint(tiny_model_dir, tmp_path / "m1of3",
                                                          "1/3")), (folds[0], other_n),
                              "different folds"),
        "the corpus itself": (models, (corpus, folds[1]), "expected a fold corpus"),
        "a fold of val": (models, (folds[0], of_val), "expected a fold corpus"),
    }
    for fold_models, fold_data, message in cases.values():
        with pytest.raises(InputError, match=message):
            run(PositionBiasConfig(out=tmp_path / "report", data=corpus, model=tiny_model_dir,
                                   fold_models=fold_models, fold_data=fold_data))
    assert not (tmp_path / "report").exists()


def test_position_bias_cli_refuses_an_unpaired_fold_model(tmp_path, capsys):
    from moment_search.cli.app import main

    assert main(["benchmark", "position-bias", "--out", str(tmp_path / "r"),
                 "--fold-model", str(tmp_path)]) == 2
    assert "go in pairs" in capsys.readouterr().err


@pytest.mark.parametrize("n_models, n_data", [(1, 1), (2, 1)])
def test_fold_models_go_in_pairs_of_two_or_more(tmp_path, n_models, n_data):
    with pytest.raises(InputError, match="go in pairs, two or more"):
        PositionBiasConfig(out=tmp_path, fold_models=(tmp_path,) * n_models,
                           fold_data=(tmp_path,) * n_data)


def test_no_prior_is_a_candidate_of_the_rule():
    from moment_search.benchmarks.position_bias import choose

    means = [{"setting": "none", "top1_start0": 21.0, "truth_start0": 20.0, "R10@0.5": 30.0,
              "R10@0.7": 20.0},
             {"setting": 1.0, "top1_start0": 19.0, "truth_start0": 20.0, "R10@0.5": 25.0,
              "R10@0.7": 15.0}]
    assert choose(means)[0] == "none"
    means[0]["top1_start0"] = 40.0
    assert choose(means) == (1.0, "the only setting within the slack")


def test_the_benchmark_fits_each_split_once_and_a_changed_split_afresh(monkeypatch):
    import dataclasses

    from moment_search.benchmarks import position_bias, position_bias_search

    from moment_search.embed.one_video import OneVideoWeights
    from moment_search.train.cell_prior import best_cell_scores, truth_cells

    rng = np.random.default_rng(0)
    n_videos, n_cells, width, n_queries = 4, 6, 5, 30
    spans = np.sort(rng.uniform(0, 30, size=(n_videos, n_cells, 2)), axis=-1)
    windows = np.sort(rng.uniform(0, 30, size=(n_queries, 2)), axis=-1)
    split = position_bias.Split(
        None, [f"v{i}" for i in range(n_videos)], rng.normal(size=(n_videos, n_cells, width)),
        spans, rng.normal(size=(n_queries, width)), rng.integers(0, n_videos, n_queries), windows,
        OneVideoWeights())
    direct = fit_cell_prior(best_cell_scores(split.queries, split.moments),
                            truth_cells(split.spans[split.own], split.windows))
    calls = []
    monkeypatch.setattr(position_bias_search, "best_cell_scores",
                        lambda *args: calls.append(1) or best_cell_scores(*args))
    np.testing.assert_allclose(position_bias.fit([split]), direct)
    np.testing.assert_allclose(position_bias.fit([split], 2.0), 2 * direct, atol=1e-6)
    assert len(calls) == 1  # the second fit read the first one's scores
    changed = dataclasses.replace(split, queries=-split.queries)
    np.testing.assert_allclose(changed.best_cells,
                               best_cell_scores(changed.queries, changed.moments))
    assert len(calls) == 2
