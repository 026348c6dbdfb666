"""The torch models on a CUDA device give the CPU's answers (run with ``pytest -m gpu``)."""

import numpy as np
import pytest
import torch
from moment_search.benchmarks.speed_accuracy import brute_force

from moment_search.data.corpus_dir import open_corpus
from moment_search.eval.runner import load_localizer
from moment_search.eval.stepwise import localize_stepwise
from moment_search.search.rerank import load_reranker

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")]


def answers(name, corpus_dir, model_dir, device):
    localizer = load_localizer(name, corpus_dir, model_dir, device)
    corpus, store = open_corpus(corpus_dir, split="train", feature_rate=1.0)
    predictions, times = localize_stepwise(localizer, corpus.queries, corpus, store, k=5)
    return predictions, times


@pytest.mark.parametrize("name", ["fvmr", "pln"])
def test_localizer_on_cuda_matches_cpu(name, tiny_corpus, tiny_model_dir, tiny_pln_dir):
    model_dir = tiny_model_dir if name == "fvmr" else tiny_pln_dir
    cpu, _ = answers(name, tiny_corpus, model_dir, "cpu")
    gpu, times = answers(name, tiny_corpus, model_dir, "cuda")
    for qid, windows in cpu.items():
        np.testing.assert_allclose(gpu[qid][:, :2], windows[:, :2], atol=1e-4)
        np.testing.assert_allclose(gpu[qid][:, 2], windows[:, 2], atol=1e-3)
    assert all(len(v) == len(cpu) for v in times.steps.values())


def test_scan_on_cuda_matches_cpu(tiny_corpus, tiny_pln_dir):
    corpus, store = open_corpus(tiny_corpus, split="train", feature_rate=1.0)
    videos = brute_force.load_videos(corpus, store)
    text = corpus.queries[0].text
    cpu = brute_force.scan(load_reranker("pln", tiny_pln_dir, "cpu"), text, videos, 10)[0]
    reranker = load_reranker("pln", tiny_pln_dir, "cuda")
    assert next(reranker.model.parameters()).is_cuda
    assert brute_force.check_chunking(reranker, text, videos) < 1e-4
    gpu = brute_force.scan(reranker, text, videos, 10)[0]
    assert [m[0] for m in gpu] == [m[0] for m in cpu]
    np.testing.assert_allclose([m[3] for m in gpu], [m[3] for m in cpu], atol=1e-4)
