"""Every ``moment-search train`` command on tiny data, through a recipe file (defaults, then the
file, then the options given), and the recipe errors as the user sees them."""

import dataclasses
import json
import shutil

import pytest
import typer
from moment_search.cli.app import main
from moment_search.cli.train_options import NOT_SETTINGS, sort_options

from moment_search.models.fvmr import FVMR
from moment_search.models.pln import PLNConfig
from moment_search.train import reranker_data
from moment_search.train.compose import compose
from moment_search.train.fian_trainer import FIANTrainConfig
from moment_search.train.pln_trainer import PLNTrainConfig
from moment_search.train.recipes import RunSettings, field_types, resolve
from tests.conftest import write_tiny_charades
from tests.train.localizer_checks import FakeEncoder
from tests.train.test_recipes import CONFIGS, RECIPES, SHIPPED

# [model] and [train] of a tiny, one-epoch run of each trainer on the tiny corpus (8-d features).
TINY = {
    "fvmr": ("feature_dim = 8\nn_clips = 8\nhidden_dim = 16\nspace_dim = 8\ndropout = 0.0",
             "epochs = 1\nbatch_size = 4\nwarmup_epochs = 0\nvideo_batches = true"),
    "pln": ("feature_dim = 8\nstage_clips = [4, 8]\nhidden_dim = 8\nlstm_layers = 1",
            "epochs = 1\nbatch_size = 2\nlr = 0.01"),
    "fian": ("feature_dim = 8\nhidden_dim = 8\nheads = 2\nn_steps = 16\nkernels = [4, 6]\n"
             "dropout = 0.0", "epochs = 1\nbatch_size = 2"),
    "drn": ("feature_dim = 8\nlstm_dim = 8\nn_segments = 8\nchannels = 8\nfpn_dim = 8\n"
            "position_dim = 4", "stage_epochs = [1, 0, 0]\nbatch_size = 4"),
    "lpnet": ("feature_dim = 8\nhidden_dim = 8\nn_heads = 2\nn_conv = 1\nkernel = 3\n"
              "n_clips = 8\nn_proposals = 6\nn_samples = 4\ndynamic_dim = 4\ndropout = 0.0",
              "epochs = 1\nbatch_size = 2"),
    "video-text": ("feature_dim = 8\nhidden_dim = 16\nembed_dim = 8\nlevel = \"moment\"",
                   "epochs = 1\nbatch_videos = 4\nn_clips = 8\nextras = [\"charades-actions\"]"),
}


def tiny_recipe(tmp_path, command: str, corpus) -> str:
    """A recipe file with the tiny ``[command]`` table (and the Charades files it may read)."""
    charades = write_tiny_charades(tmp_path / "charades", corpus)
    model, train = TINY[command]
    path = tmp_path / "tiny.toml"
    path.write_text(f'[{command}]\ndata = "{corpus}"\nfeature_rate = 1.0\n'
                    f'charades_dir = "{charades}"\n\n[{command}.model]\n{model}\n\n'
                    f"[{command}.train]\n{train}\nthreads = 1\nseed = 0\n")
    return str(path)


def stored_config(out) -> dict:
    return json.loads((out / "best" / "config.json").read_text())


@pytest.mark.parametrize("command", list(TINY))
def test_train_command_runs_its_recipe_with_overrides(command, tiny_corpus, tmp_path,
                                                      monkeypatch):
    monkeypatch.setattr(reranker_data, "TokenEncoder", lambda max_length: FakeEncoder())
    out = tmp_path / "run"
    recipe = tiny_recipe(tmp_path, command, tiny_corpus)
    assert main(["train", command, "--recipe", recipe, "--out", str(out), "--seed", "3"]) == 0
    stored = stored_config(out)
    train = stored["extra"]["train_config"]
    assert train["seed"] == 3 and train["threads"] == 1  # the option wins; the file stays
    assert stored["extra"]["feature_rate"] == 1.0 and stored["config"]["feature_dim"] == 8
    assert len((out / "history.jsonl").read_text().splitlines()) == 1


def test_options_alone_fall_back_to_the_dataclass_defaults(tiny_corpus, tmp_path, monkeypatch):
    monkeypatch.setattr(reranker_data, "TokenEncoder", lambda max_length: FakeEncoder())
    out = tmp_path / "run"
    recipe = tmp_path / "width.toml"  # FIAN has no --feature-dim; the tiny corpus is 8-d
    recipe.write_text("[fian.model]\nfeature_dim = 8\n")
    assert main(["train", "fian", "--recipe", str(recipe), "--data", str(tiny_corpus),
                 "--out", str(out), "--epochs", "1", "--hidden-dim", "8", "--heads", "2",
                 "--n-steps", "16", "--kernels", "4,6", "--branches", "video",
                 "--batch-size", "2", "--feature-rate", "1.0", "--threads", "1"]) == 0
    stored = stored_config(out)
    assert stored["config"]["kernels"] == [4, 6] and stored["config"]["branches"] == ["video"]
    train = stored["extra"]["train_config"]
    assert (train["lr"], train["tau"]) == (FIANTrainConfig.lr, FIANTrainConfig.tau)


def test_compose_reads_its_recipe_table(tiny_model_dir, session_corpus, tmp_path):
    recipe = tmp_path / "compose.toml"
    recipe.write_text(f'[compose]\ndata_dir = "{session_corpus}"\nhub_weight = 0.5\n'
                      f"hub_bank = 2\nseed = 1\n")
    out = tmp_path / "search"
    assert main(["train", "compose", "--recipe", str(recipe), "--fvmr", str(tiny_model_dir),
                 "--out", str(out), "--hub-weight", "0.25"]) == 0
    _, extra = FVMR.read_config(out)
    composed = extra["composed"]
    assert (composed["hub_bank"], composed["seed"], composed["hub_weight"]) == (2, 1, 0.25)


def test_compose_options_are_its_keywords():
    assert {"video_weight", "hub_weight", "hub_bank", "data_dir", "seed", "split",
            "video_text_dir"} == set(field_types(compose))


@pytest.mark.parametrize(("text", "expected"), [
    ("[pln.train]\nepoch = 1\n", "pln.train: unknown key 'epoch'"),
    ("[pln.train]\nepochs = \"one\"\n", "pln.train.epochs: expected int, got str 'one'"),
])
def test_bad_recipe_is_one_error_naming_file_and_key(text, expected, tmp_path, capsys):
    recipe = tmp_path / "bad.toml"
    recipe.write_text(text)
    assert main(["train", "pln", "--recipe", str(recipe), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "Traceback" not in err
    assert str(recipe) in "".join(err.split()) and expected in " ".join(err.split())
    assert not (tmp_path / "o").exists()


def test_missing_recipe_file_is_one_error(tmp_path, capsys):
    missing = tmp_path / "nope.toml"
    assert main(["train", "fvmr", "--recipe", str(missing), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "recipe file not found" in err
    assert str(missing) in "".join(err.split())


def test_a_run_needs_a_corpus(tmp_path, capsys):
    assert main(["train", "drn", "--out", str(tmp_path / "o")]) == 2
    assert "no corpus: give --data DIR" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["fvmr", "drn", "video-text"])
def test_print_recipe_round_trips(command, tmp_path, capsys):
    shipped = RECIPES / ("fvmr-charades-clip.toml" if command == "video-text"
                         else f"{command}-charades-clip.toml")
    assert main(["train", command, "--recipe", str(shipped), "--seed", "7", "--print-recipe"]) == 0
    printed = tmp_path / "printed.toml"
    printed.write_text(capsys.readouterr().out)
    classes = CONFIGS[command]
    again = resolve(printed, command, *classes, {})
    original = resolve(shipped, command, *classes, {})
    assert again.train.seed == 7
    assert again == dataclasses.replace(original, train=dataclasses.replace(original.train, seed=7))


def test_print_recipe_without_a_recipe_prints_the_defaults(tmp_path, capsys):
    assert main(["train", "pln", "--print-recipe"]) == 0
    printed = tmp_path / "printed.toml"
    printed.write_text(capsys.readouterr().out)
    recipe = resolve(printed, "pln", PLNConfig, PLNTrainConfig, {})
    assert (recipe.model, recipe.train) == (PLNConfig(), PLNTrainConfig())
    assert "epochs = 50" in printed.read_text()


def test_training_needs_an_out_directory(tiny_corpus, capsys):
    assert main(["train", "pln", "--data", str(tiny_corpus)]) == 2
    assert "give --out DIR" in capsys.readouterr().err


@pytest.mark.parametrize(("command", "options", "expected"), [
    ("drn", ["--stage-epochs", "0,1,1"], "stage_epochs must be three counts"),
    ("drn", ["--stage-epochs", "7,x,2"], "--stage-epochs: expected comma-separated int values"),
    ("lpnet", ["--extra", "bogus"], "--extra 'bogus': unknown kind"),
    ("fvmr", ["--fold", "5/5"], "--fold '5/5': expected K/N"),
])
def test_bad_option_is_one_error_line(command, options, expected, tiny_corpus, tmp_path,
                                      capsys):
    code = main(["train", command, "--data", str(tiny_corpus), "--out", str(tmp_path / "o"),
                 "--feature-rate", "1.0", *options])
    err = capsys.readouterr().err
    assert code == 2 and err.count("error:") == 1 and "Traceback" not in err
    assert expected in " ".join(err.split())


@pytest.mark.parametrize("command", ["pln", "compose"])
def test_out_inside_the_shipped_checkpoints_is_refused(command, tiny_corpus, tiny_model_dir,
                                                       capsys):
    out = SHIPPED / "pln-charades-clip" / "refused"  # a new folder: nothing to lose if it were not
    inputs = ["--fvmr", str(tiny_model_dir)] if command == "compose" else [
        "--data", str(tiny_corpus), "--epochs", "1"]
    try:
        assert main(["train", command, *inputs, "--out", str(out)]) == 2
        assert "holds the shipped checkpoints" in " ".join(capsys.readouterr().err.split())
        assert not out.exists()
    finally:
        shutil.rmtree(out, ignore_errors=True)


@pytest.mark.parametrize("command", list(CONFIGS))
def test_every_option_sets_one_config_field(command):
    from moment_search.cli.train import app as train_app

    click_command = typer.main.get_command(train_app).commands[command]
    names = {p.name for p in click_command.params} - NOT_SETTINGS
    sections = {"run": RunSettings, "model": CONFIGS[command][0], "train": CONFIGS[command][1]}
    options = {name: "1" for name in names}
    sorted_options = sort_options(command, options, sections)
    assert sum(len(fields) for fields in sorted_options.values()) == len(names)


def test_teacher_maps_command_feeds_a_keep_last_fvmr_run(tiny_corpus, tiny_drn_dir, tmp_path):
    recipe = tiny_recipe(tmp_path, "fvmr", tiny_corpus)
    maps = tmp_path / "drn.npz"
    assert main(["train", "teacher-maps", "--teacher", "drn", "--model", str(tiny_drn_dir),
                 "--recipe", recipe, "--out", str(maps), "--extra", "charades-actions"]) == 0
    out = tmp_path / "run"
    assert main(["train", "fvmr", "--recipe", recipe, "--out", str(out), "--epochs", "2",
                 "--extra", "charades-actions", "--teacher-map", str(maps),
                 "--map-weight", "2", "--keep", "last"]) == 0
    extra = stored_config(out)["extra"]
    assert extra["train_config"]["teacher_maps"] == [str(maps)]
    assert extra["train_config"]["map_weight"] == 2 and extra["train_config"]["keep"] == "last"
    assert extra["teacher_temperatures"][0] > 0
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert all(h["kept"] and "teacher_maps" in h["loss"] for h in history)


def test_teacher_maps_made_without_the_runs_extra_pairs_are_refused(tiny_corpus, tiny_drn_dir,
                                                                    tmp_path, capsys):
    recipe = tiny_recipe(tmp_path, "fvmr", tiny_corpus)
    maps = tmp_path / "drn.npz"
    assert main(["train", "teacher-maps", "--teacher", "drn", "--model", str(tiny_drn_dir),
                 "--recipe", recipe, "--out", str(maps)]) == 0
    capsys.readouterr()
    assert main(["train", "fvmr", "--recipe", recipe, "--out", str(tmp_path / "run"),
                 "--extra", "charades-actions", "--teacher-map", str(maps)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "drn.npz" in err and "no map for" in err
    assert main(["train", "teacher-maps", "--teacher", "nope", "--recipe", recipe,
                 "--out", str(tmp_path / "x.npz")]) == 2
    assert not (tmp_path / "x.npz").exists()
