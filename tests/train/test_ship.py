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
from moment_search.train.ship import chosen_fusion_weight, ship


def cascade_report(tmp_path, reranker="drn", weight=0.25, name="cascade_cv.json"):
    path = tmp_path / name
    path.write_text(json.dumps({"reranker": reranker, "chosen_weight": weight, "rows": []}))
    return path


def test_ship_stores_the_reports_w_keeps_the_settings_and_halves_the_weights(tmp_path,
                                                                              tiny_drn_dir):
    report = cascade_report(tmp_path)
    out = ship(tiny_drn_dir, tmp_path / "shipped", report)
    config, extra = DRN.read_config(out)
    original_config, original_extra = DRN.read_config(tiny_drn_dir)
    assert config == original_config
    assert extra == {**original_extra, "fusion_weight": 0.25,
                     "fusion_weight_report": str(report)}
    stored = load_file(str(out / "model.safetensors"))
    original = DRN.from_pretrained(tiny_drn_dir).state_dict()
    assert stored.keys() == original.keys()
    for key, value in stored.items():
        if value.is_floating_point():
            assert value.dtype == torch.float16
            torch.testing.assert_close(value.float(), original[key].half().float())
    loaded = DRN.from_pretrained(out).state_dict()
    assert all(v.dtype == torch.float32 for v in loaded.values() if v.is_floating_point())


def test_ship_without_a_report_or_halving_changes_nothing_but_the_folder(tmp_path, tiny_drn_dir):
    out = ship(tiny_drn_dir, tmp_path / "full", half=False)
    assert DRN.read_config(out) == DRN.read_config(tiny_drn_dir)
    original = DRN.from_pretrained(tiny_drn_dir).state_dict()
    for key, value in load_file(str(out / "model.safetensors")).items():
        torch.testing.assert_close(value, original[key], rtol=0, atol=0)


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
    with pytest.raises(InputError, match="missing.json"):
        chosen_fusion_weight(tmp_path / "missing.json", "drn")


def test_the_cli_writes_the_shipped_folder_and_refuses_bad_input_leaving_out_untouched(
        tmp_path, tiny_drn_dir, capsys):
    report = cascade_report(tmp_path, weight=0.5)
    out = tmp_path / "drn-w"
    assert main(["train", "ship", "--model", str(tiny_drn_dir), "--out", str(out),
                 "--cascade-report", str(report)]) == 0
    assert DRN.read_config(out)[1]["fusion_weight"] == 0.5
    before = (out / "config.json").read_text()
    wrong = cascade_report(tmp_path, reranker="pln", name="pln.json")
    assert main(["train", "ship", "--model", str(tiny_drn_dir), "--out", str(out),
                 "--cascade-report", str(wrong)]) == 2
    assert "pln.json" in capsys.readouterr().err
    assert (out / "config.json").read_text() == before  # nothing half-written
    with pytest.raises(CheckpointError, match="config.json"):
        ship(tmp_path / "nowhere", tmp_path / "x")
