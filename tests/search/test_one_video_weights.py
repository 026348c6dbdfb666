"""A search within one video weighs the query's video-text columns by the checkpoint's
``one_video_text_scale`` (``embed.one_video``), through the ONNX and the PyTorch encoders, the
single-video evaluator and ``benchmark one-video-weight``, which chooses the scale on folds."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from moment_search.indexer.build import BuildConfig, build_index
from moment_search.indexer.query_encoder import PyTorchFallbackWarning

from moment_search.embed.one_video import OneVideoWeights
from moment_search.embed.onnx_encoder import EncoderError, EncoderMeta
from moment_search.errors import InputError
from moment_search.models.fvmr import FVMR
from moment_search.models.video_text import VideoText, VideoTextConfig
from moment_search.search.searcher import Searcher
from moment_search.train.cell_prior import with_cell_prior
from moment_search.train.compose import compose

from ..conftest import write_tiny_corpus

QUERY = "person does action number 3"


def test_the_rule_zeroes_the_constant_column_and_scales_the_text_columns():
    queries = np.arange(12, dtype=np.float32).reshape(2, 6) + 1
    weighed = OneVideoWeights(constant_column=5, text_columns=(2, 4), text_scale=0.5).apply(queries)
    np.testing.assert_array_equal(weighed[:, :2], queries[:, :2])
    np.testing.assert_array_equal(weighed[:, 2:4], queries[:, 2:4] * 0.5)
    np.testing.assert_array_equal(weighed[:, 4], queries[:, 4])
    assert (weighed[:, 5] == 0).all() and (queries[:, 5] != 0).all()  # the input is unchanged
    same = OneVideoWeights(text_columns=(2, 4), text_scale=1.0)
    assert same.changes_nothing() and same.apply(queries) is queries


def with_scale(model: FVMR, scale: float) -> FVMR:
    copy = FVMR(dataclasses.replace(model.config, one_video_text_scale=scale)).eval()
    copy.load_state_dict(model.state_dict())
    return copy


@pytest.fixture(scope="module")
def composed(tmp_path_factory, tiny_model_dir):
    """A tiny corpus and a search checkpoint with a moment-level video-text term and a prior."""
    root = tmp_path_factory.mktemp("one-video-weights")
    corpus = write_tiny_corpus(root / "corpus", n_videos=6)
    torch.manual_seed(1)
    video = VideoText(VideoTextConfig(feature_dim=8, hidden_dim=16, embed_dim=6, level="moment"))
    video_dir = video.eval().save_pretrained(root / "video-text")
    search = FVMR.from_pretrained(compose(tiny_model_dir, root / "search", video_dir, 0.7))
    prior = np.linspace(-1, 1, search.n_proposals).astype(np.float32)
    return root, corpus, with_cell_prior(search, prior)


def one_video_scores(root, corpus, model: FVMR, name: str, onnx: bool) -> dict[int, float]:
    """Every proposal's score of QUERY in the corpus's first video, through an index of
    ``model`` (its ONNX encoder, or the PyTorch one)."""
    model.save_pretrained(root / f"{name}-model", extra={"feature_rate": 1.0, "max_tokens": 32})
    index = root / f"{name}-index"
    build_index(corpus, index, root / f"{name}-model",
                BuildConfig(device="cpu", index_kind="flat", query_encoder=onnx))
    if onnx:
        searcher = Searcher.open(index, device="cpu", encoder="fp32")  # fp32: int8 rounds
    else:
        with pytest.warns(PyTorchFallbackWarning):
            searcher = Searcher.open(index, device="cpu")
    every = searcher.n_proposals
    one = sorted(searcher.table.video_names)[0]
    return {m.proposal_id: m.score for m in searcher.search(
        QUERY, k=every, nms=1.0, candidates=every, video_ids=[one])}


@pytest.mark.parametrize("onnx", [True, False], ids=["onnx", "pytorch"])
def test_a_one_video_search_weighs_the_video_text_term_by_the_scale(composed, onnx):
    root, corpus, model = composed
    name = "onnx" if onnx else "torch"
    # one-video scores are linear in the scale: fvmr term + scale * video-text term
    moment_only = one_video_scores(root, corpus, with_scale(model, 0.0), f"{name}-0", onnx)
    as_across = one_video_scores(root, corpus, with_scale(model, 1.0), f"{name}-1", onnx)
    half = one_video_scores(root, corpus, with_scale(model, 0.5), f"{name}-half", onnx)
    assert set(half) == set(as_across) == set(moment_only)
    expected = {i: moment_only[i] + 0.5 * (as_across[i] - moment_only[i]) for i in half}
    assert half == pytest.approx(expected, abs=1e-4)
    assert max(abs(as_across[i] - moment_only[i]) for i in half) > 1e-2  # the term is there
    if onnx:
        meta = EncoderMeta.read(root / f"{name}-half-index" / "encoder")
        assert (meta.video_text_columns, meta.one_video_text_scale) == ((8, 14), 0.5)


def test_the_single_video_evaluator_ranks_with_the_same_rule(composed):
    from moment_search.eval.fvmr_localizer import FVMRLocalizer

    model = with_scale(composed[2], 0.5)
    localizer = FVMRLocalizer(model)
    encoded = localizer.queries.encode([QUERY])
    rule = localizer.queries.one_video
    assert (rule.constant_column, rule.text_columns, rule.text_scale) == (
        model.constant_column_index, (8, 14), 0.5)
    np.testing.assert_allclose(localizer.encode_query(QUERY), rule.apply(encoded)[0])


def test_compose_resets_the_scale(composed, tmp_path):
    root, _, model = composed
    with_scale(model, 0.5).save_pretrained(tmp_path / "scaled")
    again = compose(tmp_path / "scaled", tmp_path / "again", root / "video-text", 0.7)
    assert FVMR.read_config(again)[0].one_video_text_scale == 1.0


def test_an_encoder_json_without_the_fields_reads_as_before(built_index, tmp_path):
    import shutil

    folder = shutil.copytree(built_index / "encoder", tmp_path / "encoder")
    data = json.loads((folder / "encoder.json").read_text())
    for key in ("video_text_columns", "one_video_text_scale"):
        data.pop(key)
    (folder / "encoder.json").write_text(json.dumps(data))
    assert EncoderMeta.read(folder).one_video == OneVideoWeights(None, None, 1.0)
    data["video_text_columns"] = [5, 2]
    (folder / "encoder.json").write_text(json.dumps(data))
    with pytest.raises(EncoderError, match="video_text_columns"):
        EncoderMeta.read(folder)


@pytest.fixture
def fold_setup(tmp_path, composed):
    """A 30-video corpus, its two fold corpora, a search checkpoint recorded as trained without
    each fold, and the all-train one."""
    from moment_search.train.folds import write_fold_corpus

    model = composed[2]
    corpus = write_tiny_corpus(tmp_path / "corpus", n_videos=30)
    folds = tuple(write_fold_corpus(corpus, (k, 2), tmp_path / f"f{k}") for k in range(2))
    models = []
    for k in range(2):
        torch.manual_seed(k)
        moved = with_scale(model, 1.0)
        with torch.no_grad():
            next(moved.parameters()).add_(0.1 * (k + 1))
        models.append(moved.save_pretrained(tmp_path / f"m{k}", extra={
            "feature_rate": 1.0, "max_tokens": 32, "train_config": {"fold": f"{k}/2"}}))
    full = model.save_pretrained(tmp_path / "full", extra={"feature_rate": 1.0})
    return corpus, folds, tuple(models), full


def test_the_benchmark_chooses_on_folds_and_writes_the_checkpoint(tmp_path, fold_setup):
    from moment_search.benchmarks import one_video_weight as ovw

    corpus, folds, models, full = fold_setup
    config = ovw.OneVideoWeightConfig(out=tmp_path / "report", data=corpus, model=full,
                                      scales=(0.0, 0.5, 1.0, 2.0), fold_models=models,
                                      fold_data=folds, write_model=tmp_path / "written")
    report = ovw.run(config)
    assert [(r["fold"], r["scale"]) for r in report["folds"]] == [
        (k, s) for k in range(2) for s in (0.0, 0.5, 1.0, 2.0)]
    means = {m["scale"]: m["score"] for m in report["fold_means"]}
    assert means[report["chosen_scale"]] == max(means.values())
    for mean in report["fold_means"]:  # the mean of the two folds' rows
        rows = [r["score"] for r in report["folds"] if r["scale"] == mean["scale"]]
        assert mean["score"] == pytest.approx(np.mean(rows))
    assert report["val"]["before"]["scale"] == 1.0
    assert report["val"]["after"]["scale"] == report["chosen_scale"]
    written = FVMR.from_pretrained(tmp_path / "written")
    assert written.config.one_video_text_scale == report["chosen_scale"]
    assert FVMR.read_config(tmp_path / "written")[1]["one_video_weight"]["scale"] == \
        report["chosen_scale"]
    for (name, a), b in zip(written.state_dict().items(), FVMR.from_pretrained(full).state_dict()
                            .values(), strict=True):
        assert torch.equal(a, b), name
    text = (tmp_path / "report" / "one_video_weight.md").read_text()
    assert "--fold-model" in text and "Chosen" in text


def test_ties_go_to_the_scale_nearer_one():
    from moment_search.benchmarks.one_video_weight import choose

    means = [{"scale": s, "score": score} for s, score in ((0.0, 70), (0.25, 75), (1.5, 75),
                                                           (2.0, 74))]
    assert choose(means) == 1.5
    assert choose([{"scale": 1.0, "score": 75}, {"scale": 0.75, "score": 75}]) == 1.0


def test_the_benchmark_refuses_what_it_cannot_choose_with(tmp_path, fold_setup, tiny_model_dir):
    from moment_search.benchmarks.one_video_weight import OneVideoWeightConfig, run

    corpus, folds, models, _ = fold_setup
    with pytest.raises(InputError, match="include 1"):
        OneVideoWeightConfig(out=tmp_path, scales=(0.5, 2.0), fold_models=models,
                             fold_data=folds)
    with pytest.raises(InputError, match="two or more"):
        OneVideoWeightConfig(out=tmp_path, fold_models=models[:1], fold_data=folds[:1])
    with pytest.raises(InputError, match="no video-text term"):
        run(OneVideoWeightConfig(out=tmp_path, data=corpus, model=tiny_model_dir,
                                 fold_models=models, fold_data=folds))
    swapped = OneVideoWeightConfig(out=tmp_path, data=corpus, model=models[0],
                                   fold_models=models[::-1], fold_data=folds)
    with pytest.raises(InputError, match="fold"):
        run(swapped)  # each fold model must hold its own fold out
