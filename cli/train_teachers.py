"""``moment-search train teacher-maps``: a cross-modal teacher's maps for FVMR's training.

Registered on the ``train`` app by ``cli.train``; see ``moment_search.train.teacher_maps``.
"""

from __future__ import annotations

from pathlib import Path

import typer

from .common import console, user_errors
from .train_options import CHARADES_DIR_OPTION, RECIPE_OPTION, THREADS_OPTION


def teacher_maps(
    teacher: str = typer.Option(..., help="The reranker that teaches (drn, fian, ...)."),
    out: Path = typer.Option(..., help="The .npz file to write (FVMR's --teacher-map)."),
    model: Path = typer.Option(None, help="The teacher's checkpoint (default: its shipped one)."),
    recipe: Path = RECIPE_OPTION,
    data: Path = typer.Option(None, help="Corpus directory (default: the recipe's fvmr data)."),
    extra: list[str] = typer.Option(None, "--extra", help="Extra training pairs, as FVMR's "
                                    "--extra (default: the recipe's)."),
    n_clips: int = typer.Option(None, min=1, help="FVMR's map size N (default: the recipe's)."),
    charades_dir: Path = CHARADES_DIR_OPTION,
    threads: int = THREADS_OPTION,
) -> None:
    """Score every FVMR training pair's 2D-map proposals with a trained reranker.

    The settings the pairs depend on (data, feature rate, train split, --extra, N) come from the
    fvmr table of --recipe, then the options given, so the file matches an FVMR run of the
    same recipe."""
    import torch

    from moment_search.errors import InputError
    from moment_search.models.fvmr import FVMRConfig
    from moment_search.train.fvmr_trainer import TrainConfig
    from moment_search.train.recipes import resolve
    from moment_search.train.teacher_maps import make_teacher_maps, save_maps

    with user_errors():
        overrides = {"run": {k: v for k, v in {"data": data, "charades_dir": charades_dir}.items()
                             if v is not None},
                     "model": {} if n_clips is None else {"n_clips": n_clips},
                     "train": {} if not extra else {"extras": tuple(extra)}}
        settings = resolve(recipe, "fvmr", FVMRConfig, TrainConfig, overrides)
        if settings.run.data is None:
            raise InputError("no corpus: give --data DIR or a --recipe with data",
                             parameter="--data")
        if not out.parent.is_dir():
            raise InputError(f"--out {out}: its folder does not exist", parameter="--out")
        if threads:
            torch.set_num_threads(threads)
        with console.status("scoring the training pairs") as status:
            split = {} if settings.run.train_split is None else {
                "train_split": settings.run.train_split}
            maps = make_teacher_maps(
                teacher, model, settings.run.data, settings.model.n_clips,
                settings.train.extras, feature_rate=settings.run.feature_rate,
                charades_dir=settings.run.charades_dir,
                progress=lambda done, total: status.update(f"scored {done}/{total} pairs"),
                **split)
        save_maps(out, maps)
    console.print(f"{len(maps.qids)} maps of {teacher} ({maps.model}) saved to {out}")
