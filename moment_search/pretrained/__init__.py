"""The default checkpoints shipped inside the package (one directory per model name)."""

from __future__ import annotations

from pathlib import Path

PRETRAINED_DIR = Path(__file__).parent
DEFAULT_MODELS = {"fvmr": "fvmr-charades-clip", "pln": "pln-charades-clip",
                  "fian": "fian-charades-clip", "drn": "drn-charades-clip",
                  "lpnet": "lpnet-charades-clip"}


def default_model_dir(name: str) -> Path:
    """The shipped checkpoint directory of model ``name``.

    Raises:
        FileNotFoundError: no checkpoint is shipped for ``name`` (names the expected path).
    """
    if name not in DEFAULT_MODELS:
        raise FileNotFoundError(f"no shipped checkpoint for model {name!r}; pass --model DIR")
    path = PRETRAINED_DIR / DEFAULT_MODELS[name]
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"shipped checkpoint {path} is missing; pass --model DIR")
    return path
