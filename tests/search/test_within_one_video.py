"""A search within one video leaves the search vectors' constant column (the per-cell prior and
the hub correction) out; a search over several videos keeps it (``Searcher._within_one_video``)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from moment_search.indexer.build import BuildConfig, build_index
from moment_search.indexer.query_encoder import PyTorchFallbackWarning, StaleEncoderWarning

from moment_search.embed.onnx_encoder import EncoderMeta
from moment_search.models.fvmr import FVMR
from moment_search.search.searcher import Searcher
from moment_search.train.cell_prior import with_cell_prior

from ..conftest import write_tiny_corpus

QUERY = "person does action number 3"


@pytest.fixture(scope="module")
def indexes(tmp_path_factory, tiny_model_dir):
    """(index of a checkpoint with a prior that reorders cells, the same without the ONNX
    encoder, an index of the checkpoint without the prior, the prior)."""
    root = tmp_path_factory.mktemp("one-video")
    corpus = write_tiny_corpus(root / "corpus", n_videos=6)
    base = FVMR.from_pretrained(tiny_model_dir)
    prior = np.linspace(-2, 2, base.n_proposals).astype(np.float32)
    with_cell_prior(base, prior).save_pretrained(root / "with-prior")
    flat = {"device": "cpu", "index_kind": "flat"}
    build_index(corpus, root / "prior", root / "with-prior", BuildConfig(**flat))
    build_index(corpus, root / "prior-torch", root / "with-prior",
                BuildConfig(**flat, query_encoder=False))
    build_index(corpus, root / "plain", tiny_model_dir, BuildConfig(**flat, query_encoder=False))
    return root / "prior", root / "prior-torch", root / "plain", prior


def scores(searcher: Searcher, video_ids=None) -> dict[int, float]:
    every = searcher.n_proposals
    return {m.proposal_id: m.score for m in searcher.search(
        QUERY, k=every, nms=1.0, candidates=every, video_ids=video_ids)}


def open_torch(index) -> Searcher:
    with pytest.warns(PyTorchFallbackWarning):
        return Searcher.open(index, device="cpu")


def test_one_video_ranks_without_the_prior_several_videos_with_it(indexes):
    prior_index, _, plain_index, prior = indexes
    # fp32: the 8-bit encoder rounds
    searcher, plain = Searcher.open(prior_index, device="cpu", encoder="fp32"), open_torch(
        plain_index)
    model = FVMR.from_pretrained(prior_index / "model")
    assert searcher.encoder.one_video.constant_column == model.constant_column_index
    assert np.all(searcher.encoder.encode([QUERY])[:, model.constant_column_index] == 1.0)
    base = scores(plain)
    one, two = sorted({video for video in searcher.table.video_names})[:2]
    within = scores(searcher, [one, one])
    assert within and within == pytest.approx({i: base[i] for i in within}, abs=1e-4)
    both = scores(searcher, [one, two])  # after the one-video search: the cache is unchanged
    assert both == pytest.approx({i: base[i] + prior[i % len(prior)] for i in both}, abs=1e-4)


def test_the_pytorch_encoder_leaves_the_column_out_too(indexes):
    _, torch_index, plain_index, _ = indexes
    searcher, plain = open_torch(torch_index), open_torch(plain_index)
    one = searcher.table.video_names[0]
    within = scores(searcher, [one])
    assert within == pytest.approx({i: scores(plain)[i] for i in within}, abs=1e-4)


def test_a_served_one_video_profile_is_that_searchs_scores(indexes):
    from moment_search.serve.service import SearchOptions, SearchService

    service = SearchService(indexes[0], device="cpu")
    assert service.wait_ready(120)
    one = service.searcher.table.video_names[0]
    top = service.search([QUERY], SearchOptions(k=1, video=(one,), profile=True))[0]["moments"][0]
    # every proposal covers some second, so the profile's max is the best score in the video
    assert max(v for v in top["profile"] if v is not None) == pytest.approx(top["score"],
                                                                           abs=1e-3)


def test_an_encoder_without_the_column_record_warns_and_is_exported_again(indexes, tmp_path):
    import shutil

    from moment_search.cli.app import main

    index = shutil.copytree(indexes[0], tmp_path / "index")
    path = index / "encoder" / "encoder.json"
    data = json.loads(path.read_text())
    column = data.pop("constant_column")
    path.write_text(json.dumps(data))
    with pytest.warns(StaleEncoderWarning, match="export-encoder --index"):
        Searcher.open(index, device="cpu")
    assert main(["index", "export-encoder", "--index", str(index)]) == 0  # no --force needed
    assert EncoderMeta.read(index / "encoder").constant_column == column is not None
