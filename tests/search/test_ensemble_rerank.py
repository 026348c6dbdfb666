"""The ensemble reranker: its mean over members, its checkpoint, the CLI that writes it, and its
place in the cascade and ``evaluate model``."""

import json

import numpy as np
import pytest
from moment_search.cli.app import main

from moment_search.data.corpus_dir import open_corpus
from moment_search.errors import DataError
from moment_search.eval.runner import evaluate_model
from moment_search.models.base import CheckpointError
from moment_search.models.ensemble import Ensemble, EnsembleConfig
from moment_search.search.ensemble_reranker import EnsembleReranker, combine
from moment_search.search.rerank import RerankVideo, load_reranker


def test_combine_averages_each_members_best_overlap_over_the_union():
    a = np.array([[0.0, 2.0, 0.9], [2.0, 4.0, 0.1]])
    b = np.array([[0.0, 2.0, 0.2], [2.0, 4.2, 0.8]])
    out = combine([a, b])
    # union: [0,2], [2,4], [2,4.2]; b's [2,4.2] is a's [2,4]'s best overlap and vice versa
    expected = {(0.0, 2.0): (0.9 + 0.2) / 2, (2.0, 4.0): (0.1 + 0.8) / 2,
                (2.0, 4.2): (0.1 + 0.8) / 2}
    assert len(out) == 3
    assert {(s, e): p for s, e, p in out} == pytest.approx(expected)
    assert (np.diff(out[:, 2]) <= 0).all()
    np.testing.assert_array_equal(combine([a]), a[np.argsort(-a[:, 2])])
    # a member with no moment for the video has no say; none at all: no moment
    np.testing.assert_array_equal(combine([a, np.zeros((0, 3))]), combine([a]))
    assert combine([np.zeros((0, 3))]).shape == (0, 3)


@pytest.fixture()
def ensemble_dir(tmp_path, tiny_drn_dir, tiny_fian_dir):
    out = tmp_path / "ens"
    assert main(["train", "ensemble", "--member", f"drn={tiny_drn_dir}",
                 "--member", f"fian={tiny_fian_dir}", "--out", str(out),
                 "--fusion-weight", "0.7"]) == 0
    return out


def test_the_cli_writes_a_checkpoint_that_scores_as_its_members_mean(ensemble_dir,
                                                                     tiny_drn_dir, tiny_fian_dir,
                                                                     tiny_corpus):
    config, extra = Ensemble.read_config(ensemble_dir)
    assert config.members == ("drn", "fian") and extra == {"fusion_weight": 0.7}
    assert config.checkpoints == (str(tiny_drn_dir.resolve()), str(tiny_fian_dir.resolve()))
    ensemble = load_reranker("ensemble", ensemble_dir, "cpu")
    assert isinstance(ensemble, EnsembleReranker) and ensemble.fusion_weight == 0.7
    assert ensemble.nms_threshold == 0.6  # its first member's (DRN's)
    assert ensemble.members[0].tokens is ensemble.members[1].tokens  # one MiniLM for both
    corpus, store = open_corpus(tiny_corpus, feature_rate=1.0)
    videos = [RerankVideo(v.video_id, np.asarray(store.load(v.video_id)), v.duration, 1.0)
              for v in list(corpus.videos.values())[:2]]
    text = "a person walks"
    scored = ensemble.score_videos(text, videos)
    members = [load_reranker(n, d, "cpu").score_videos(text, videos)
               for n, d in (("drn", tiny_drn_dir), ("fian", tiny_fian_dir))]
    for i, moments in enumerate(scored):
        np.testing.assert_allclose(moments, combine([m[i] for m in members]), rtol=1e-5)
        assert ((0 <= moments[:, 2]) & (moments[:, 2] <= 1)).all()
    assert ensemble.score_videos(text, []) == []


def test_the_ensemble_reranks_in_the_cascade_and_evaluates(searcher, ensemble_dir, tiny_corpus):
    searcher.add_reranker("ensemble", ensemble_dir)
    fused = searcher.search("person does action number 2", k=6, rerank="ensemble",
                            rerank_videos=2)
    reranked = [m for m in fused if m.stage == "ensemble+fvmr"]
    assert reranked and len({m.video_id for m in reranked}) <= 2
    assert all(np.isfinite(m.score) for m in reranked)
    result = evaluate_model("ensemble", tiny_corpus, "val", ensemble_dir)
    assert result.metrics["n_queries"] == 2 and "CML_ms_median" in result.timings


def test_members_at_different_feature_rates_are_refused(tmp_path, tiny_drn_dir, tiny_fian_dir):
    slow = tmp_path / "fian-half"
    stored = json.loads((tiny_fian_dir / "config.json").read_text())
    stored["extra"]["feature_rate"] = 0.5
    slow.mkdir()
    (slow / "config.json").write_text(json.dumps(stored))
    (slow / "model.safetensors").write_bytes((tiny_fian_dir / "model.safetensors").read_bytes())
    Ensemble.save(tmp_path / "ens", EnsembleConfig(("drn", "fian"),
                                                   (str(tiny_drn_dir), str(slow))))
    with pytest.raises(DataError, match="different rates"):
        load_reranker("ensemble", tmp_path / "ens", "cpu")


@pytest.mark.parametrize("stored, match", [
    ({"model_type": "drn", "config": {}}, "model_type 'drn', expected 'ensemble'"),
    ({"model_type": "ensemble", "config": {"members": ["drn"]}}, "KeyError"),
    ({"model_type": "ensemble", "config": {"members": ["drn", "drn"],
                                           "checkpoints": [None, None]}}, "different rerankers"),
    ({"model_type": "ensemble", "config": {"members": [], "checkpoints": []}}, "one or more"),
])
def test_a_bad_checkpoint_names_the_file_and_the_fault(tmp_path, stored, match):
    (tmp_path / "config.json").write_text(json.dumps(stored))
    with pytest.raises(CheckpointError, match=match):
        Ensemble.read_config(tmp_path)
    with pytest.raises(CheckpointError, match="config.json"):
        Ensemble.read_config(tmp_path / "missing")


@pytest.mark.parametrize("members, expected", [
    (["nope"], "unknown reranker 'nope'"),
    (["ensemble"], "an ensemble cannot be a member"),
    (["drn=/nonexistent"], "holds no config.json"),
    (["drn", "drn"], "different rerankers"),
])
def test_the_cli_refuses_bad_members(tmp_path, members, expected, capsys):
    options = [part for m in members for part in ("--member", m)]
    assert main(["train", "ensemble", *options, "--out", str(tmp_path / "e")]) == 2
    assert expected in " ".join(capsys.readouterr().err.split())
    assert not (tmp_path / "e").exists()


def test_a_relative_member_folder_is_read_from_the_ensembles(tmp_path, tiny_drn_dir):
    import shutil

    shutil.copytree(tiny_drn_dir, tmp_path / "members" / "drn")
    Ensemble.save(tmp_path / "ens", EnsembleConfig(("drn", "fian"), ("../members/drn", None)))
    (name, folder), (other, shipped) = Ensemble.member_dirs(tmp_path / "ens")
    assert (name, other, shipped) == ("drn", "fian", None)
    assert folder.resolve() == (tmp_path / "members" / "drn").resolve()


def test_the_cli_refuses_a_member_checkpoint_of_another_model(tmp_path, tiny_fian_dir, capsys):
    assert main(["train", "ensemble", "--member", f"drn={tiny_fian_dir}",
                 "--out", str(tmp_path / "e")]) == 2
    assert "model_type 'fian', expected 'drn'" in capsys.readouterr().err
    assert not (tmp_path / "e").exists()
