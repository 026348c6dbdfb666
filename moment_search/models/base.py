"""Saving and loading models as ``config.json`` + ``model.safetensors`` (plus free-form extras).

Every model is a ``torch.nn.Module`` with a dataclass ``config``; :class:`PretrainedMixin` gives it
``save_pretrained(dir)`` (atomic: written to a temp dir, then renamed) and ``from_pretrained(dir)``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ..atomic import replace_dir
from ..errors import DataError

if TYPE_CHECKING:  # torch is imported where a model is built, not to read a config
    import torch

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def model_fingerprint(model_dir: Path) -> tuple[str, str]:
    """``(model_id, config_hash)``: sha256 of the weights and of config.json (12 hex chars each)."""
    weights = hashlib.sha256((Path(model_dir) / WEIGHTS_NAME).read_bytes()).hexdigest()[:12]
    config = hashlib.sha256((Path(model_dir) / CONFIG_NAME).read_bytes()).hexdigest()[:12]
    return f"fvmr-{weights}", config


class CheckpointError(DataError):
    """A checkpoint directory is missing, incomplete or belongs to another model."""


def config_to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a dataclass config (tuples become lists)."""
    return dataclasses.asdict(config)


def config_from_dict(cls: type, values: dict[str, Any], where: str) -> Any:
    """Rebuild a dataclass config, refusing unknown keys (they mean another model or version)."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise CheckpointError(f"{where}: unknown config keys {unknown} for {cls.__name__}")
    converted = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return cls(**converted)


class PretrainedMixin:
    """``save_pretrained`` / ``from_pretrained`` for a module with a dataclass ``config``."""

    model_type: ClassVar[str]
    config_class: ClassVar[type]

    def save_pretrained(self, directory: str | Path, extra: dict[str, Any] | None = None,
                        half: bool = False) -> Path:
        """Write ``config.json`` and ``model.safetensors`` (fp16 when ``half``) atomically.

        Args:
            directory: the checkpoint directory (replaced if it exists).
            extra: more JSON-ready settings stored under ``"extra"`` in config.json.
            half: store floating-point weights as float16 (loaded back as float32).
        """
        from safetensors.torch import save_file

        target = Path(directory)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        if half:
            state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
        save_file(state, str(staging / WEIGHTS_NAME))
        payload = {"model_type": self.model_type, "config": config_to_dict(self.config),
                   "extra": extra or {}}
        (staging / CONFIG_NAME).write_text(json.dumps(payload, indent=2))
        for path in (staging, staging / WEIGHTS_NAME, staging / CONFIG_NAME):
            path.chmod(0o755 if path.is_dir() else 0o644)  # mkdtemp/safetensors make them private
        replace_dir(staging, target)
        return target

    @classmethod
    def read_config(cls, directory: str | Path) -> tuple[Any, dict[str, Any]]:
        """The config and extras stored in a checkpoint directory."""
        path = Path(directory) / CONFIG_NAME
        if not path.is_file():
            raise CheckpointError(f"{directory}: no {CONFIG_NAME}; not a model checkpoint")
        try:
            payload = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise CheckpointError(f"{path}: not valid JSON ({e})") from e
        if payload.get("model_type") != cls.model_type:
            raise CheckpointError(f"{path}: model_type {payload.get('model_type')!r}, "
                                  f"expected {cls.model_type!r}")
        config = config_from_dict(cls.config_class, payload.get("config", {}), str(path))
        return config, payload.get("extra", {})

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | torch.device = "cpu"):
        """Rebuild the model from ``directory`` in eval mode, float32, on ``device``."""
        from safetensors.torch import load_file

        config, _ = cls.read_config(directory)
        weights = Path(directory) / WEIGHTS_NAME
        if not weights.is_file():
            raise CheckpointError(f"{directory}: no {WEIGHTS_NAME}")
        model = cls(config)
        state = {k: v.float() if v.is_floating_point() else v
                 for k, v in load_file(str(weights)).items()}
        model.load_state_dict(state)
        return model.to(device).eval()
