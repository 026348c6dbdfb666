"""A trained checkpoint made ready to ship: float16 weights and the cascade fusion weight a
``benchmark cascade-cv`` report chose, without running the folds again.

``moment-search train ship`` is the command; the shipped rerankers' recipes say which report
each one's weight comes from. The folder is copied whole (an ensemble's member folders too), its
stored settings kept, ``fusion_weight`` set and the report it came from recorded as
``fusion_weight_report``. Halving rewrites ``model.safetensors`` alone, so a folder holding other
files (e.g. a search checkpoint's relevance calibration, fitted to its weights) is refused with
``half``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from ..atomic import staged_dir
from ..errors import InputError
from ..models.base import CONFIG_NAME, WEIGHTS_NAME, CheckpointError
from ..models.ensemble import MODEL_TYPE as ENSEMBLE  # the one type without weights of its own

REPORT_OPTION = "--cascade-report"


def stored_model_type(model: Path) -> str:
    """The ``model_type`` in ``model``'s config.json, a registered model type, once the
    checkpoint reads as one of that type (its config, its extras, its weights unless it has none).

    Raises:
        CheckpointError: no readable config.json there, a model_type that is not one, a config
            its model does not read, or no weights file.
    """
    from ..registry import list_models, model_class

    path = Path(model) / CONFIG_NAME
    try:
        model_type = json.loads(path.read_text())["model_type"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise CheckpointError(f"{path}: not a readable checkpoint config "
                              f"({type(error).__name__}: {error})") from error
    if not isinstance(model_type, str) or model_type not in list_models():
        raise CheckpointError(f"{path}: model_type {model_type!r}, expected one of "
                              f"{list_models()}")
    _, extra = model_class(model_type).read_config(model)  # refuses another model's config
    if not isinstance(extra, dict):
        raise CheckpointError(f"{path}: 'extra' is {type(extra).__name__}, expected an object")
    if model_type != ENSEMBLE and not (Path(model) / WEIGHTS_NAME).is_file():
        raise CheckpointError(f"{model}: no {WEIGHTS_NAME}; not a complete checkpoint")
    return model_type


def chosen_fusion_weight(report: Path, reranker: str) -> float:
    """The w a cascade-cv report chose for ``reranker``.

    Raises:
        InputError: ``reranker`` does not rerank; the file cannot be read, is not a cascade-cv
            report, or chose w for another reranker, or a w outside [0, 1].
    """
    from ..registry import list_rerankers

    if reranker not in list_rerankers():
        raise InputError(f"{REPORT_OPTION} {report}: a {reranker!r} checkpoint does not rerank, "
                         f"so it has no cascade w (rerankers: {list_rerankers()})",
                         parameter=REPORT_OPTION)
    try:
        text = Path(report).read_text()
    except OSError as error:
        raise InputError(f"{report}: cannot read it ({error.strerror or error})",
                         parameter=REPORT_OPTION) from error
    try:
        payload = json.loads(text)
        name, weight = payload["reranker"], payload["chosen_weight"]
    except (ValueError, KeyError, TypeError) as error:
        raise InputError(f"{report}: not a cascade-cv report (a JSON file with 'reranker' and "
                         f"'chosen_weight' expected; {type(error).__name__}: {error})",
                         parameter=REPORT_OPTION) from error
    if name != reranker:
        raise InputError(f"{report}: chose w for {name!r}, but the checkpoint is a {reranker!r}",
                         parameter=REPORT_OPTION)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight <= 1:
        raise InputError(f"{report}: chosen_weight {weight!r}, expected a number in [0, 1]",
                         parameter=REPORT_OPTION)
    return float(weight)


def recorded_path(path: Path) -> str:
    """``path`` as a checkpoint records it: relative to the working directory when under it
    (so that a shipped config names no machine's folders), else as given."""
    absolute = Path(path).resolve()
    here = Path.cwd().resolve()
    return os.path.relpath(absolute, here) if absolute.is_relative_to(here) else str(path)


def check_ship(model: Path, out: Path, half: bool) -> None:
    """Refuse an ``out`` that is ``model``, holds it or lies in it (the training run would be
    lost, or the copy would copy itself) and halving a folder that holds more than the config
    and the weights.

    Raises:
        InputError: naming the folder and what is wrong.
    """
    source, target = Path(model).resolve(), Path(out).resolve()
    if source.is_relative_to(target) or target.is_relative_to(source):
        raise InputError(f"--out {out} is, holds or lies in --model {model}: write the shipped "
                         f"copy to a folder of its own", parameter="--out")
    others = sorted(p.name for p in Path(model).iterdir()
                    if p.name not in (CONFIG_NAME, WEIGHTS_NAME) and not p.is_dir())
    if half and others:
        raise InputError(f"{model} holds {others} beside its weights, which may depend on them; "
                         f"halving would leave them stale: ship it with --no-half",
                         parameter="--half")


def halve_weights(path: Path) -> None:
    """Rewrite a safetensors file with its floating-point tensors in float16 (as
    ``save_pretrained(half=True)`` stores them)."""
    from safetensors.torch import load_file, save_file

    state = load_file(str(path))
    save_file({k: v.half() if v.is_floating_point() else v for k, v in state.items()}, str(path))
    path.chmod(0o644)  # safetensors writes it private; as save_pretrained leaves it


def write_shipped(model: Path, out: Path, fusion_weight: float | None = None,
                  half: bool = False, report: str | None = None) -> Path:
    """``model``'s folder copied to ``out`` (replaced; staged, then renamed), its weights halved
    when ``half``, and ``fusion_weight`` (with the ``report`` it came from) stored in its
    config's ``extra`` when given."""
    with staged_dir(Path(out)) as staging:
        shutil.copytree(model, staging, dirs_exist_ok=True)
        if half and (staging / WEIGHTS_NAME).is_file():
            halve_weights(staging / WEIGHTS_NAME)
        if fusion_weight is not None:
            config = json.loads((staging / CONFIG_NAME).read_text())
            extra = config.setdefault("extra", {})
            extra["fusion_weight"] = fusion_weight
            if report is not None:
                extra["fusion_weight_report"] = report
            (staging / CONFIG_NAME).write_text(json.dumps(config, indent=2))  # as save_pretrained
    return Path(out)


def ship(model: Path, out: Path, cascade_report: Path | None = None, half: bool = True) -> Path:
    """Write ``model`` as it ships.

    Args:
        model: a trained checkpoint folder (any model type; an ensemble's folder has no weights).
        out: the folder to write (replaced).
        cascade_report: a cascade-cv JSON report for this reranker: its chosen w is stored.
        half: store floating-point weights in float16.

    Raises:
        CheckpointError: ``model`` is not a checkpoint. InputError: a bad report, ``out`` =
            ``model``, or ``half`` with files beside the weights. Nothing is written then.
    """
    model_type = stored_model_type(model)
    check_ship(model, out, half)
    weight = None if cascade_report is None else chosen_fusion_weight(cascade_report, model_type)
    report = None if cascade_report is None else recorded_path(cascade_report)
    return write_shipped(model, out, weight, half, report)
