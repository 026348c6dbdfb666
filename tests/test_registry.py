import json
import subprocess
import sys

import pytest
from moment_search.cli.app import main

from moment_search import registry
from moment_search.errors import UnknownNameError


def _shipped_folders() -> dict[str, str]:
    """model_type -> folder of every checkpoint inside pretrained/ (read from its config.json)."""
    return {json.loads((p / "config.json").read_text())["model_type"]: p.name
            for p in registry.PRETRAINED_DIR.iterdir() if (p / "config.json").is_file()}


def test_the_registry_lists_every_shipped_checkpoint_under_its_model_type():
    shipped = _shipped_folders()
    assert shipped, "no shipped checkpoint found"
    assert {n: registry.MODELS[n].checkpoint for n in registry.list_shipped()} == shipped
    for name in shipped:
        assert registry.shipped_checkpoint(name).name == shipped[name]


@pytest.mark.parametrize("name", registry.list_models())
def test_each_model_class_carries_its_registry_key(name):
    assert registry.model_class(name).model_type == name


@pytest.mark.parametrize("name", registry.list_shipped())
def test_each_shipped_checkpoint_reads_with_its_model_class(name):
    config, _ = registry.model_class(name).read_config(registry.shipped_checkpoint(name))
    assert config is not None


@pytest.mark.parametrize("name", registry.list_rerankers())
def test_each_reranker_resolves_to_a_class_of_its_model(name):
    reranker = registry.reranker_class(name)
    assert reranker.name == name
    assert reranker.model_class is registry.model_class(name)
    assert callable(reranker.load)


@pytest.mark.parametrize("name", registry.list_localizers())
def test_each_evaluate_name_resolves_to_a_loader(name):
    assert callable(registry.localizer_loader(name))


def test_every_model_that_reranks_or_localizes_is_an_evaluate_name():
    models = {n for n, s in registry.MODELS.items() if s.reranker or s.localizer}
    assert models and models <= set(registry.list_localizers())
    assert "video-text" not in registry.list_localizers()  # a model with neither


def test_shipped_models_read_features_of_a_registered_frame_encoder():
    for name in registry.list_shipped():
        encoder = registry.MODELS[name].frame_encoder
        assert encoder in registry.list_frame_encoders(), name
        assert callable(registry.frame_encoder_factory(encoder))
    assert registry.frame_encoder_factory("no-such-encoder") is None


@pytest.mark.parametrize("lookup, parameter", [
    (registry.model_spec, "model"), (registry.reranker_class, "rerank"),
    (registry.localizer_loader, "model")])
def test_an_unknown_name_is_a_user_error_naming_the_known_ones(lookup, parameter):
    with pytest.raises(UnknownNameError, match="unknown .*'nope'; expected one of: ") as caught:
        lookup("nope")
    assert caught.value.parameter == parameter


def test_a_model_without_a_shipped_checkpoint_says_pass_a_folder():
    with pytest.raises(FileNotFoundError, match="no shipped checkpoint for model 'video-text'"):
        registry.shipped_checkpoint("video-text")


def test_a_registered_localizer_is_listed_and_loaded(monkeypatch):
    monkeypatch.setitem(registry.LOCALIZERS, "constant", "json:loads")
    registry.register_localizer("constant", json.loads)
    assert "constant" in registry.list_localizers()
    assert registry.localizer_loader("constant") is json.loads


def test_the_cli_lists_the_registry(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # a narrow help panel wraps the list of choices
    choices = "<" + "|".join(registry.list_rerankers()) + ">"
    for command in ("query", "serve"):
        assert main([command, "--help"]) == 0
        assert choices in capsys.readouterr().out
    assert main(["query", "a person", "--rerank", "nope"]) == 2
    assert "'nope' is not one of" in capsys.readouterr().err


def test_listing_names_imports_no_model():
    code = ("import sys\n"
            "from moment_search import registry\n"
            "registry.list_localizers(); registry.list_rerankers(); registry.list_models()\n"
            "registry.shipped_checkpoint('fvmr'); registry.localizer_loader('prior')\n"
            "print([m for m in ('torch', 'faiss', 'onnxruntime') if m in sys.modules])\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"
