"""The options every ``moment-search train`` command shares, and how given options become
settings.

Every setting option defaults to None, meaning "not given": an option that is not given keeps the
value of the recipe file (``--recipe``), else the default of the config dataclass it sets, which
is the one place a default is written (see ``moment_search.train.recipes``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import typer

import moment_search
from moment_search.errors import InputError

DATA_OPTION = typer.Option(None, help="Corpus directory with train/val annotation files "
                           "(default: the recipe's data).")
OUT_OPTION = typer.Option(None, help="Output directory (best/, last/, history.jsonl); "
                          "required to train.")
PRINT_RECIPE_OPTION = typer.Option(False, "--print-recipe", help="Print every setting this "
                                   "command would train with (the defaults, the recipe, the "
                                   "options) as a recipe table, and exit.")
RECIPE_OPTION = typer.Option(None, help="A recipe file (recipes/*.toml): its [NAME] table sets "
                             "the run, model and train settings; options given here win.")
EXTRA_OPTION = typer.Option(None, "--extra", help="Extra training pairs, KIND[:WEIGHT] "
                            "(charades-actions: the train videos' Charades action segments).")
CHARADES_DIR_OPTION = typer.Option(None, help="Folder of the Charades CSV and class list "
                                   "(default: DATA/../annotations/charades).")
EMA_OPTION = typer.Option(None, min=0.0, max=0.99999, help="EMA decay of the weights per step "
                          "(0: off); the average is validated and saved.")
SMOOTH_OPTION = typer.Option(None, min=1, help="Pick the best epoch on the trailing mean of "
                             "this many validation scores.")
PATIENCE_OPTION = typer.Option(None, min=0, help="Stop after this many epochs without smoothed "
                               "improvement (0: never).")
KEEP_OPTION = typer.Option(None, help="What OUT/best holds: best (the best validation epoch) or "
                           "last (the last epoch: a rule fixed before training, no selection).")
FOLD_OPTION = typer.Option(None, help="K/N: cross-validation, train on the train split less "
                           "fold K of N (video-disjoint), validate on fold K.")
CLIP_SCALE_OPTION = typer.Option(None, min=0.0, help="Multiply clip features (22.627 = "
                                 "sqrt(512) gives L2-normalised CLIP features unit RMS).")
THREADS_OPTION = typer.Option(None, min=1, help="torch CPU threads (default: torch's).")
FEATURE_RATE_OPTION = typer.Option(None, help="Features per second (default: spread).")
SEED_OPTION = typer.Option(None, help="Random seed.")
RESUME_OPTION = typer.Option(False, help="Continue from OUT/last.")
WEIGHT_DECAY_OPTION = typer.Option(None, min=0.0, help="AdamW weight decay.")
DROPOUT_OPTION = typer.Option(None, min=0.0, max=0.9, help="Dropout.")

# Options whose name is not the name of the config field they set.
RENAMES = {"extra": "extras", "teacher_map": "teacher_maps", "ema": "ema_decay",
           "cross_video": "cross_video_weight", "cfm": "use_cfm",
           "upsampling": "use_upsampling", "stages": "stage_clips",
           "proposals": "n_proposals"}
# The same, for one command only.
COMMAND_RENAMES = {"lpnet": {"heads": "n_heads"}}
# Options given as comma-separated lists, with the type of their items.
COMMA_LISTS = {"stages": int, "kernels": int, "branches": str, "stage_epochs": int}
# Parameters that are no setting of the run (what to do with it, not how to train).
NOT_SETTINGS = {"out", "recipe", "resume", "print_recipe"}


def given_options(ctx: typer.Context) -> dict[str, Any]:
    """The settings given on the command line (or the environment), by parameter name."""
    # By name: typer ships its own copy of click, whose ParameterSource is another enum.
    unset = ("DEFAULT", "DEFAULT_MAP")
    return {name: value for name, value in ctx.params.items()
            if name not in NOT_SETTINGS and ctx.get_parameter_source(name).name not in unset}


def sort_options(command: str, options: dict[str, Any], sections: dict[str, type]
                 ) -> dict[str, dict[str, Any]]:
    """Given options of a train command as ``{section: {field: value}}``, each under the config
    dataclass of ``sections`` that has the field it sets (comma lists split into their items)."""
    renames = {**RENAMES, **COMMAND_RENAMES.get(command, {})}
    fields = {section: {f.name for f in dataclasses.fields(cls)}
              for section, cls in sections.items()}
    sorted_options: dict[str, dict[str, Any]] = {section: {} for section in sections}
    for option, value in options.items():
        name = renames.get(option, option)
        owners = [section for section, names in fields.items() if name in names]
        assert len(owners) == 1, f"option {option!r} sets {owners} (one config field expected)"
        if option in COMMA_LISTS:
            value = comma_list(option, value, COMMA_LISTS[option])
        sorted_options[owners[0]][name] = value
    return sorted_options


def comma_list(option: str, text: str, item_type: type) -> list:
    """``"8,16"`` as ``[8, 16]``.

    Raises:
        InputError: an item that is not of ``item_type``.
    """
    items = [item.strip() for item in text.split(",")]
    try:
        return [item_type(item) for item in items]
    except ValueError as e:
        flag = f"--{option.replace('_', '-')}"
        raise InputError(f"{flag}: expected comma-separated {item_type.__name__} values, "
                         f"got {text!r}", parameter=flag) from e



def check_out(out: Path) -> None:
    """Refuse an output directory inside the package's shipped checkpoints.

    Raises:
        InputError: ``out`` is in ``moment_search/pretrained/``.
    """
    shipped = (Path(moment_search.__file__).parent / "pretrained").resolve()
    if out.resolve().is_relative_to(shipped):
        raise InputError(f"--out {out}: inside {shipped}, which holds the shipped checkpoints; "
                         f"train into another folder", parameter="--out")
