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
    return model.reconfigured(one_video_text_scale=scale)


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


def open_index(root, corpus, model: FVMR, name: str, onnx: bool) -> Searcher:
    """A searcher over an index of ``model`` (its ONNX encoder, or the PyTorch one)."""
    if not (root / f"{name}-index").exists():
        model.save_pretrained(root / f"{name}-model", extra={"feature_rate": 1.0,
                                                              "max_tokens": 32})
        build_index(corpus, root / f"{name}-index", root / f"{name}-model",
                    BuildConfig(device="cpu", index_kind="flat", query_encoder=onnx))
    if onnx:
        return Searcher.open(root / f"{name}-index", device="cpu", encoder="fp32")  # int8 rounds
    with pytest.warns(PyTorchFallbackWarning):
        return Searcher.open(root / f"{name}-index", device="cpu")


def scores(searcher: Searcher, video_ids) -> dict[int, float]:
    every = searcher.n_proposals
    return {m.proposal_id: m.score for m in searcher.search(
        QUERY, k=every, nms=1.0, candidates=every, video_ids=video_ids)}


def terms(model: FVMR, corpus_dir, video_id: str) -> tuple[np.ndarray, np.ndarray]:
    """(P,) the FVMR term phi_m . phi_s and (P,) the video-text term of QUERY over every
    proposal of one video, worked out from the model's own vectors."""
    from moment_search.data.corpus_dir import open_corpus
    from moment_search.embed.encoders import MomentEncoder, QueryEncoder
    from moment_search.text.tokens import TokenEncoder

    corpus, store = open_corpus(corpus_dir, feature_rate=1.0)
    moments = MomentEncoder(model).embed_video(store.load(video_id), corpus.video(video_id))
    query = QueryEncoder(model, TokenEncoder()).encode([QUERY])[0]
    space = model.config.space_dim
    start, stop = model.video_text_columns
    return moments[:, :space] @ query[:space], moments[:, start:stop] @ query[start:stop]


@pytest.mark.parametrize("onnx", [True, False], ids=["onnx", "pytorch"])
def test_a_one_video_search_weighs_the_video_text_term_by_the_scale(composed, onnx):
    root, corpus, model = composed
    name = "onnx" if onnx else "torch"
    half = open_index(root, corpus, with_scale(model, 0.5), f"{name}-half", onnx)
    as_across = open_index(root, corpus, with_scale(model, 1.0), f"{name}-1", onnx)
    one, two = sorted(half.table.video_names)[:2]
    moment, text = terms(model, corpus, one)
    assert np.abs(text).max() > 1e-2  # the term is there to be weighed
    cells = model.n_proposals
    for searcher, scale in ((half, 0.5), (as_across, 1.0)):
        within = scores(searcher, [one])
        assert len(within) == cells
        # the prior (the constant column) is left out, the video-text term weighed
        assert within == pytest.approx({i: moment[i % cells] + scale * text[i % cells]
                                        for i in within}, abs=1e-4)
    # across videos the scale changes nothing
    assert scores(half, [one, two]) == pytest.approx(scores(as_across, [one, two]), abs=1e-4)
    if onnx:
        meta = EncoderMeta.read(root / f"{name}-half-index" / "encoder")
        assert (meta.video_text_columns, meta.one_video_text_scale) == ((8, 14), 0.5)


def test_the_served_profile_and_the_cascade_use_the_weighed_vector(composed, tiny_drn_dir,
                                                                    monkeypatch):
    from moment_search.search import cascade
    from moment_search.serve.service import SearchOptions, SearchService

    root, corpus, model = composed
    open_index(root, corpus, with_scale(model, 0.5), "onnx-half", True)
    service = SearchService(root / "onnx-half-index", device="cpu")
    assert service.wait_ready(120)
    searcher = service.searcher
    one = sorted(searcher.table.video_names)[0]
    top = service.search([QUERY], SearchOptions(k=1, video=(one,), profile=True))[0]["moments"][0]
    assert max(v for v in top["profile"] if v is not None) == pytest.approx(top["score"],
                                                                           abs=1e-3)
    seen = []
    real = cascade.fast_logits
    monkeypatch.setattr(cascade, "fast_logits", lambda s, query, *rest: (
        seen.append(query.copy()) or real(s, query, *rest)))
    searcher.add_reranker("drn", tiny_drn_dir)
    assert searcher.search(QUERY, k=3, video_ids=[one], rerank="drn", rerank_videos=1)
    weighed = searcher.encoder.one_video.apply(searcher.encoder.encode([QUERY]))[0]
    assert len(seen) == 1
    np.testing.assert_allclose(seen[0], weighed, atol=1e-6)
    assert not np.allclose(seen[0], searcher.encoder.encode([QUERY])[0], atol=1e-3)


def test_the_single_video_evaluator_ranks_as_the_searcher(composed):
    from moment_search.data.corpus_dir import open_corpus
    from moment_search.eval.fvmr_localizer import FVMRLocalizer

    root, corpus, model = composed
    model = with_scale(model, 0.5)
    searcher = open_index(root, corpus, model, "onnx-half", True)
    one = sorted(searcher.table.video_names)[0]
    localizer = FVMRLocalizer(model)
    split, store = open_corpus(corpus, feature_rate=1.0)
    localizer.prepare(split, store, [one])
    evaluated = localizer.score_video(localizer.encode_query(QUERY), one)[:, 2]
    searched = scores(searcher, [one])
    assert len(evaluated) == len(searched) == model.n_proposals
    np.testing.assert_allclose(evaluated, [searched[i] for i in sorted(searched)], atol=1e-4)


def test_position_bias_single_video_r1_ranks_by_the_splits_rule():
    from moment_search.benchmarks.position_bias_search import Split, single_video

    # one video, two cells; columns: FVMR term, video-text term, constant column
    moments = np.array([[[1.0, 0.0, 0.0], [0.0, 1.5, 0.0]]])
    spans = np.array([[[0.0, 5.0], [5.0, 10.0]]])
    split = Split(None, ["v"], moments, spans, np.ones((1, 3)), np.array([0]),
                  np.array([[0.0, 5.0]]), OneVideoWeights(2, (1, 2), 0.5))
    # weighed, the first cell (the truth) wins 1 against 0.75; at scale 1 the second, 1.5
    assert single_video(split, None)["single_R1@0.5"] == 100.0
    at_one = dataclasses.replace(split, one_video=OneVideoWeights(2, (1, 2), 1.0))
    assert single_video(at_one, None)["single_R1@0.5"] == 0.0


def test_compose_resets_the_scale(composed, tmp_path):
    root, _, model = composed
    with_scale(model, 0.5).save_pretrained(tmp_path / "scaled",
                                           extra={"one_video_weight": {"scale": 0.5}})
    again = compose(tmp_path / "scaled", tmp_path / "again", root / "video-text", 0.7)
    config, extra = FVMR.read_config(again)
    assert config.one_video_text_scale == 1.0 and "one_video_weight" not in extra


@pytest.mark.parametrize("scale", [-0.5, float("nan"), float("inf")])
def test_a_bad_scale_is_refused(composed, scale):
    with pytest.raises(ValueError, match="one_video_text_scale"):
        with_scale(composed[2], scale)


def test_an_encoder_json_without_the_fields_reads_as_before(built_index, tmp_path):
    import shutil

    folder = shutil.copytree(built_index / "encoder", tmp_path / "encoder")
    data = json.loads((folder / "encoder.json").read_text())
    for key in ("video_text_columns", "one_video_text_scale"):
        data.pop(key)
    (folder / "encoder.json").write_text(json.dumps(data))
    assert EncoderMeta.read(folder).one_video == OneVideoWeights(None, None, 1.0)
    width = data["embedding_dim"]
    for bad in ([5, 2], [0, width + 1], [1], "0-3"):
        data["video_text_columns"] = bad
        (folder / "encoder.json").write_text(json.dumps(data))
        with pytest.raises(EncoderError, match="video_text_columns"):
            EncoderMeta.read(folder)
    data["video_text_columns"] = [0, 2]
    for bad in (-1, "NaN", None):
        data["one_video_text_scale"] = bad
        (folder / "encoder.json").write_text(json.dumps(data))
        with pytest.raises(EncoderError, match="one_video_text_scale|malformed"):
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
