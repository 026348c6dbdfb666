"""``train ship``: a trained checkpoint written as it ships, with the w a cascade-cv report
chose."""

import json

import pytest
import torch
from moment_search.cli.app import main
from safetensors.torch import load_file

from moment_search.errors import InputError
from moment_search.models.base import CheckpointError
from moment_search.models.drn import DRN
from moment_search.models.ensemble import Ensemble, EnsembleConfig
from moment_search.train.ship import chosen_fusion_weight, ship


def cascade_report(tmp_path, reranker="drn", weight=0.25, name="cascade_cv.json"):
    path = tmp_path / name
    path.write_text(json.dumps({"reranker": reranker, "chosen_weight": weight, "rows": []}))
    return path


def test_ship_stores_the_reports_w_keeps_the_settings_and_halves_the_weights(tmp_path,
                                                                              tiny_drn_dir,
                                                                              monkeypatch):
    report = cascade_report(tmp_path)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    out = ship(tiny_drn_dir, tmp_path / "shipped", report)
    config, extra = DRN.read_config(out)
    original_config, original_extra = DRN.read_config(tiny_drn_dir)
    assert config == original_config
    assert extra == {**original_extra, "fusion_weight": 0.25,
                     "fusion_weight_report": str(report)}  # not under the working folder
    stored = load_file(str(out / "model.safetensors"))
    original = DRN.from_pretrained(tiny_drn_dir).state_dict()
    assert stored.keys() == original.keys()
    for key, value in stored.items():
        if value.is_floating_point():
            assert value.dtype == torch.float16
            torch.testing.assert_close(value.float(), original[key].half().float())
    assert (out / "model.safetensors").stat().st_mode & 0o777 == 0o644
    loaded = DRN.from_pretrained(out).state_dict()
    assert all(v.dtype == torch.float32 for v in loaded.values() if v.is_floating_point())


def test_a_report_under_the_working_folder_is_recorded_relative_to_it(tmp_path, tiny_drn_dir,
                                                                      monkeypatch):
    report = cascade_report(tmp_path)
    monkeypatch.chdir(tmp_path)
    ship(tiny_drn_dir, tmp_path / "a", report.resolve())
    assert DRN.read_config(tmp_path / "a")[1]["fusion_weight_report"] == "cascade_cv.json"


def test_ship_without_a_report_or_halving_changes_nothing_but_the_folder(tmp_path, tiny_drn_dir):
    out = ship(tiny_drn_dir, tmp_path / "full", half=False)
    assert DRN.read_config(out) == DRN.read_config(tiny_drn_dir)
    original = DRN.from_pretrained(tiny_drn_dir).state_dict()
    for key, value in load_file(str(out / "model.safetensors")).items():
        torch.testing.assert_close(value, original[key], rtol=0, atol=0)


def test_an_ensemble_is_copied_with_its_member_folders_and_given_its_w(tmp_path, tiny_drn_dir):
    ensemble = tmp_path / "ens"
    Ensemble.save(ensemble, EnsembleConfig(("drn",), ("drn",)), {"chosen_by": "x"})
    ship(tiny_drn_dir, ensemble / "drn", half=False)  # a member folder inside it
    out = ship(ensemble, tmp_path / "shipped", cascade_report(tmp_path, "ensemble", 0.75))
    assert Ensemble.read_config(out)[1]["fusion_weight"] == 0.75
    assert Ensemble.read_config(out)[1]["chosen_by"] == "x"
    (_, member), = Ensemble.member_dirs(out)
    assert DRN.read_config(member) == DRN.read_config(tiny_drn_dir)
    # a member's weights are copied as they are: halving rewrites the folder's own weights only
    assert load_file(str(member / "model.safetensors"))["query.w3.weight"].dtype == torch.float32


@pytest.mark.parametrize(("payload", "message"), [
    ('{"reranker": "fian", "chosen_weight": 0.5}',
     "chose w for 'fian', but the checkpoint is a 'drn'"),
    ('{"reranker": "drn"}', "not a cascade-cv report"),
    ("[1, 2]", "not a cascade-cv report"),
    ("{oops", "not a cascade-cv report"),
    ('{"reranker": "drn", "chosen_weight": 1.5}', "chosen_weight 1.5, expected a number in [0, 1]"),
    ('{"reranker": "drn", "chosen_weight": true}', "chosen_weight True"),
])
def test_a_report_that_is_not_the_checkpoints_is_refused_naming_the_file(tmp_path, payload,
                                                                         message):
    path = tmp_path / "bad.json"
    path.write_text(payload)
    with pytest.raises(InputError) as error:
        chosen_fusion_weight(path, "drn")
    assert str(path) in str(error.value) and message in str(error.value)


def test_a_missing_report_or_a_model_that_does_not_rerank_is_refused(tmp_path):
    with pytest.raises(InputError, match="missing.json: cannot read it"):
        chosen_fusion_weight(tmp_path / "missing.json", "drn")
    with pytest.raises(InputError, match="'fvmr' checkpoint does not rerank"):
        chosen_fusion_weight(cascade_report(tmp_path), "fvmr")


@pytest.mark.parametrize("model_type", [["drn"], None, "no-such-model"])
def test_a_config_without_a_known_model_type_is_refused_naming_it(tmp_path, model_type):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": model_type}))
    with pytest.raises(CheckpointError, match="m/config.json: model_type"):
        ship(folder, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_checkpoint_without_weights_or_with_bad_extras_is_refused(tmp_path, tiny_drn_dir):
    folder = ship(tiny_drn_dir, tmp_path / "m", half=False)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "extra": None}))
    with pytest.raises(CheckpointError, match="'extra' is NoneType"):
        ship(folder, tmp_path / "out", cascade_report(tmp_path))
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="no model.safetensors"):
        ship(folder, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_out_on_model_and_halving_beside_other_files_are_refused(tmp_path, tiny_drn_dir):
    copy = ship(tiny_drn_dir, tmp_path / "copy", half=False)
    before = (copy / "model.safetensors").read_bytes()
    for out in (copy, copy / "inside", tmp_path):
        with pytest.raises(InputError, match="is, holds or lies in --model"):
            ship(copy, out)
    assert not (copy / "inside").exists()
    (copy / "relevance.json").write_text("{}")
    with pytest.raises(InputError, match=r"holds \['relevance.json'\].*--no-half"):
        ship(copy, tmp_path / "half")
    assert not (tmp_path / "half").exists()
    assert (copy / "model.safetensors").read_bytes() == before
    kept = ship(copy, tmp_path / "kept", half=False)
    assert (kept / "relevance.json").read_text() == "{}"


def test_the_cli_writes_the_shipped_folder_and_refuses_bad_input_leaving_out_untouched(
        tmp_path, tiny_drn_dir, capsys):
    report = cascade_report(tmp_path, weight=0.5)
    out = tmp_path / "drn-w"
    assert main(["train", "ship", "--model", str(tiny_drn_dir), "--out", str(out),
                 "--cascade-report", str(report)]) == 0
    assert DRN.read_config(out)[1]["fusion_weight"] == 0.5
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    wrong = cascade_report(tmp_path, reranker="pln", name="pln.json")
    assert main(["train", "ship", "--model", str(tiny_drn_dir), "--out", str(out),
                 "--cascade-report", str(wrong)]) == 2
    assert "pln.json" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # out kept as it was
    assert main(["train", "ship", "--model", str(tmp_path / "nowhere"),
                 "--out", str(tmp_path / "x")]) == 2
    assert "nowhere/config.json" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
