"""Relevance calibration: the math, the threshold rule, the out-of-domain filter, and the
relevance / "no good match" fields through the searcher, the CLI and a file of queries."""

import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from moment_search.cli.app import main

from moment_search.eval.relevance import (
    auroc,
    charades_vocabulary,
    fit_logistic,
    held_out,
    names_charades,
    threshold_at,
)
from moment_search.search.relevance import (
    RelevanceModel,
    read_relevance,
    sigmoid,
)
from moment_search.search.searcher import Searcher

from ..conftest import calibrate_index


def random_model(width=8, seed=0, **kw) -> RelevanceModel:
    bank = np.random.default_rng(seed).normal(size=(5, width)).astype(np.float32)
    bank /= np.linalg.norm(bank, axis=1, keepdims=True)
    return RelevanceModel(kw.get("bias", -1.0), kw.get("familiarity_weight", 3.0),
                          kw.get("score_weight", 2.0), kw.get("threshold", 0.5), bank)


def test_relevance_is_a_probability_monotone_in_the_score_within_a_query():
    model = random_model()
    rng = np.random.default_rng(1)
    queries = rng.normal(size=(4, 10)).astype(np.float32)  # wider than the bank: D > W
    scores = -np.sort(-rng.normal(scale=50, size=(4, 12)), axis=1)  # best first, extreme
    relevance = model.relevance(queries, scores)
    assert relevance.shape == (4, 12)
    assert np.all((relevance >= 0) & (relevance <= 1)) and np.isfinite(relevance).all()
    assert np.all(np.diff(relevance, axis=1) <= 1e-12)  # lower score, no higher relevance


def test_the_top_moment_reads_bias_plus_familiarity_and_familiarity_is_a_cosine():
    model = random_model(bias=0.5, familiarity_weight=2.0)
    queries = np.concatenate([3.0 * model.bank[:2], np.ones((2, 2))], axis=1)  # (2, 10)
    assert model.familiarity(queries) == pytest.approx([1.0, 1.0], abs=1e-5)
    top = model.relevance(queries, np.array([[4.0, 3.0], [-9.0, -9.5]]))[:, 0]
    assert top == pytest.approx(sigmoid(0.5 + 2.0), abs=1e-6)  # top score does not enter


def test_sigmoid_is_stable_at_the_extremes():
    assert sigmoid(np.array([-1e4, 0.0, 1e4])) == pytest.approx([0.0, 0.5, 1.0])


def test_threshold_leaves_at_most_the_share_of_positives_under_it():
    values = np.random.default_rng(2).uniform(size=200)
    for share in (0.0, 0.05, 0.1, 0.5):
        threshold = threshold_at(values, share)
        assert (values < threshold).mean() <= share
        assert (values <= threshold).mean() > share  # the highest such threshold
    assert threshold_at(values, 1.0) == float("inf")


def test_no_good_match_is_the_top_relevance_under_the_threshold():
    model = random_model(threshold=0.4)
    assert model.no_good_match(0.39) and not model.no_good_match(0.4)


def test_auroc_equals_counting_pairs():
    rng = np.random.default_rng(3)
    pos, neg = rng.normal(1, size=30).round(1), rng.normal(size=40).round(1)  # with ties
    pairs = [(p > n) + 0.5 * (p == n) for p, n in itertools.product(pos, neg)]
    assert auroc(pos, neg) == pytest.approx(np.mean(pairs))


def test_logistic_fit_recovers_the_generating_weights():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(20000, 2))
    y = (rng.uniform(size=20000) < sigmoid(x @ [2.0, -1.0] + 0.5)).astype(float)
    weights, bias = fit_logistic(x, y, l2=0.0)
    assert weights == pytest.approx([2.0, -1.0], abs=0.1)
    # classes are weighted to count equally: the bias moves by log(n_neg / n_pos)
    assert bias == pytest.approx(0.5 + np.log((1 - y).sum() / y.sum()), abs=0.1)


def test_the_out_of_domain_filter_drops_sentences_naming_charades_things():
    vocabulary = charades_vocabulary({"c008": "Opening a door", "c106": "Someone is laughing"},
                                     ["cup/glass/bottle", "something", "laptop"])
    assert names_charades("The man opens the doors.", vocabulary)  # stems: open(s), door(s)
    assert names_charades("She laughed and drank from a glass", vocabulary)
    assert not names_charades("A dolphin jumps over a car.", vocabulary)
    assert not names_charades("They play something on a drum", vocabulary)  # generic: kept


def test_negatives_split_into_two_halves_deterministically():
    sentences = [f"a boat number {i}" for i in range(400)]
    halves = [held_out(s) for s in sentences]
    assert halves == [held_out(s) for s in sentences]
    assert 0.4 < np.mean(halves) < 0.6


def test_saved_calibration_reads_back_and_refuses_another_model(tmp_path):
    model = random_model()
    model.model_id, model.config_hash = "fvmr-abc", "123"
    model.save(tmp_path)
    back = read_relevance(tmp_path, "fvmr-abc", "123")
    assert (back.bias, back.threshold) == (model.bias, model.threshold)
    assert np.allclose(back.bank, model.bank, atol=1e-3)
    with pytest.raises(ValueError, match="fitted for model fvmr-abc"):
        read_relevance(tmp_path, "fvmr-other", "123")
    np.save(tmp_path / "relevance-bank.npy", np.zeros((2, 8), np.float16))
    with pytest.raises(ValueError, match="does not match"):
        read_relevance(tmp_path)


def test_a_folder_without_calibration_gives_none(tmp_path):
    assert read_relevance(tmp_path) is None


# -- through the searcher, the CLI and files ---------------------------------------------------

@pytest.fixture(scope="module")
def calibrated(calibrated_index):
    return Searcher.open(calibrated_index, device="cpu")


def test_moments_carry_relevance_and_the_answer_its_flag(calibrated):
    moments = calibrated.search("person does action number 2", k=5)
    relevance = [m.relevance for m in moments]
    assert relevance[0] == pytest.approx(sigmoid(1.0))
    assert all(a >= b for a, b in itertools.pairwise(relevance))
    assert all("relevance" in m.to_dict() for m in moments)
    assert calibrated.no_good_match(moments) is False


def test_an_answer_under_the_threshold_is_marked(calibrated_index, tmp_path):
    index = tmp_path / "index"
    shutil.copytree(calibrated_index, index)
    calibrate_index(index, bias=-1.0, threshold=0.5)  # top relevance 0.27 < 0.5
    searcher = Searcher.open(index, device="cpu")
    moments = searcher.search("a dolphin jumps over a car", k=3)
    assert moments[0].relevance == pytest.approx(sigmoid(-1.0))
    assert searcher.no_good_match(moments) is True


def test_an_index_without_calibration_answers_without_relevance(built_index):
    searcher = Searcher.open(built_index, device="cpu")
    moments = searcher.search("person does action number 2", k=3)
    assert all(m.relevance is None and "relevance" not in m.to_dict() for m in moments)
    assert searcher.no_good_match(moments) is None


def test_query_cli_json_carries_relevance_and_the_flag(calibrated_index, capsys):
    assert main(["query", "person does action number 1", "--index", str(calibrated_index),
                 "--json", "-k", "3"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 3
    assert all(0.0 <= line["relevance"] <= 1.0 and line["no_good_match"] is False
               for line in lines)


def test_query_cli_table_says_no_good_match(calibrated_index, tmp_path, capsys):
    index = tmp_path / "index"
    shutil.copytree(calibrated_index, index)
    calibrate_index(index, bias=-1.0, threshold=0.5)
    assert main(["query", "a dolphin jumps over a car", "--index", str(index), "-k", "3"]) == 0
    out = capsys.readouterr().out
    assert "relevance" in out and "0.27" in out and "no good match" in out


def test_query_file_json_carries_the_flag_per_query(calibrated_index, tmp_path, capsys):
    queries = tmp_path / "queries.txt"
    queries.write_text("person does action number 1\nperson does action number 2\n")
    assert main(["query", "--file", str(queries), "--index", str(calibrated_index), "--json",
                 "-k", "2"]) == 0
    answers = [json.loads(line) for line in capsys.readouterr().out.splitlines()
               if line.startswith("{")]
    assert [a["no_good_match"] for a in answers] == [False, False]
    assert all("relevance" in m for a in answers for m in a["moments"])


def test_query_cli_without_calibration_prints_no_relevance(built_index, capsys):
    assert main(["query", "person does action number 1", "--index", str(built_index),
                 "--json", "-k", "2"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert all("relevance" not in line and "no_good_match" not in line for line in lines)
    assert main(["query", "person does action number 1", "--index", str(built_index),
                 "-k", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count("no relevance:") == 1  # said once, in the table mode only


def test_reranked_moments_keep_their_videos_relevance(calibrated, tiny_pln_dir):
    fast = calibrated.search("person does action number 2", k=5)
    calibrated.add_reranker("pln", tiny_pln_dir)
    reranked = calibrated.search("person does action number 2", k=5, rerank="pln",
                                 rerank_videos=2)
    best = {}
    for m in fast:
        best.setdefault(m.video_id, m.relevance)
    assert all(m.relevance is not None for m in reranked)
    assert all(m.relevance == pytest.approx(best[m.video_id]) for m in reranked
               if m.video_id in best and m.stage != "fvmr")


def test_index_build_carries_the_checkpoints_calibration(tiny_model_dir, session_corpus,
                                                         tmp_path):
    from moment_search.indexer.build import BuildConfig, build_index

    from moment_search.models.base import model_fingerprint

    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model_dir)
    calibration = random_model(bias=2.0)
    calibration.model_id, calibration.config_hash = model_fingerprint(model_dir)
    calibration.save(model_dir)
    build_index(session_corpus, tmp_path / "index", model_dir,
                BuildConfig(shard_videos=4, device="cpu"))
    searcher = Searcher.open(tmp_path / "index", device="cpu")
    assert searcher.relevance is not None and searcher.relevance.bias == 2.0


def test_the_relevance_benchmark_refuses_an_index_of_another_model(built_index, tmp_path,
                                                                   tiny_model_dir):
    from moment_search.benchmarks.relevance import ensure_index

    from moment_search.errors import InputError
    from moment_search.models.fvmr import FVMR

    assert ensure_index(Path("unused"), "train", built_index, tiny_model_dir) == built_index
    other = tmp_path / "other"
    model = FVMR.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    model.save_pretrained(other, extra=FVMR.read_config(tiny_model_dir)[1])
    with pytest.raises(InputError, match=r"built with model fvmr-\w+ .*not the model given"):
        ensure_index(Path("unused"), "train", built_index, other)


def test_the_relevance_benchmark_indexes_a_model_whose_calibration_is_stale(
        tmp_path, session_corpus, tiny_model_dir):
    from moment_search.benchmarks.relevance import ensure_index


    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    stale = random_model(width=8)
    stale.model_id, stale.config_hash = "fvmr-000000000000", "000000000000"
    stale.save(model)  # a calibration fitted for other weights: refitting it must still work
    index = ensure_index(session_corpus, "train", tmp_path / "work" / "train", model)
    searcher = Searcher.open(index, device="cpu")
    assert searcher.relevance is None and searcher.n_proposals > 0
    assert ensure_index(session_corpus, "train", index, model) == index  # the same weights
