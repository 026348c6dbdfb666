"""An ensemble checkpoint: which rerankers it averages, read and written without torch.

An ensemble has no weights of its own: its ``config.json`` names its members (registry reranker
names) and each member's checkpoint folder (``null``: that model's shipped checkpoint), and keeps
the cascade's ``fusion_weight`` under ``extra`` as every reranker checkpoint does. The reranker
that runs it is ``search.ensemble_reranker``; the members are chosen on train folds by
``benchmark ensemble-cv``.

    {"model_type": "ensemble",
     "config": {"members": ["drn", "fian"], "checkpoints": [null, null]},
     "extra": {"fusion_weight": 0.25}}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..atomic import staged_dir
from .base import CONFIG_NAME, CheckpointError

MODEL_TYPE = "ensemble"


@dataclass(frozen=True)
class EnsembleConfig:
    """The members of an ensemble, in order, and where each one's checkpoint is."""

    members: tuple[str, ...]  # reranker names (registry.list_rerankers)
    checkpoints: tuple[str | None, ...]  # one per member: a folder, or None (the shipped one)

    def __post_init__(self) -> None:
        if not self.members or len(self.checkpoints) != len(self.members):
            raise CheckpointError(f"an ensemble needs one or more members and one checkpoint "
                                  f"entry per member, got {list(self.members)} and "
                                  f"{list(self.checkpoints)}")
        if MODEL_TYPE in self.members or len(set(self.members)) != len(self.members):
            raise CheckpointError(f"ensemble members must be different rerankers other than "
                                  f"{MODEL_TYPE!r}, got {list(self.members)}")


class Ensemble:
    """The registry's model class of ``ensemble``: reads and writes its checkpoint folder."""

    model_type = MODEL_TYPE

    @staticmethod
    def read_config(directory: str | Path) -> tuple[EnsembleConfig, dict[str, Any]]:
        """``(config, extra)`` from ``directory/config.json``.

        Raises:
            CheckpointError: the file is missing, unreadable, or not an ensemble's.
        """
        path = Path(directory) / CONFIG_NAME
        try:
            stored = json.loads(path.read_text())
            if stored.get("model_type") != MODEL_TYPE:
                raise CheckpointError(f"{path}: model_type {stored.get('model_type')!r}, "
                                      f"expected {MODEL_TYPE!r}")
            config = stored["config"]
            return (EnsembleConfig(tuple(config["members"]), tuple(config["checkpoints"])),
                    stored.get("extra", {}))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            raise CheckpointError(f"{path}: not a readable ensemble checkpoint "
                                  f"({type(error).__name__}: {error})") from error

    @staticmethod
    def member_dirs(directory: str | Path) -> list[tuple[str, Path | None]]:
        """``(name, folder or None)`` per member; a relative folder is read from ``directory``
        (``train ensemble`` stores absolute ones, so that a copy of the folder still works)."""
        config, _ = Ensemble.read_config(directory)
        return [(name, None if path is None else Path(directory) / path)
                for name, path in zip(config.members, config.checkpoints, strict=True)]

    @staticmethod
    def save(directory: str | Path, config: EnsembleConfig,
             extra: dict[str, Any] | None = None) -> Path:
        """Write the checkpoint folder (replaced if it exists): staged, then renamed."""
        target = Path(directory)
        stored = {"model_type": MODEL_TYPE,
                  "config": {"members": list(config.members),
                             "checkpoints": list(config.checkpoints)},
                  "extra": extra or {}}
        with staged_dir(target) as staging:
            (staging / CONFIG_NAME).write_text(json.dumps(stored, indent=2))
        return target
