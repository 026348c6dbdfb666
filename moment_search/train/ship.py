"""A trained checkpoint made ready to ship: float16 weights and the cascade fusion weight a
``benchmark cascade-cv`` report chose, without running the folds again.

``moment-search train ship`` is the command; the shipped rerankers' recipes say which report
each one's weight comes from. The stored settings (``extra``) are kept, ``fusion_weight`` set and
the report it came from recorded as ``fusion_weight_report``.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import InputError
from ..models.base import CONFIG_NAME, CheckpointError


def stored_model_type(model: Path) -> str:
    """The ``model_type`` in ``model``'s config.json.

    Raises:
        CheckpointError: no readable config.json there.
    """
    path = Path(model) / CONFIG_NAME
    try:
        return json.loads(path.read_text())["model_type"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise CheckpointError(f"{path}: not a readable checkpoint config "
                              f"({type(error).__name__}: {error})") from error


def chosen_fusion_weight(report: Path, reranker: str) -> float:
    """The w a cascade-cv report chose for ``reranker``.

    Raises:
        InputError: the file is unreadable, is not a cascade-cv report, or chose w for another
            reranker.
    """
    try:
        payload = json.loads(Path(report).read_text())
        name, weight = payload["reranker"], payload["chosen_weight"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise InputError(f"{report}: not a cascade-cv report (a JSON file with 'reranker' and "
                         f"'chosen_weight' expected; {type(error).__name__}: {error})",
                         parameter="--cascade-report") from error
    if name != reranker:
        raise InputError(f"{report}: chose w for {name!r}, but the checkpoint is a {reranker!r}",
                         parameter="--cascade-report")
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight <= 1:
        raise InputError(f"{report}: chosen_weight {weight!r}, expected a number in [0, 1]",
                         parameter="--cascade-report")
    return float(weight)


def ship(model: Path, out: Path, cascade_report: Path | None = None, half: bool = True) -> Path:
    """``model`` written to ``out`` (replaced; staged, then renamed): float16 weights when
    ``half``, every stored setting kept, and with ``cascade_report`` the w it chose stored as
    ``fusion_weight``."""
    from ..registry import model_class

    model_type = stored_model_type(model)
    cls = model_class(model_type)
    _, extra = cls.read_config(model)
    extra = dict(extra)
    if cascade_report is not None:
        extra["fusion_weight"] = chosen_fusion_weight(cascade_report, model_type)
        extra["fusion_weight_report"] = str(cascade_report)
    return cls.from_pretrained(model).save_pretrained(out, extra=extra, half=half)
