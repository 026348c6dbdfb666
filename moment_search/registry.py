"""One registry of the models by ``model_type``: what the CLI, the search cascade, the evaluator,
the server and ingest each need of a model, listed once (open_clip's ``list_models()`` /
``create_model(name)`` in spirit).

Classes and loaders are named as ``"module:attribute"`` strings and imported on first use, so
that reading a list of names (``query --rerank`` choices, ``evaluate model --help``, the server's
check of ``rerank=``) never imports torch. This module imports nothing of the package but its
errors: every consumer may import it without a cycle.

A model joins by adding one :class:`ModelSpec` line to :data:`MODELS`; a plug-in localizer or
frame encoder by :func:`register_localizer` / :func:`register_frame_encoder`.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import UnknownNameError

PRETRAINED_DIR = Path(__file__).parent / "pretrained"
CLIP_VIT_B32 = "clip-vit-b32"  # the frame encoder every shipped checkpoint was trained on


@dataclass(frozen=True)
class ModelSpec:
    """One model type and what each consumer needs of it (``module:attribute`` strings)."""

    model_type: str  # as stored in a checkpoint's config.json
    model_class: str  # the torch module: read_config / from_pretrained
    checkpoint: str | None = None  # the shipped checkpoint folder under pretrained/, or None
    reranker: str | None = None  # a search.rerank.Reranker class with ``load(dir, device)``
    # ``evaluate model`` loader (data_dir, model_dir, device) -> Localizer; a reranker without
    # one is localized by eval.reranker_localizer under its own name
    localizer: str | None = None
    frame_encoder: str | None = None  # the ingest encoder whose features the model reads


MODELS: dict[str, ModelSpec] = {spec.model_type: spec for spec in (
    ModelSpec("fvmr", "moment_search.models.fvmr:FVMR", "fvmr-charades-clip",
              localizer="moment_search.eval.fvmr_localizer:load_fvmr",
              frame_encoder=CLIP_VIT_B32),
    ModelSpec("pln", "moment_search.models.pln:PLN", "pln-charades-clip",
              reranker="moment_search.search.pln_reranker:PLNReranker",
              frame_encoder=CLIP_VIT_B32),
    ModelSpec("fian", "moment_search.models.fian:FIAN", "fian-charades-clip",
              reranker="moment_search.search.fian_reranker:FIANReranker",
              frame_encoder=CLIP_VIT_B32),
    ModelSpec("drn", "moment_search.models.drn:DRN", "drn-charades-clip",
              reranker="moment_search.search.drn_reranker:DRNReranker",
              frame_encoder=CLIP_VIT_B32),
    ModelSpec("lpnet", "moment_search.models.lpnet:LPNet", "lpnet-charades-clip",
              reranker="moment_search.search.lpnet_reranker:LPNetReranker",
              frame_encoder=CLIP_VIT_B32),
    ModelSpec("ensemble", "moment_search.models.ensemble:Ensemble", "ensemble-charades-clip",
              reranker="moment_search.search.ensemble_reranker:EnsembleReranker",
              frame_encoder=CLIP_VIT_B32),
    ModelSpec("video-text", "moment_search.models.video_text:VideoText"),
)}

RERANKER_LOCALIZER = "moment_search.eval.reranker_localizer:load_named"
# ``evaluate model`` names that are not model types: a baseline and variants of a model.
# name -> loader (data_dir, model_dir, device) -> Localizer
LOCALIZERS: dict[str, str | Callable] = {
    "prior": "moment_search.eval.runner:load_prior",
    "fvmr-pq": "moment_search.eval.fvmr_fusion:load_fvmr_fusion",
    "pln-s2": "moment_search.eval.reranker_localizer:load_pln_strategy2",
}
# ingest frame encoders: name -> factory (weights folder or None, torch device) -> encode function
FRAME_ENCODERS: dict[str, str | Callable] = {
    CLIP_VIT_B32: "moment_search.ingest.encoders:load_clip",
}


def resolve(target: str | Callable) -> Any:
    """The object a ``"module:attribute"`` string names (imported now); a callable as is."""
    if not isinstance(target, str):
        return target
    module_name, _, attribute = target.partition(":")
    found: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        found = getattr(found, part)
    return found


def _unknown(kind: str, name: str, known: list[str], parameter: str) -> UnknownNameError:
    return UnknownNameError(f"unknown {kind} {name!r}; expected one of: {', '.join(known)}",
                            parameter=parameter)


def list_models() -> list[str]:
    """Every model type, sorted."""
    return sorted(MODELS)


def model_spec(name: str) -> ModelSpec:
    """The spec of model type ``name``.

    Raises:
        UnknownNameError: not a model type (lists the known ones).
    """
    if name not in MODELS:
        raise _unknown("model type", name, list_models(), "model")
    return MODELS[name]


def model_class(name: str) -> type:
    """The torch module class of model type ``name`` (imports torch)."""
    return resolve(model_spec(name).model_class)


def list_shipped() -> list[str]:
    """The model types with a checkpoint shipped inside the package."""
    return sorted(n for n, spec in MODELS.items() if spec.checkpoint)


def shipped_checkpoint(name: str) -> Path:
    """The shipped checkpoint directory of model type ``name``.

    Raises:
        FileNotFoundError: no checkpoint is shipped for ``name``, or it is missing on disk.
    """
    folder = MODELS[name].checkpoint if name in MODELS else None
    if folder is None:
        raise FileNotFoundError(f"no shipped checkpoint for model {name!r}; pass --model DIR")
    path = PRETRAINED_DIR / folder
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"shipped checkpoint {path} is missing; pass --model DIR")
    return path


def list_rerankers() -> list[str]:
    """The model types that rerank (``query --rerank``, the cascade, ``rerank=``), sorted."""
    return sorted(n for n, spec in MODELS.items() if spec.reranker)


def reranker_class(name: str) -> type:
    """The reranker class of ``name``, with ``load(model_dir, device)`` (imports torch).

    Raises:
        UnknownNameError: not a reranker (lists the known ones).
    """
    if name not in list_rerankers():
        raise _unknown("reranker", name, list_rerankers(), "rerank")
    return resolve(MODELS[name].reranker)


def register_localizer(name: str, loader: str | Callable) -> None:
    """Make ``loader`` (data_dir, model_dir, device) -> Localizer an ``evaluate model`` name."""
    LOCALIZERS[name] = loader


def list_localizers() -> list[str]:
    """Every name ``evaluate model`` accepts: models that localize or rerank, and variants."""
    models = [n for n, spec in MODELS.items() if spec.localizer or spec.reranker]
    return sorted({*models, *LOCALIZERS})


def localizer_loader(name: str) -> Callable:
    """The loader (data_dir, model_dir, device) -> Localizer of ``evaluate model NAME``.

    Raises:
        UnknownNameError: not a localizer name (lists the known ones).
    """
    if name in LOCALIZERS:
        return resolve(LOCALIZERS[name])
    spec = MODELS.get(name)
    if spec is not None and spec.localizer:
        return resolve(spec.localizer)
    if spec is not None and spec.reranker:
        return functools.partial(resolve(RERANKER_LOCALIZER), name)
    raise _unknown("model", name, list_localizers(), "model")


def register_frame_encoder(name: str, factory: str | Callable) -> None:
    """Make ``factory`` (weights folder or None, device) -> encode function an ingest name."""
    FRAME_ENCODERS[name] = factory


def list_frame_encoders() -> list[str]:
    """The registered ingest frame encoders, sorted."""
    return sorted(FRAME_ENCODERS)


def frame_encoder_factory(name: str) -> Callable | None:
    """The factory of a registered frame encoder, or None when ``name`` is not registered."""
    return resolve(FRAME_ENCODERS[name]) if name in FRAME_ENCODERS else None
