"""Training recipes as files: ``recipes/<checkpoint>.toml`` holds the settings a model was trained
with, one table per ``moment-search train`` command.

A recipe table ``[NAME]`` (NAME a train command: ``fvmr``, ``pln``, ``video-text``, ...) holds the
run settings (``data``, ``feature_rate``, ...; see :class:`RunSettings`) and two sub-tables,
``[NAME.model]`` (the model's config dataclass) and ``[NAME.train]`` (its train config
dataclass). ``compose`` has no sub-tables: its keys are ``train.compose.compose``'s keywords.
The config dataclasses are the one source of defaults: a key left out of the file keeps the
dataclass default, and options given on the command line override the file (see
:func:`resolve`). TOML has no null: a setting whose default is None is set by leaving it out.

Errors name the file and the key: an unknown key, a value of the wrong type, a missing table.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import json
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: tomllib is the tomli package in the standard library
    import tomli as tomllib

# The ``moment-search train`` commands a recipe may have a table for.
TRAIN_COMMANDS = ("fvmr", "pln", "fian", "drn", "lpnet", "video-text", "compose")
SECTIONS = ("model", "train")  # the sub-tables of a trainer's table


class RecipeError(InputError):
    """A recipe file that cannot be used: missing, not TOML, an unknown key or a bad value."""

    def __init__(self, message: str):
        super().__init__(message, parameter="--recipe")


@dataclass
class RunSettings:
    """Where a training run reads from; None leaves the trainer's own default."""

    data: Path | None = None  # corpus directory with the train/val annotation files (required)
    feature_rate: float | None = None  # features per second (None: spread over the duration)
    train_split: str | None = None  # the split to train on
    val_split: str | None = None  # the split validated each epoch
    charades_dir: Path | None = None  # Charades CSV + class list for --extra


@dataclass
class Recipe:
    """The resolved settings of one training run."""

    run: RunSettings
    model: Any  # the model's config dataclass
    train: Any  # the train config dataclass

    def trainer_options(self) -> dict[str, Any]:
        """The run settings that are set, as the trainers' keywords (``data`` excluded)."""
        settings = dataclasses.asdict(self.run)
        settings.pop("data")
        return {name: value for name, value in settings.items() if value is not None}


def recipe_toml(command: str, recipe: Recipe) -> str:
    """The ``[command]`` table of ``recipe`` as TOML text, every setting written out (those that
    are None left out: TOML has no null, and None is their default)."""
    lines = [f"[{command}]", *toml_lines(dataclasses.asdict(recipe.run))]
    for section in SECTIONS:
        values = dataclasses.asdict(getattr(recipe, section))
        lines += ["", f"[{command}.{section}]", *toml_lines(values)]
    return "\n".join(lines) + "\n"


def toml_lines(values: Mapping[str, Any]) -> list[str]:
    """``key = value`` lines of the values that are not None."""
    return [f"{key} = {toml_value(value)}" for key, value in values.items() if value is not None]


def toml_value(value: Any) -> str:
    """One value as TOML (bool, int, float, str or path, list or tuple, dict)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str | Path):
        return json.dumps(str(value))  # JSON's string escapes are TOML's
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(toml_lines(value)) + "}"
    raise TypeError(f"no TOML form for {type(value).__name__} {value!r}")


def read_recipe_table(path: str | Path, command: str) -> dict[str, Any]:
    """The ``[command]`` table of the recipe file at ``path``.

    Raises:
        RecipeError: the file is missing or not TOML, names a command that does not exist, or
            has no ``[command]`` table.
    """
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            document = tomllib.load(handle)
    except FileNotFoundError as e:
        raise RecipeError(f"recipe file not found: {path}") from e
    except tomllib.TOMLDecodeError as e:
        raise RecipeError(f"{path}: not valid TOML: {e}") from e
    for name in document:
        if name not in TRAIN_COMMANDS:
            raise RecipeError(f"{path}: unknown key {name!r}{suggestion(name, TRAIN_COMMANDS)} "
                              f"(a recipe has one table per train command: "
                              f"{', '.join(TRAIN_COMMANDS)})")
    if command not in document:
        raise RecipeError(f"{path}: no table {command!r} (it has: "
                          f"{', '.join(map(repr, document)) or 'none'})")
    return document[command]


def resolve(path: str | Path | None, command: str, model_class: type, train_class: type,
            overrides: Mapping[str, Mapping[str, Any]]) -> Recipe:
    """A trainer's settings: the dataclass defaults, then the recipe file, then ``overrides``.

    Args:
        path: the recipe file, or None for the defaults alone.
        command: the train command whose table is read (``"pln"``).
        model_class, train_class: the config dataclasses of ``[command.model]`` and
            ``[command.train]``.
        overrides: ``{"run": {...}, "model": {...}, "train": {...}}``, e.g. the options given on
            the command line; they win over the file.

    Raises:
        RecipeError: see :func:`read_recipe_table`, and an unknown key or a bad value.
    """
    table = read_recipe_table(path, command) if path is not None else {}
    where = f"{path}: {command}"
    classes = {"run": RunSettings, "model": model_class, "train": train_class}
    file_values = split_table(table, where, set(field_types(RunSettings)))
    built = {}
    for section, cls in classes.items():
        values = {**file_values.get(section, {}), **overrides.get(section, {})}
        prefix = where if section == "run" else f"{where}.{section}"
        built[section] = build_config(cls, values, prefix)
    return Recipe(**built)


def resolve_keywords(path: str | Path | None, command: str, function: Callable,
                     overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments of ``function`` from the ``[command]`` table of the recipe file
    (each checked against the parameter's type), then ``overrides``; defaults stay the
    function's own.

    Raises:
        RecipeError: see :func:`read_recipe_table`, and an unknown key or a bad value.
    """
    table = read_recipe_table(path, command) if path is not None else {}
    return {**check_values(field_types(function), table, f"{path}: {command}"), **overrides}


def split_table(table: Mapping[str, Any], where: str, run_keys: set[str]
                ) -> dict[str, dict[str, Any]]:
    """A trainer's table as ``{"run": ..., "model": ..., "train": ...}``; an unknown key fails."""
    split: dict[str, dict[str, Any]] = {"run": {}}
    for key, value in table.items():
        if key in SECTIONS and isinstance(value, dict):
            split[key] = value
        elif key in run_keys:
            split["run"][key] = value
        else:
            known = [*sorted(run_keys), *SECTIONS]
            raise RecipeError(f"{where}: unknown key {key!r}{suggestion(key, known)} "
                              f"(known: {', '.join(known)})")
    return split


def build_config(cls: type, values: Mapping[str, Any], where: str) -> Any:
    """``cls(**values)`` with every value checked against the field's type (and converted:
    a TOML list becomes a tuple, an integer a float where the field is a float)."""
    return cls(**check_values(field_types(cls), values, where))


def check_values(types_by_name: Mapping[str, Any], values: Mapping[str, Any], where: str
                 ) -> dict[str, Any]:
    """``values`` converted to the types of ``types_by_name``; an unknown name or a value of
    another type raises a RecipeError naming ``where`` and the key."""
    checked = {}
    for name, value in values.items():
        if name not in types_by_name:
            raise RecipeError(f"{where}: unknown key {name!r}"
                              f"{suggestion(name, list(types_by_name))} "
                              f"(known: {', '.join(sorted(types_by_name))})")
        try:
            checked[name] = convert(value, types_by_name[name])
        except TypeError as e:
            raise RecipeError(f"{where}.{name}: {e}") from None
    return checked


def field_types(target: type | Callable) -> dict[str, Any]:
    """The settable names of a config dataclass (its init fields) or of a function (its
    keyword parameters with defaults), with their resolved type hints."""
    hints = typing.get_type_hints(target)
    if dataclasses.is_dataclass(target):
        return {f.name: hints[f.name] for f in dataclasses.fields(target) if f.init}
    parameters = inspect.signature(target).parameters.values()
    return {p.name: hints[p.name] for p in parameters if p.default is not inspect.Parameter.empty}


def convert(value: Any, hint: Any) -> Any:
    """``value`` as type ``hint`` (int, float, bool, str, dict, Path, tuple[...], X | None).

    Raises:
        TypeError: ``value`` is not of that type (an int is a float; a bool is not an int).
    """
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for option in (a for a in args if a is not type(None)):
            try:
                return convert(value, option)
            except TypeError:
                continue
        raise TypeError(f"expected {type_name(hint)}, got {type(value).__name__} {value!r}")
    if origin is tuple:
        return convert_tuple(value, args, hint)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is Path and isinstance(value, str):
        return Path(value)
    base = origin or hint
    if isinstance(base, type) and isinstance(value, base) and not (
            base is int and isinstance(value, bool)):
        return value
    raise TypeError(f"expected {type_name(hint)}, got {type(value).__name__} {value!r}")


def convert_tuple(value: Any, args: tuple, hint: Any) -> tuple:
    """A list or tuple as ``tuple[T, ...]`` or a fixed ``tuple[T1, T2]``."""
    if not isinstance(value, list | tuple):
        raise TypeError(f"expected {type_name(hint)}, got {type(value).__name__} {value!r}")
    if len(args) == 2 and args[1] is Ellipsis:
        return tuple(convert(item, args[0]) for item in value)
    if len(value) != len(args):
        raise TypeError(f"expected {len(args)} values ({type_name(hint)}), got {list(value)!r}")
    return tuple(convert(item, arg) for item, arg in zip(value, args, strict=True))


def type_name(hint: Any) -> str:
    """How a type reads in an error message (``int``, ``list of int``, ``str or none``)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join("none" if a is type(None) else type_name(a) for a in args)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"list of {type_name(args[0])}"
        return f"list of {len(args)} ({', '.join(type_name(a) for a in args)})"
    if hint is Path:
        return "path (str)"
    return getattr(origin or hint, "__name__", str(hint))


def suggestion(name: str, known: list[str] | tuple[str, ...]) -> str:
    """``" (did you mean 'x'?)"`` for the closest known name, or ``""``."""
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
