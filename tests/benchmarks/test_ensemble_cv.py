"""benchmark ensemble-cv on tiny fold corpora: every subset of the members scored per fold, the
mean, the choice, the written ensemble; and the fold checks that see through an ensemble."""

import pytest
from moment_search.benchmarks import ensemble_cv
from moment_search.cli.app import main

from moment_search.errors import InputError
from moment_search.models.ensemble import Ensemble, EnsembleConfig
from moment_search.train.folds import check_fold_checkpoint, trained_fold
from tests.benchmarks.fold_checks import as_fold_model, assert_fold_means


@pytest.fixture()
def members(tmp_path, tiny_drn_dir, tiny_fian_dir, tiny_pln_dir):
    sources = {"drn": tiny_drn_dir, "fian": tiny_fian_dir, "pln": tiny_pln_dir}
    return tuple((name, tuple(as_fold_model(source, tmp_path / f"{name}{k}", f"{k}/2")
                              for k in (0, 1)))
                 for name, source in sources.items())


def test_every_subset_is_scored_on_every_fold_and_the_best_mean_is_written(folds, members,
                                                                           tmp_path):
    report = ensemble_cv.run(ensemble_cv.EnsembleCVConfig(
        tmp_path / "out", folds, members, write_model=tmp_path / "ens"))
    settings = {r["setting"] for r in report["rows"]}
    assert settings == {"drn", "fian", "pln", "drn+fian", "drn+pln", "fian+pln",
                        "drn+fian+pln"}
    assert_fold_means(report, "R1@0.5+R1@0.7")
    assert [r["score"] for r in report["rows"]] == sorted(
        (r["score"] for r in report["rows"]), reverse=True)
    assert report["chosen"] == report["rows"][0]["members"]
    config, extra = Ensemble.read_config(tmp_path / "ens")
    assert list(config.members) == report["chosen"]
    assert config.checkpoints == (None,) * len(config.members)  # the shipped members
    assert extra["chosen_by"]["benchmark"] == "ensemble-cv"
    assert "fold 1 score" in (tmp_path / "out" / "ensemble_cv.md").read_text()


def test_a_member_checkpoint_of_the_scored_fold_is_refused_before_any_run(folds, members,
                                                                          tmp_path):
    swapped = tuple((name, checkpoints[::-1]) for name, checkpoints in members)
    with pytest.raises(InputError, match="holds out fold"):
        ensemble_cv.run(ensemble_cv.EnsembleCVConfig(tmp_path / "out", folds, swapped))
    assert not (tmp_path / "out").exists()
    # an ensemble is checked through its members
    (name_a, a), (name_b, b) = members[:2]
    Ensemble.save(tmp_path / "good", EnsembleConfig((name_a, name_b), (str(a[0]), str(b[0]))))
    check_fold_checkpoint(folds[0], tmp_path / "good")
    Ensemble.save(tmp_path / "mixed", EnsembleConfig((name_a, name_b), (str(a[0]), str(b[1]))))
    with pytest.raises(InputError, match="holds out fold"):
        check_fold_checkpoint(folds[0], tmp_path / "mixed")
    # the shipped members were trained on other data (all of the real train split)
    Ensemble.save(tmp_path / "shipped", EnsembleConfig((name_a, name_b), (None, None)))
    with pytest.raises(InputError):
        check_fold_checkpoint(folds[0], tmp_path / "shipped")
    # an ensemble of fold members is a fold model: cascade-cv's --model refuses it
    assert trained_fold(tmp_path / "good") == "0/2" and trained_fold(tmp_path / "shipped") is None


@pytest.mark.parametrize("change, match", [
    (dict(fold_data=()), "two folds or more"),
    (dict(members=()), "two different rerankers"),
    (dict(members=(("drn", ("a", "b")), ("drn", ("a", "b")))), "two different rerankers"),
    (dict(members=(("drn", ("a",)), ("fian", ("a", "b")))), "1 checkpoints for 2 folds"),
])
def test_malformed_options_are_refused(folds, members, tmp_path, change, match):
    options = {"out": tmp_path / "out", "fold_data": folds, "members": members, **change}
    with pytest.raises(InputError, match=match):
        ensemble_cv.EnsembleCVConfig(**options)


def test_the_cli_names_what_is_wrong(tmp_path, capsys):
    assert main(["benchmark", "ensemble-cv", "--out", str(tmp_path / "r"),
                 "--fold-data", str(tmp_path), "--member", f"drn={tmp_path}"]) == 2
    assert "two folds or more" in capsys.readouterr().err
