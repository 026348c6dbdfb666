"""The default checkpoints shipped inside the package, one folder per model type; which folder
belongs to which model is the registry's to say (``registry.ModelSpec.checkpoint``)."""

from __future__ import annotations

from ..registry import PRETRAINED_DIR, shipped_checkpoint

__all__ = ["PRETRAINED_DIR", "default_model_dir"]

default_model_dir = shipped_checkpoint  # the name the indexer, evaluator and benchmarks call
