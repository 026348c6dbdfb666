"""``moment-search train ...``: train a model on a corpus directory.

Each command's settings come from its config dataclasses (the defaults), then the ``[NAME]``
table of a recipe file (``--recipe recipes/<checkpoint>.toml``), then the options given; see
``cli.train_options`` and ``moment_search.train.recipes``.
"""

from __future__ import annotations

from pathlib import Path

import typer

from .common import console, metric_table, user_errors
from .train_ensemble import ensemble
from .train_options import (
    CHARADES_DIR_OPTION,
    CLIP_SCALE_OPTION,
    DATA_OPTION,
    DROPOUT_OPTION,
    EMA_OPTION,
    EXTRA_OPTION,
    FEATURE_RATE_OPTION,
    FOLD_OPTION,
    KEEP_OPTION,
    OUT_OPTION,
    PATIENCE_OPTION,
    PRINT_RECIPE_OPTION,
    RECIPE_OPTION,
    RESUME_OPTION,
    SEED_OPTION,
    SMOOTH_OPTION,
    THREADS_OPTION,
    WEIGHT_DECAY_OPTION,
    check_out,
    given_options,
    sort_options,
)
from .train_ship import ship
from .train_teachers import teacher_maps

app = typer.Typer(help="Train models.", no_args_is_help=True)


def train_from_options(ctx: typer.Context, command: str, model_class: type, train_class: type,
                       trainer_class: type) -> None:
    """Resolve the settings (defaults, ``--recipe``, given options), train, report.

    Raises:
        typer.Exit: code 2 on a bad recipe, option or corpus (one error line).
    """
    from moment_search.errors import InputError
    from moment_search.train.recipes import RunSettings, recipe_toml, resolve

    params = ctx.params
    with user_errors():
        sections = {"run": RunSettings, "model": model_class, "train": train_class}
        overrides = sort_options(command, given_options(ctx), sections)
        recipe = resolve(params["recipe"], command, model_class, train_class, overrides)
        if params["print_recipe"]:
            typer.echo(recipe_toml(command, recipe), nl=False)
            return
        if recipe.run.data is None:
            raise InputError("no corpus: give --data DIR or set data in the recipe",
                             parameter="--data")
        if params["out"] is None:
            raise InputError("no output directory: give --out DIR", parameter="--out")
        check_out(params["out"])
    out, split = params["out"], recipe.run.val_split
    epoch = "last epoch" if recipe.train.keep == "last" else "best validation epoch"
    title = f"{epoch} ({split})" if split else epoch
    fit_and_report(lambda: trainer_class(recipe.run.data, out, recipe.model, recipe.train,
                                         **recipe.trainer_options()),
                   params["resume"], out, title)


def fit_and_report(make_trainer, resume: bool, out: Path,
                   title: str = "best validation epoch") -> None:
    """Build the trainer, resume it from OUT/last when asked, train, print the best epoch."""
    with user_errors():
        trainer = make_trainer()
        if resume and trainer.resume():
            console.print(f"resuming after epoch {trainer.start_epoch}")
        best = trainer.fit(progress=console.print)
    console.print(metric_table(title, best))
    console.print(f"model saved to {out / 'best'}")


@app.command()
def fvmr(
    ctx: typer.Context,
    data: Path = DATA_OPTION,
    out: Path = OUT_OPTION,
    recipe: Path = RECIPE_OPTION,
    print_recipe: bool = PRINT_RECIPE_OPTION,
    epochs: int = typer.Option(None, min=1, help="Training epochs."),
    batch_size: int = typer.Option(None, min=1, help="Queries per batch."),
    lr: float = typer.Option(None, min=0.0, help="AdamW learning rate."),
    weight_decay: float = WEIGHT_DECAY_OPTION,
    dropout: float = DROPOUT_OPTION,
    hidden_dim: int = typer.Option(None, min=8, help="Encoder width (paper: 512)."),
    space_dim: int = typer.Option(None, min=8, help="Common-space width D (paper: 512)."),
    n_clips: int = typer.Option(None, min=1, help="2D-map size N."),
    distill_weight: float = typer.Option(None, min=0.0, help="lambda of Eq. 10."),
    warmup_epochs: int = typer.Option(None, min=0, help="Epochs before distillation starts."),
    teacher: bool = typer.Option(None, "--teacher/--no-teacher",
                                 help="--no-teacher trains FVMR w/o SD."),
    cross_video: float = typer.Option(None, min=0.0, help="Weight of the cross-video term."),
    teacher_map: list[str] = typer.Option(None, "--teacher-map", help="A cross-modal teacher's "
                                          "maps (.npz from `train teacher-maps`), distilled into "
                                          "the fast path; repeat: one mean target."),
    map_weight: float = typer.Option(None, min=0.0, help="Weight of the teacher-maps term."),
    clip_norm: bool = typer.Option(None, "--clip-norm/--no-clip-norm",
                                   help="LayerNorm on input clip features."),
    clip_scale: float = CLIP_SCALE_OPTION,
    extra: list[str] = EXTRA_OPTION,
    charades_dir: Path = CHARADES_DIR_OPTION,
    ema: float = EMA_OPTION,
    smooth_epochs: int = SMOOTH_OPTION,
    patience: int = PATIENCE_OPTION,
    video_batches: bool = typer.Option(None, "--video-batches/--no-video-batches",
                                       help="Batches of whole videos (each video encoded once "
                                       "per batch; faster with many queries)."),
    feature_rate: float = FEATURE_RATE_OPTION,
    train_split: str = typer.Option(None, help="Split to train on (default: train)."),
    val_split: str = typer.Option(None, help="Split to validate on each epoch (default: val)."),
    fold: str = FOLD_OPTION,
    keep: str = KEEP_OPTION,
    seed: int = SEED_OPTION,
    threads: int = THREADS_OPTION,
    resume: bool = RESUME_OPTION,
) -> None:
    """Train FVMR (with fine-grained semantic distillation) and keep the best epoch in OUT/best.

    Defaults: FVMRConfig (moment_search.models.fvmr) and TrainConfig
    (moment_search.train.fvmr_trainer)."""
    from moment_search.models.fvmr import FVMRConfig
    from moment_search.train.fvmr_trainer import FVMRTrainer, TrainConfig

    train_from_options(ctx, "fvmr", FVMRConfig, TrainConfig, FVMRTrainer)


@app.command()
def pln(
    ctx: typer.Context,
    data: Path = DATA_OPTION,
    out: Path = OUT_OPTION,
    recipe: Path = RECIPE_OPTION,
    print_recipe: bool = PRINT_RECIPE_OPTION,
    epochs: int = typer.Option(None, min=1, help="Training epochs (paper: up to 50)."),
    batch_size: int = typer.Option(None, min=1, help="Queries per batch."),
    lr: float = typer.Option(None, min=0.0, help="AdamW learning rate."),
    stages: str = typer.Option(None, help="Clips per stage, coarse to fine (e.g. 8,16)."),
    hidden_dim: int = typer.Option(None, min=8, help="Width d (paper: 512)."),
    cfm: bool = typer.Option(None, "--cfm/--no-cfm", help="--no-cfm trains PLN w/o CFM."),
    upsampling: bool = typer.Option(None, "--upsampling/--no-upsampling",
                                    help="--no-upsampling trains PLN w/o UC."),
    strategy: int = typer.Option(None, min=1, max=2, help="Validation strategy (1 last, 2 avg)."),
    dropout: float = DROPOUT_OPTION,
    weight_decay: float = WEIGHT_DECAY_OPTION,
    clip_scale: float = CLIP_SCALE_OPTION,
    extra: list[str] = EXTRA_OPTION,
    charades_dir: Path = CHARADES_DIR_OPTION,
    ema: float = EMA_OPTION,
    smooth_epochs: int = SMOOTH_OPTION,
    patience: int = PATIENCE_OPTION,
    fold: str = FOLD_OPTION,
    keep: str = KEEP_OPTION,
    feature_rate: float = FEATURE_RATE_OPTION,
    seed: int = SEED_OPTION,
    threads: int = THREADS_OPTION,
    resume: bool = RESUME_OPTION,
) -> None:
    """Train PLN (progressive localization network) and keep the best epoch in OUT/best.

    Defaults: PLNConfig (moment_search.models.pln) and PLNTrainConfig
    (moment_search.train.pln_trainer)."""
    from moment_search.models.pln import PLNConfig
    from moment_search.train.pln_trainer import PLNTrainConfig, PLNTrainer

    train_from_options(ctx, "pln", PLNConfig, PLNTrainConfig, PLNTrainer)


@app.command()
def fian(
    ctx: typer.Context,
    data: Path = DATA_OPTION,
    out: Path = OUT_OPTION,
    recipe: Path = RECIPE_OPTION,
    print_recipe: bool = PRINT_RECIPE_OPTION,
    epochs: int = typer.Option(None, min=1, help="Training epochs."),
    batch_size: int = typer.Option(None, min=1, help="Queries per batch (paper: 64)."),
    lr: float = typer.Option(None, min=0.0, help="AdamW learning rate (paper: Adam 4e-4)."),
    hidden_dim: int = typer.Option(None, min=8, help="Width d_h (paper: 512)."),
    heads: int = typer.Option(None, min=1, help="Attention heads (paper: 4 on Charades-STA)."),
    n_steps: int = typer.Option(None, min=1, help="Video steps (paper: 64 on Charades-STA)."),
    kernels: str = typer.Option(None, help="Anchor window sizes in steps (e.g. 16,24,32,40)."),
    stride_ratio: float = typer.Option(None, min=0.0, max=1.0, help="Stride / window size."),
    branches: str = typer.Option(None, help="Iterative attention branches, e.g. query,video "
                                 "(video alone: the FIAN-VQMA ablation)."),
    tau: float = typer.Option(None, min=0.0, max=1.0, help="Positive IoU threshold."),
    alpha: float = typer.Option(None, min=0.0, help="Boundary loss weight (Eq. 18)."),
    dropout: float = DROPOUT_OPTION,
    weight_decay: float = WEIGHT_DECAY_OPTION,
    clip_scale: float = CLIP_SCALE_OPTION,
    extra: list[str] = EXTRA_OPTION,
    charades_dir: Path = CHARADES_DIR_OPTION,
    ema: float = EMA_OPTION,
    smooth_epochs: int = SMOOTH_OPTION,
    patience: int = PATIENCE_OPTION,
    fold: str = FOLD_OPTION,
    keep: str = KEEP_OPTION,
    feature_rate: float = FEATURE_RATE_OPTION,
    seed: int = SEED_OPTION,
    threads: int = THREADS_OPTION,
    resume: bool = RESUME_OPTION,
) -> None:
    """Train FIAN (fine-grained iterative attention network) and keep the best epoch in OUT/best.

    Defaults: FIANConfig (moment_search.models.fian) and FIANTrainConfig
    (moment_search.train.fian_trainer)."""
    from moment_search.models.fian import FIANConfig
    from moment_search.train.fian_trainer import FIANTrainConfig, FIANTrainer

    train_from_options(ctx, "fian", FIANConfig, FIANTrainConfig, FIANTrainer)


@app.command()
def drn(
    ctx: typer.Context,
    data: Path = DATA_OPTION,
    out: Path = OUT_OPTION,
    recipe: Path = RECIPE_OPTION,
    print_recipe: bool = PRINT_RECIPE_OPTION,
    stage_epochs: str = typer.Option(None, help="Epochs of the three steps: location + "
                                     "matching, IoU head, joint fine-tune (e.g. 10,3,2)."),
    batch_size: int = typer.Option(None, min=1, help="Queries per batch (paper: 32)."),
    lr: float = typer.Option(None, min=0.0, help="Adam lr of step 1 (paper: 1e-3)."),
    iou_lr: float = typer.Option(None, min=0.0, help="Adam lr of step 2 (paper: 1e-5)."),
    finetune_lr: float = typer.Option(None, min=0.0, help="Adam lr of step 3 (paper: 1e-6)."),
    lstm_dim: int = typer.Option(None, min=4, help="BiLSTM units per direction (paper: 512)."),
    channels: int = typer.Option(None, min=4, help="Width of C_1 (C_2, C_3: 2x, 4x; off.: 256)."),
    fpn_dim: int = typer.Option(None, min=4, help="Width of the pyramid and heads (off.: 512)."),
    n_segments: int = typer.Option(None, min=4, help="Video segments (official Charades: 32)."),
    min_overlap: float = typer.Option(None, min=0.0, max=1.0, help="Eq. 7 trains on boxes "
                                      "whose IoU exceeds this."),
    cross_video: float = typer.Option(None, min=0.0, help="Weight of the cross-video term: "
                                      "each sentence against another video's segments, every "
                                      "location negative (not in the paper; 0: off)."),
    dropout: float = DROPOUT_OPTION,
    weight_decay: float = WEIGHT_DECAY_OPTION,
    clip_scale: float = CLIP_SCALE_OPTION,
    extra: list[str] = EXTRA_OPTION,
    charades_dir: Path = CHARADES_DIR_OPTION,
    ema: float = EMA_OPTION,
    smooth_epochs: int = SMOOTH_OPTION,
    patience: int = PATIENCE_OPTION,
    fold: str = FOLD_OPTION,
    keep: str = KEEP_OPTION,
    feature_rate: float = FEATURE_RATE_OPTION,
    seed: int = SEED_OPTION,
    threads: int = THREADS_OPTION,
    resume: bool = RESUME_OPTION,
) -> None:
    """Train DRN (dense regression network) in its three steps; keep the best epoch in OUT/best.

    Defaults: DRNConfig (moment_search.models.drn) and DRNTrainConfig
    (moment_search.train.drn_trainer)."""
    from moment_search.models.drn import DRNConfig
    from moment_search.train.drn_trainer import DRNTrainConfig, DRNTrainer

    train_from_options(ctx, "drn", DRNConfig, DRNTrainConfig, DRNTrainer)


@app.command()
def lpnet(
    ctx: typer.Context,
    data: Path = DATA_OPTION,
    out: Path = OUT_OPTION,
    recipe: Path = RECIPE_OPTION,
    print_recipe: bool = PRINT_RECIPE_OPTION,
    epochs: int = typer.Option(None, min=1, help="Training epochs (paper: 100, early stopping)."),
    batch_size: int = typer.Option(None, min=1, help="Queries per batch."),
    lr: float = typer.Option(None, min=0.0, help="AdamW learning rate (paper: Adam 1e-4)."),
    hidden_dim: int = typer.Option(None, min=8, help="Width d (paper: 256)."),
    heads: int = typer.Option(None, min=1, help="Attention heads (official: 8)."),
    n_clips: int = typer.Option(None, min=2, help="Video segments (official Charades: 64)."),
    feature_dim: int = typer.Option(None, min=1, help="Width of the corpus clip features."),
    proposals: int = typer.Option(None, min=1, help="Learnable proposals (official: 100)."),
    reg_weight: float = typer.Option(None, min=0.0, help="lambda of Eq. 12 (paper: 100)."),
    kl_weight: float = typer.Option(None, min=0.0, help="Weight of the boundary-aware loss "
                                    "(0: the ablation without it)."),
    iou_weight: float = typer.Option(None, min=0.0, help="Weight of the proposal IoU loss "
                                     "(0: fixed proposals, the ablation)."),
    dropout: float = DROPOUT_OPTION,
    weight_decay: float = WEIGHT_DECAY_OPTION,
    clip_scale: float = CLIP_SCALE_OPTION,
    extra: list[str] = EXTRA_OPTION,
    charades_dir: Path = CHARADES_DIR_OPTION,
    ema: float = EMA_OPTION,
    smooth_epochs: int = SMOOTH_OPTION,
    patience: int = PATIENCE_OPTION,
    fold: str = FOLD_OPTION,
    keep: str = KEEP_OPTION,
    feature_rate: float = FEATURE_RATE_OPTION,
    seed: int = SEED_OPTION,
    threads: int = THREADS_OPTION,
    resume: bool = RESUME_OPTION,
) -> None:
    """Train LPNet (learnable proposal network) and keep the best epoch in OUT/best.

    Defaults: LPNetConfig (moment_search.models.lpnet) and LPNetTrainConfig
    (moment_search.train.lpnet_trainer)."""
    from moment_search.models.lpnet import LPNetConfig
    from moment_search.train.lpnet_trainer import LPNetTrainConfig, LPNetTrainer

    train_from_options(ctx, "lpnet", LPNetConfig, LPNetTrainConfig, LPNetTrainer)


app.command("teacher-maps")(teacher_maps)
app.command("ensemble")(ensemble)
app.command("ship")(ship)


@app.command("video-text")
def video_text(
    ctx: typer.Context,
    data: Path = DATA_OPTION,
    out: Path = OUT_OPTION,
    recipe: Path = RECIPE_OPTION,
    print_recipe: bool = PRINT_RECIPE_OPTION,
    epochs: int = typer.Option(None, min=1, help="Training epochs."),
    batch_videos: int = typer.Option(None, min=2, help="Videos (= sentences) per InfoNCE batch."),
    samples_per_video: int = typer.Option(None, min=1, help="Sentences per video per epoch."),
    lr: float = typer.Option(None, min=0.0, help="AdamW learning rate."),
    weight_decay: float = WEIGHT_DECAY_OPTION,
    embed_dim: int = typer.Option(None, min=8, help="Width of the video-text space."),
    feature_dim: int = typer.Option(None, min=1, help="Width of the input clip features."),
    n_clips: int = typer.Option(None, min=1, help="Clips pooled per video (FVMR's map size N)."),
    level: str = typer.Option(None, help="video: one vector per video; moment: one per "
                              "2D-map proposal (trained on the sentences' windows)."),
    hidden_dim: int = typer.Option(None, min=8, help="MLP width."),
    dropout: float = DROPOUT_OPTION,
    temperature: float = typer.Option(None, min=1e-3, help="InfoNCE temperature."),
    descriptions: bool = typer.Option(None, "--descriptions/--no-descriptions",
                                      help="Use the videos' description and script sentences "
                                      "(official Charades CSV)."),
    extra: list[str] = EXTRA_OPTION,
    charades_dir: Path = CHARADES_DIR_OPTION,
    ema: float = EMA_OPTION,
    smooth_epochs: int = SMOOTH_OPTION,
    fold: str = FOLD_OPTION,
    keep: str = KEEP_OPTION,
    feature_rate: float = FEATURE_RATE_OPTION,
    seed: int = SEED_OPTION,
    threads: int = THREADS_OPTION,
    resume: bool = RESUME_OPTION,
) -> None:
    """Train the video-level relevance model (corpus search) and keep the best epoch.

    Defaults: VideoTextConfig (moment_search.models.video_text) and VideoTextTrainConfig
    (moment_search.train.video_text_trainer)."""
    from moment_search.models.video_text import VideoTextConfig
    from moment_search.train.video_text_trainer import VideoTextTrainConfig, VideoTextTrainer

    train_from_options(ctx, "video-text", VideoTextConfig, VideoTextTrainConfig,
                       VideoTextTrainer)


# compose's options named apart from compose()'s keywords (the recipe's [compose] keys).
COMPOSE_RENAMES = {"video_text": "video_text_dir", "data": "data_dir"}


@app.command()
def compose(
    ctx: typer.Context,
    fvmr: Path = typer.Option(..., help="A trained FVMR checkpoint."),
    out: Path = typer.Option(..., help="Where the composed search checkpoint goes."),
    recipe: Path = RECIPE_OPTION,
    video_text: Path = typer.Option(None, help="A trained video-text checkpoint."),
    video_weight: float = typer.Option(None, min=0.0, help="beta: weight of the video score."),
    hub_weight: float = typer.Option(None, min=0.0, help="gamma: weight of the hub correction."),
    hub_bank: int = typer.Option(None, min=0, help="Training sentences the hub correction is "
                                 "measured on (0: none)."),
    data: Path = typer.Option(None, help="Corpus directory (for the bank's sentences)."),
    seed: int = typer.Option(None, help="Seed of the bank draw."),
) -> None:
    """Compose FVMR + video score + hub correction into one search checkpoint (index it).

    Defaults: the keywords of moment_search.train.compose.compose."""
    from moment_search.train.compose import compose as compose_checkpoint
    from moment_search.train.recipes import resolve_keywords

    options = {COMPOSE_RENAMES.get(name, name): value
               for name, value in given_options(ctx).items() if name != "fvmr"}
    with user_errors():
        check_out(out)
        keywords = resolve_keywords(recipe, "compose", compose_checkpoint, options)
        path = compose_checkpoint(fvmr, out, **keywords)
    console.print(f"search checkpoint saved to {path}")
