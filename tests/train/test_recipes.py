"""recipes/*.toml against the settings stored in the shipped checkpoints, and the recipe loader's
merging, type checks and errors."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from moment_search.benchmarks.position_bias import PositionBiasConfig

import moment_search.pretrained
from moment_search.models.drn import DRNConfig
from moment_search.models.fian import FIANConfig
from moment_search.models.fvmr import FVMRConfig
from moment_search.models.lpnet import LPNetConfig
from moment_search.models.pln import PLNConfig
from moment_search.models.video_text import VideoTextConfig
from moment_search.train.batching import MAX_TOKENS, TEXT_MODEL
from moment_search.train.cell_prior import PriorConfig
from moment_search.train.compose import compose
from moment_search.train.drn_trainer import DRNTrainConfig
from moment_search.train.fian_trainer import FIANTrainConfig
from moment_search.train.fvmr_trainer import TrainConfig
from moment_search.train.lpnet_trainer import LPNetTrainConfig
from moment_search.train.pln_trainer import PLNTrainConfig
from moment_search.train.recipes import (
    RecipeError,
    convert,
    resolve,
    resolve_keywords,
)
from moment_search.train.video_text_trainer import VideoTextTrainConfig

SHIPPED = Path(moment_search.pretrained.__file__).parent
ROOT = Path(__file__).resolve().parents[2]
RECIPES = ROOT / "recipes"
CONFIGS = {"fvmr": (FVMRConfig, TrainConfig), "pln": (PLNConfig, PLNTrainConfig),
           "fian": (FIANConfig, FIANTrainConfig), "drn": (DRNConfig, DRNTrainConfig),
           "lpnet": (LPNetConfig, LPNetTrainConfig),
           "video-text": (VideoTextConfig, VideoTextTrainConfig)}
RUN_KEYS = ("data", "feature_rate", "train_split")  # the run settings a checkpoint stores


def as_json(config) -> dict:
    """A config dataclass as config.json holds it (tuples as lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config), default=str))


def stored(name: str) -> dict:
    return json.loads((SHIPPED / name / "config.json").read_text())


def recipe_of(name: str, command: str):
    return resolve(RECIPES / f"{name}.toml", command, *CONFIGS[command], {})


def check_train_config(resolved, stored_config: dict) -> None:
    """Every stored key equal; a field added since the checkpoint was made keeps its default
    (the behaviour the checkpoint was trained with)."""
    values, defaults = as_json(resolved), as_json(type(resolved)())
    assert set(stored_config) <= set(values)
    for key, value in values.items():
        assert value == stored_config.get(key, defaults[key]), key


def check_run(recipe, extra: dict) -> None:
    """The run settings, and the text side every trainer uses, as the checkpoint stores them."""
    run = as_json(recipe.run)
    assert {key: run[key] for key in RUN_KEYS} == {key: extra[key] for key in RUN_KEYS}
    assert (extra["text_model"], extra["max_tokens"]) == (TEXT_MODEL, MAX_TOKENS)


def test_every_shipped_checkpoint_has_a_recipe():
    shipped = sorted(p.parent.name for p in SHIPPED.glob("*/config.json"))
    assert shipped and sorted(p.stem for p in RECIPES.glob("*.toml")) == shipped


@pytest.mark.parametrize("name", ["pln-charades-clip", "fian-charades-clip",
                                  "drn-charades-clip", "lpnet-charades-clip"])
def test_localizer_recipe_is_the_shipped_settings(name):
    command = name.split("-")[0]
    checkpoint = stored(name)
    recipe = recipe_of(name, command)
    assert checkpoint["model_type"] == command
    assert as_json(recipe.model) == checkpoint["config"]
    check_train_config(recipe.train, checkpoint["extra"]["train_config"])
    check_run(recipe, checkpoint["extra"])
    assert checkpoint["extra"]["nms_threshold"] == recipe.train.nms_threshold
    if command == "pln":
        assert checkpoint["extra"]["strategy"] == recipe.train.strategy


def test_fvmr_recipe_is_the_shipped_search_checkpoint():
    checkpoint = stored("fvmr-charades-clip")
    path = RECIPES / "fvmr-charades-clip.toml"
    fvmr, video_text = recipe_of("fvmr-charades-clip", "fvmr"), recipe_of(path.stem, "video-text")
    terms = resolve_keywords(path, "compose", compose, {})
    composed = dataclasses.replace(fvmr.model, video_text=dataclasses.asdict(video_text.model),
                                   video_weight=terms["video_weight"],
                                   hub_weight=terms["hub_weight"], hub_bank=terms["hub_bank"],
                                   cell_prior=True,
                                   one_video_text_scale=one_video_scale(checkpoint))
    assert as_json(composed) == checkpoint["config"]
    check_train_config(fvmr.train, checkpoint["extra"]["train_config"])
    check_run(fvmr, checkpoint["extra"])
    recorded = checkpoint["extra"]["composed"]
    assert {k: recorded[k] for k in ("video_weight", "hub_weight", "hub_bank", "seed")} == {
        k: terms[k] for k in ("video_weight", "hub_weight", "hub_bank", "seed")}
    assert recorded["bank_split"] == terms["split"]
    assert video_text.train.n_clips == fvmr.model.n_clips  # compose's check_video_text
    prior = checkpoint["extra"]["cell_prior"]  # benchmark position-bias --write-model
    report = json.loads((ROOT / prior["report"]).read_text())
    assert prior["strength"] == (0.0 if report["chosen_strength"] == "none"
                                 else report["chosen_strength"])
    assert prior["fitted_on"] == report["fitted_on"] == "own training sentences"
    fold_models, fold_data = report["config"]["fold_models"], report["config"]["fold_data"]
    assert report["n_folds"] == len(fold_models) == len(set(fold_data)) >= 2
    assert report["model"] not in fold_models
    assert report["config"]["strengths"] == list(PositionBiasConfig.strengths)
    assert prior["rule"] == PriorConfig(strength=prior["strength"]).to_dict() == report["rule"]
    from safetensors.numpy import load_file

    weights = load_file(SHIPPED / "fvmr-charades-clip" / "model.safetensors")["proposal_prior"]
    np.testing.assert_array_equal(weights, np.array(report["prior"], dtype=np.float32))


def one_video_scale(checkpoint: dict) -> float:
    """The shipped one-video scale, checked against the report that chose it (benchmark
    one-video-weight --write-model), on the fold models the prior's strength was chosen on."""
    from moment_search.benchmarks.one_video_weight import OneVideoWeightConfig

    record = checkpoint["extra"]["one_video_weight"]
    report = json.loads((ROOT / record["report"]).read_text())
    assert record["scale"] == report["chosen_scale"]
    assert report["config"]["scales"] == list(OneVideoWeightConfig.scales)
    prior = json.loads((ROOT / checkpoint["extra"]["cell_prior"]["report"]).read_text())
    assert report["config"]["fold_models"] == prior["config"]["fold_models"]
    assert report["config"]["fold_data"] == prior["config"]["fold_data"]
    return record["scale"]


@pytest.mark.parametrize("name", ["pln", "fian", "drn", "lpnet", "ensemble"])
def test_each_shipped_reranker_stores_the_fusion_weight_its_folds_chose(name):
    extra = stored(f"{name}-charades-clip")["extra"]
    source = extra.get("fusion_weight_report", f"reports/{name}_cascade_cv/cascade_cv.json")
    report = json.loads((ROOT / source).read_text())
    assert report["reranker"] == name
    assert extra["fusion_weight"] == report["chosen_weight"]


def test_the_shipped_drn_is_its_recipe_with_the_term_and_the_ensemble_keeps_the_one_before():
    """The ensemble's DRN and the search checkpoint's teacher: the DRN its choices were made
    with (no cross-video term, the w its own cascade table chose), not the shipped one."""
    shipped = stored("drn-charades-clip")["extra"]
    assert recipe_of("drn-charades-clip", "drn").train.cross_video_weight > 0
    assert shipped["train_config"]["cross_video_weight"] > 0
    assert shipped["fusion_weight_report"] == "reports/drn_cross_video_cv/cascade_cv.json"
    member = json.loads((SHIPPED / "ensemble-charades-clip" / "drn" / "config.json").read_text())
    assert member["model_type"] == "drn"
    assert member["extra"]["train_config"].get("cross_video_weight", 0.0) == 0.0
    before = json.loads((ROOT / "reports/drn_cascade_cv/cascade_cv.json").read_text())
    assert member["extra"]["fusion_weight"] == before["chosen_weight"]
    assert "--model moment_search/pretrained/ensemble-charades-clip/drn" in \
        (RECIPES / "fvmr-charades-clip.toml").read_text()


def test_the_default_per_video_cap_is_the_one_its_folds_chose():
    from moment_search.search.localize import CORPUS_PER_VIDEO

    report = json.loads((ROOT / "reports/per_video_cv/per_video_cv.json").read_text())
    assert report["chosen_cap"] == CORPUS_PER_VIDEO
    # chosen on the fold search checkpoints the cascade weights were chosen on
    for name in ("pln", "fian", "drn", "lpnet", "ensemble"):
        cascade = json.loads((ROOT / f"reports/{name}_cascade_cv/cascade_cv.json").read_text())
        assert cascade["search"] == report["search"]
        assert cascade["fold_data"] == report["fold_data"]
        assert cascade["per_video"] == CORPUS_PER_VIDEO  # chosen under the cap


def test_ensemble_recipe_is_the_shipped_ensemble():
    import tomllib

    checkpoint = stored("ensemble-charades-clip")
    members = tomllib.loads((RECIPES / "ensemble-charades-clip.toml").read_text())["ensemble"][
        "members"]
    assert checkpoint["model_type"] == "ensemble"
    assert checkpoint["config"] == {"members": members, "checkpoints": ["drn", None]}
    chosen = json.loads((ROOT / "reports/ensemble_cv/ensemble_cv.json").read_text())
    assert chosen["chosen"] == members and checkpoint["extra"]["chosen_by"]["benchmark"] == \
        "ensemble-cv"
    weight = json.loads((ROOT / "reports/ensemble_cascade_cv/cascade_cv.json").read_text())
    assert weight["reranker"] == "ensemble" and weight["fold_models"] != weight["model"]
    assert checkpoint["extra"]["fusion_weight"] == weight["chosen_weight"]


def write(tmp_path, text: str) -> Path:
    path = tmp_path / "r.toml"
    path.write_text(text)
    return path


def test_defaults_then_file_then_overrides(tmp_path):
    path = write(tmp_path, '[pln]\ndata = "corpus"\n[pln.model]\nstage_clips = [4, 8]\n'
                           '[pln.train]\nepochs = 3\nlr = 1\nextras = ["charades-actions"]\n')
    recipe = resolve(path, "pln", PLNConfig, PLNTrainConfig, {"train": {"epochs": 5}})
    assert recipe.run.data == Path("corpus") and recipe.trainer_options() == {}
    assert recipe.model.stage_clips == (4, 8) and recipe.model.hidden_dim == PLNConfig.hidden_dim
    assert recipe.train.epochs == 5 and recipe.train.lr == 1.0
    assert isinstance(recipe.train.lr, float) and recipe.train.extras == ("charades-actions",)
    assert resolve(None, "pln", PLNConfig, PLNTrainConfig, {}).train == PLNTrainConfig()


@pytest.mark.parametrize(("text", "message"), [
    ("[pln.train]\nepoch = 3\n", "r.toml: pln.train: unknown key 'epoch' (did you mean 'epochs'?)"),
    ("[pln.train]\nepochs = \"ten\"\n", "r.toml: pln.train.epochs: expected int, got str 'ten'"),
    ("[pln.train]\nepochs = true\n", "pln.train.epochs: expected int, got bool True"),
    ("[pln.model]\nstage_clips = 8\n", "pln.model.stage_clips: expected list of int, got int 8"),
    ("[pln]\ndat = 'x'\n", "r.toml: pln: unknown key 'dat' (did you mean 'data'?)"),
    ("[pnl]\n", "r.toml: unknown key 'pnl' (did you mean 'pln'?)"),
    ("[fian]\n", "r.toml: no table 'pln' (it has: 'fian')"),
    ("[pln\n", "r.toml: not valid TOML"),
])
def test_bad_recipe_names_the_file_and_key(tmp_path, text, message):
    with pytest.raises(RecipeError) as caught:
        resolve(write(tmp_path, text), "pln", PLNConfig, PLNTrainConfig, {})
    assert message in str(caught.value)


def test_missing_recipe_file(tmp_path):
    with pytest.raises(RecipeError, match="recipe file not found: .*nope.toml"):
        resolve(tmp_path / "nope.toml", "pln", PLNConfig, PLNTrainConfig, {})


def test_compose_table_is_checked_against_its_keywords(tmp_path):
    path = write(tmp_path, "[compose]\nhub_bank = 5\nvideo_weight = 1\n")
    assert resolve_keywords(path, "compose", compose, {"seed": 2}) == {
        "hub_bank": 5, "video_weight": 1.0, "seed": 2}
    with pytest.raises(RecipeError, match="compose: unknown key 'hub_banks'"):
        resolve_keywords(write(tmp_path, "[compose]\nhub_banks = 5\n"), "compose", compose, {})


@pytest.mark.parametrize(("value", "hint", "expected"), [
    (3, float, 3.0), ([7, 3, 2], tuple[int, int, int], (7, 3, 2)), (None, int | None, None),
    ("a", str | None, "a"), ({"level": "moment"}, dict | None, {"level": "moment"}),
])
def test_convert_accepts(value, hint, expected):
    assert convert(value, hint) == expected


@pytest.mark.parametrize(("value", "hint"), [
    (1.5, int), (True, float), ([1, 2], tuple[int, int, int]), (["a"], tuple[int, ...]),
    (1, str | None), ("x", bool),
])
def test_convert_rejects(value, hint):
    with pytest.raises(TypeError, match="expected"):
        convert(value, hint)
