"""``moment-search train ensemble``: several trained rerankers written as one (no training).

Registered on the ``train`` app by ``cli.train``; see ``moment_search.models.ensemble`` and
``moment_search.search.ensemble_reranker``.
"""

from __future__ import annotations

from pathlib import Path

import typer

from .common import console, user_errors
from .train_options import check_out


def parse_member(text: str) -> tuple[str, str | None]:
    """``NAME`` or ``NAME=DIR`` -> (reranker name, the checkpoint folder made absolute, or None
    for the shipped one).

    Raises:
        UnknownNameError: not a reranker. InputError: an ensemble as a member, or a folder
            without a config.json. CheckpointError: a checkpoint of another model.
    """
    from moment_search.errors import InputError
    from moment_search.models.ensemble import MODEL_TYPE
    from moment_search.registry import model_class, reranker_class

    name, _, folder = text.partition("=")
    reranker_class(name)
    if name == MODEL_TYPE:
        raise InputError(f"--member {text}: an ensemble cannot be a member", parameter="--member")
    if not folder:
        return name, None
    path = Path(folder)
    if not (path / "config.json").is_file():
        raise InputError(f"--member {text}: {path} holds no config.json (a {name} checkpoint "
                         f"folder expected)", parameter="--member")
    model_class(name).read_config(path)  # a checkpoint of another model is refused here
    return name, str(path.resolve())


def ensemble(
    member: list[str] = typer.Option(..., "--member", help="A reranker, as NAME (its shipped "
                                     "checkpoint) or NAME=DIR; repeat for each member."),
    out: Path = typer.Option(..., help="The ensemble's checkpoint folder to write."),
    fusion_weight: float = typer.Option(None, min=0.0, max=1.0, help="The cascade's w for it "
                                        "(default: none stored; benchmark cascade-cv chooses "
                                        "one on train folds)."),
) -> None:
    """Write an ensemble reranker: the mean of its members' probabilities (`query --rerank
    ensemble --rerank-model OUT`). Its members are read from their own checkpoints at load."""
    from moment_search.models.ensemble import Ensemble, EnsembleConfig

    with user_errors():
        check_out(out)
        names, folders = zip(*(parse_member(m) for m in member), strict=True)
        extra = {} if fusion_weight is None else {"fusion_weight": fusion_weight}
        Ensemble.save(out, EnsembleConfig(tuple(names), tuple(folders)), extra)
    console.print(f"ensemble of {', '.join(names)} written to {out}")
