"""``moment-search train ...``: train a model on a corpus directory."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import console, metric_table, user_errors

app = typer.Typer(help="Train models.", no_args_is_help=True)

# The recipe options every trainer shares (see moment_search.train.loop and .extras).
EXTRA_OPTION = typer.Option([], "--extra", help="Extra training pairs, KIND[:WEIGHT] "
                            "(charades-actions: the train videos' Charades action segments).")
CHARADES_DIR_OPTION = typer.Option(None, help="Folder of the Charades CSV and class list "
                                   "(default: DATA/../annotations/charades).")
EMA_OPTION = typer.Option(0.0, min=0.0, max=0.99999, help="EMA decay of the weights per step "
                          "(0: off); the average is validated and saved.")
SMOOTH_OPTION = typer.Option(1, min=1, help="Pick the best epoch on the trailing mean of this "
                             "many validation scores.")
PATIENCE_OPTION = typer.Option(0, min=0, help="Stop after this many epochs without smoothed "
                               "improvement (0: never).")
FOLD_OPTION = typer.Option(None, help="K/N: cross-validation, train on the train split less "
                           "fold K of N (video-disjoint), validate on fold K.")
CLIP_SCALE_OPTION = typer.Option(1.0, min=0.0, help="Multiply clip features (22.627 = sqrt(512) "
                                 "gives L2-normalised CLIP features unit RMS).")
THREADS_OPTION = typer.Option(None, min=1, help="torch CPU threads (default: torch's).")
DATA_OPTION = typer.Option(..., help="Corpus directory with train/val annotation files.")
OUT_OPTION = typer.Option(..., help="Output directory (best/, last/, history.jsonl).")
FEATURE_RATE_OPTION = typer.Option(None, help="Features per second (None: spread).")
SEED_OPTION = typer.Option(0, help="Random seed.")
RESUME_OPTION = typer.Option(False, help="Continue from OUT/last.")
WEIGHT_DECAY_OPTION = typer.Option(0.0, min=0.0, help="AdamW weight decay.")


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
    data: Path = DATA_OPTION,
    out: Path = OUT_OPTION,
    epochs: int = typer.Option(20, min=1, help="Training epochs."),
    batch_size: int = typer.Option(32, min=1, help="Queries per batch."),
    lr: float = typer.Option(2e-4, min=0.0, help="AdamW learning rate."),
    weight_decay: float = WEIGHT_DECAY_OPTION,
    dropout: float = typer.Option(0.1, min=0.0, max=0.9, help="Dropout in every block."),
    hidden_dim: int = typer.Option(128, min=8, help="Encoder width (paper: 512)."),
    space_dim: int = typer.Option(128, min=8, help="Common-space width D (paper: 512)."),
    n_clips: int = typer.Option(16, min=1, help="2D-map size N."),
    distill_weight: float = typer.Option(3.0, min=0.0, help="lambda of Eq. 10."),
    warmup_epochs: int = typer.Option(8, min=0, help="Epochs before distillation starts."),
    teacher: bool = typer.Option(True, help="--no-teacher trains FVMR w/o SD."),
    cross_video: float = typer.Option(0.0, min=0.0, help="Weight of the cross-video term."),
    clip_norm: bool = typer.Option(False, help="LayerNorm on input clip features."),
    clip_scale: float = CLIP_SCALE_OPTION,
    extra: list[str] = EXTRA_OPTION,
    charades_dir: Path = CHARADES_DIR_OPTION,
    ema: float = EMA_OPTION,
    smooth_epochs: int = SMOOTH_OPTION,
    patience: int = PATIENCE_OPTION,
    video_batches: bool = typer.Option(False, help="Batches of whole videos (each video "
                                       "encoded once per batch; faster with many queries)."),
    feature_rate: float = FEATURE_RATE_OPTION,
    train_split: str = typer.Option("train", help="Split to train on."),
    val_split: str = typer.Option("val", help="Split to validate on each epoch."),
    fold: str = FOLD_OPTION,
    seed: int = SEED_OPTION,
    threads: int = THREADS_OPTION,
    resume: bool = RESUME_OPTION,
) -> None:
    """Train FVMR (with fine-grained semantic distillation) and keep the best epoch in OUT/best."""
    from moment_search.models.fvmr import FVMRConfig
    from moment_search.train.fvmr_trainer import FVMRTrainer, TrainConfig

    model_config = FVMRConfig(n_clips=n_clips, hidden_dim=hidden_dim, space_dim=space_dim,
                               dropout=dropout, clip_norm=clip_norm, clip_scale=clip_scale)
    train_config = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr,
                               weight_decay=weight_decay,
                               distill_weight=distill_weight, warmup_epochs=warmup_epochs,
                               teacher=teacher, cross_video_weight=cross_video, seed=seed,
                               threads=threads, extras=tuple(extra), ema_decay=ema,
                               smooth_epochs=smooth_epochs, patience=patience,
                               video_batches=video_batches, fold=fold)
    fit_and_report(lambda: FVMRTrainer(data, out, model_config, train_config, train_split,
                                       val_split, feature_rate, charades_dir=charades_dir),
                   resume, out, f"best validation epoch ({val_split})")


@app.command()
def pln(
    data: Path = DATA_OPTION,
    out: Path = OUT_OPTION,
    epochs: int = typer.Option(15, min=1, help="Training epochs (paper: up to 50)."),
    batch_size: int = typer.Option(32, min=1, help="Queries per batch."),
    lr: float = typer.Option(1e-4, min=0.0, help="AdamW learning rate."),
    stages: str = typer.Option("8,16", help="Clips per stage, coarse to fine (e.g. 8,16)."),
    hidden_dim: int = typer.Option(64, min=8, help="Width d (paper: 512)."),
    cfm: bool = typer.Option(True, help="--no-cfm trains PLN w/o CFM."),
    upsampling: bool = typer.Option(True, help="--no-upsampling trains PLN w/o UC."),
    strategy: int = typer.Option(1, min=1, max=2, help="Validation strategy (1 last, 2 avg)."),
    dropout: float = typer.Option(0.0, min=0.0, max=0.9, help="Dropout (paper: none)."),
    weight_decay: float = WEIGHT_DECAY_OPTION,
    clip_scale: float = CLIP_SCALE_OPTION,
    extra: list[str] = EXTRA_OPTION,
    charades_dir: Path = CHARADES_DIR_OPTION,
    ema: float = EMA_OPTION,
    smooth_epochs: int = SMOOTH_OPTION,
    patience: int = PATIENCE_OPTION,
    fold: str = FOLD_OPTION,
    feature_rate: float = FEATURE_RATE_OPTION,
    seed: int = SEED_OPTION,
    threads: int = THREADS_OPTION,
    resume: bool = RESUME_OPTION,
) -> None:
    """Train PLN (progressive localization network) and keep the best epoch in OUT/best."""
    from moment_search.models.pln import PLNConfig
    from moment_search.train.pln_trainer import PLNTrainConfig, PLNTrainer

    with user_errors():
        stage_clips = tuple(int(n) for n in stages.split(","))
        model_config = PLNConfig(stage_clips=stage_clips, hidden_dim=hidden_dim, use_cfm=cfm,
                                 use_upsampling=upsampling, dropout=dropout,
                                 clip_scale=clip_scale)
        train_config = PLNTrainConfig(epochs=epochs, batch_size=batch_size, lr=lr,
                                      weight_decay=weight_decay, strategy=strategy, seed=seed,
                                      threads=threads, extras=tuple(extra), ema_decay=ema,
                                      smooth_epochs=smooth_epochs, patience=patience, fold=fold)
    fit_and_report(lambda: PLNTrainer(data, out, model_config, train_config,
                                      feature_rate=feature_rate, charades_dir=charades_dir),
                   resume, out)


@app.command()
def fian(
    data: Path = DATA_OPTION,
    out: Path = OUT_OPTION,
    epochs: int = typer.Option(12, min=1, help="Training epochs."),
    batch_size: int = typer.Option(64, min=1, help="Queries per batch (paper: 64)."),
    lr: float = typer.Option(4e-4, min=0.0, help="AdamW learning rate (paper: Adam 4e-4)."),
    hidden_dim: int = typer.Option(128, min=8, help="Width d_h (paper: 512)."),
    heads: int = typer.Option(4, min=1, help="Attention heads (paper: 4 on Charades-STA)."),
    n_steps: int = typer.Option(64, min=1, help="Video steps (paper: 64 on Charades-STA)."),
    kernels: str = typer.Option("16,24,32,40", help="Anchor window sizes in steps."),
    stride_ratio: float = typer.Option(0.125, min=0.0, max=1.0, help="Stride / window size."),
    branches: str = typer.Option("query,video", help="Iterative attention branches "
                                 "(video alone: the FIAN-VQMA ablation)."),
    tau: float = typer.Option(0.55, min=0.0, max=1.0, help="Positive IoU threshold."),
    alpha: float = typer.Option(0.005, min=0.0, help="Boundary loss weight (Eq. 18)."),
    dropout: float = typer.Option(0.1, min=0.0, max=0.9, help="Dropout in every block."),
    weight_decay: float = WEIGHT_DECAY_OPTION,
    clip_scale: float = CLIP_SCALE_OPTION,
    extra: list[str] = EXTRA_OPTION,
    charades_dir: Path = CHARADES_DIR_OPTION,
    ema: float = EMA_OPTION,
    smooth_epochs: int = SMOOTH_OPTION,
    patience: int = PATIENCE_OPTION,
    fold: str = FOLD_OPTION,
    feature_rate: float = FEATURE_RATE_OPTION,
    seed: int = SEED_OPTION,
    threads: int = THREADS_OPTION,
    resume: bool = RESUME_OPTION,
) -> None:
    """Train FIAN (fine-grained iterative attention network) and keep the best epoch in OUT/best."""
    from moment_search.models.fian import FIANConfig
    from moment_search.train.fian_trainer import FIANTrainConfig, FIANTrainer

    with user_errors():
        model_config = FIANConfig(hidden_dim=hidden_dim, heads=heads, n_steps=n_steps,
                                  kernels=tuple(int(k) for k in kernels.split(",")),
                                  stride_ratio=stride_ratio,
                                  branches=tuple(b.strip() for b in branches.split(",")),
                                  dropout=dropout, clip_scale=clip_scale)
        train_config = FIANTrainConfig(epochs=epochs, batch_size=batch_size, lr=lr,
                                       weight_decay=weight_decay, tau=tau, alpha=alpha,
                                       seed=seed, threads=threads, extras=tuple(extra),
                                       ema_decay=ema, smooth_epochs=smooth_epochs,
                                       patience=patience, fold=fold)
    fit_and_report(lambda: FIANTrainer(data, out, model_config, train_config,
                                       feature_rate=feature_rate, charades_dir=charades_dir),
                   resume, out)


@app.command()
def drn(
    data: Path = DATA_OPTION,
    out: Path = OUT_OPTION,
    stage_epochs: str = typer.Option("10,3,2", help="Epochs of the three steps: location + "
                                     "matching, IoU head, joint fine-tune."),
    batch_size: int = typer.Option(32, min=1, help="Queries per batch (paper: 32)."),
    lr: float = typer.Option(1e-3, min=0.0, help="Adam lr of step 1 (paper: 1e-3)."),
    iou_lr: float = typer.Option(1e-5, min=0.0, help="Adam lr of step 2 (paper: 1e-5)."),
    finetune_lr: float = typer.Option(1e-6, min=0.0, help="Adam lr of step 3 (paper: 1e-6)."),
    lstm_dim: int = typer.Option(128, min=4, help="BiLSTM units per direction (paper: 512)."),
    channels: int = typer.Option(64, min=4, help="Width of C_1 (C_2, C_3: 2x, 4x; off.: 256)."),
    fpn_dim: int = typer.Option(128, min=4, help="Width of the pyramid and heads (off.: 512)."),
    n_segments: int = typer.Option(32, min=4, help="Video segments (official Charades: 32)."),
    min_overlap: float = typer.Option(0.0, min=0.0, max=1.0, help="Eq. 7 trains on boxes "
                                      "whose IoU exceeds this."),
    dropout: float = typer.Option(0.0, min=0.0, max=0.9, help="Dropout on the video input."),
    weight_decay: float = WEIGHT_DECAY_OPTION,
    clip_scale: float = CLIP_SCALE_OPTION,
    extra: list[str] = EXTRA_OPTION,
    charades_dir: Path = CHARADES_DIR_OPTION,
    ema: float = EMA_OPTION,
    smooth_epochs: int = SMOOTH_OPTION,
    patience: int = PATIENCE_OPTION,
    fold: str = FOLD_OPTION,
    feature_rate: float = FEATURE_RATE_OPTION,
    seed: int = SEED_OPTION,
    threads: int = THREADS_OPTION,
    resume: bool = RESUME_OPTION,
) -> None:
    """Train DRN (dense regression network) in its three steps; keep the best epoch in OUT/best."""
    from moment_search.models.drn import DRNConfig
    from moment_search.train.drn_trainer import DRNTrainConfig, DRNTrainer

    with user_errors():
        model_config = DRNConfig(lstm_dim=lstm_dim, channels=channels, fpn_dim=fpn_dim,
                                 n_segments=n_segments, dropout=dropout, clip_scale=clip_scale)
        train_config = DRNTrainConfig(
            stage_epochs=tuple(int(n) for n in stage_epochs.split(",")), batch_size=batch_size,
            lr=lr, iou_lr=iou_lr, finetune_lr=finetune_lr, weight_decay=weight_decay,
            min_overlap=min_overlap, seed=seed, threads=threads, extras=tuple(extra),
            ema_decay=ema, smooth_epochs=smooth_epochs, patience=patience, fold=fold)
    fit_and_report(lambda: DRNTrainer(data, out, model_config, train_config,
                                      feature_rate=feature_rate, charades_dir=charades_dir),
                   resume, out)


@app.command()
def lpnet(
    data: Path = DATA_OPTION,
    out: Path = OUT_OPTION,
    epochs: int = typer.Option(30, min=1, help="Training epochs (paper: 100, early stopping)."),
    batch_size: int = typer.Option(32, min=1, help="Queries per batch."),
    lr: float = typer.Option(1e-4, min=0.0, help="AdamW learning rate (paper: Adam 1e-4)."),
    hidden_dim: int = typer.Option(128, min=8, help="Width d (paper: 256)."),
    heads: int = typer.Option(8, min=1, help="Attention heads (official: 8)."),
    n_clips: int = typer.Option(64, min=2, help="Video segments (official Charades: 64)."),
    feature_dim: int = typer.Option(512, min=1, help="Width of the corpus clip features."),
    proposals: int = typer.Option(100, min=1, help="Learnable proposals (official: 100)."),
    reg_weight: float = typer.Option(100.0, min=0.0, help="lambda of Eq. 12 (paper: 100)."),
    kl_weight: float = typer.Option(1.0, min=0.0, help="Weight of the boundary-aware loss "
                                    "(0: the ablation without it)."),
    iou_weight: float = typer.Option(1.0, min=0.0, help="Weight of the proposal IoU loss "
                                     "(0: fixed proposals, the ablation)."),
    dropout: float = typer.Option(0.1, min=0.0, max=0.9, help="Dropout in every block."),
    weight_decay: float = WEIGHT_DECAY_OPTION,
    clip_scale: float = CLIP_SCALE_OPTION,
    extra: list[str] = EXTRA_OPTION,
    charades_dir: Path = CHARADES_DIR_OPTION,
    ema: float = EMA_OPTION,
    smooth_epochs: int = SMOOTH_OPTION,
    patience: int = PATIENCE_OPTION,
    fold: str = FOLD_OPTION,
    feature_rate: float = FEATURE_RATE_OPTION,
    seed: int = SEED_OPTION,
    threads: int = THREADS_OPTION,
    resume: bool = RESUME_OPTION,
) -> None:
    """Train LPNet (learnable proposal network) and keep the best epoch in OUT/best."""
    from moment_search.models.lpnet import LPNetConfig
    from moment_search.train.lpnet_trainer import LPNetTrainConfig, LPNetTrainer

    with user_errors():
        model_config = LPNetConfig(feature_dim=feature_dim, hidden_dim=hidden_dim,
                                   n_heads=heads, n_clips=n_clips, n_proposals=proposals,
                                   dropout=dropout, clip_scale=clip_scale)
        train_config = LPNetTrainConfig(
            epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
            reg_weight=reg_weight, kl_weight=kl_weight, iou_weight=iou_weight, seed=seed,
            threads=threads, extras=tuple(extra), ema_decay=ema, smooth_epochs=smooth_epochs,
            patience=patience, fold=fold)
    fit_and_report(lambda: LPNetTrainer(data, out, model_config, train_config,
                                        feature_rate=feature_rate, charades_dir=charades_dir),
                   resume, out)


@app.command("video-text")
def video_text(
    data: Path = DATA_OPTION,
    out: Path = OUT_OPTION,
    epochs: int = typer.Option(30, min=1, help="Training epochs."),
    batch_videos: int = typer.Option(64, min=2, help="Videos (= sentences) per InfoNCE batch."),
    samples_per_video: int = typer.Option(4, min=1, help="Sentences per video per epoch."),
    lr: float = typer.Option(1e-3, min=0.0, help="AdamW learning rate."),
    weight_decay: float = typer.Option(0.01, min=0.0, help="AdamW weight decay."),
    embed_dim: int = typer.Option(128, min=8, help="Width of the video-text space."),
    feature_dim: int = typer.Option(512, min=1, help="Width of the input clip features."),
    n_clips: int = typer.Option(16, min=1, help="Clips pooled per video (FVMR's map size N)."),
    level: str = typer.Option("video", help="video: one vector per video; moment: one per "
                              "2D-map proposal (trained on the sentences' windows)."),
    hidden_dim: int = typer.Option(256, min=8, help="MLP width."),
    dropout: float = typer.Option(0.1, min=0.0, max=0.9, help="Dropout."),
    temperature: float = typer.Option(0.05, min=1e-3, help="InfoNCE temperature."),
    descriptions: bool = typer.Option(True, help="Use the videos' description and script "
                                      "sentences (official Charades CSV)."),
    extra: list[str] = EXTRA_OPTION,
    charades_dir: Path = CHARADES_DIR_OPTION,
    ema: float = EMA_OPTION,
    smooth_epochs: int = SMOOTH_OPTION,
    fold: str = FOLD_OPTION,
    feature_rate: float = FEATURE_RATE_OPTION,
    seed: int = SEED_OPTION,
    threads: int = THREADS_OPTION,
) -> None:
    """Train the video-level relevance model (corpus search) and keep the best epoch."""
    from moment_search.models.video_text import VideoTextConfig
    from moment_search.train.video_text_trainer import VideoTextTrainConfig, VideoTextTrainer

    train_config = VideoTextTrainConfig(
        epochs=epochs, batch_videos=batch_videos, samples_per_video=samples_per_video, lr=lr,
        n_clips=n_clips,
        weight_decay=weight_decay, extras=tuple(extra), descriptions=descriptions,
        ema_decay=ema, smooth_epochs=smooth_epochs, fold=fold, seed=seed, threads=threads)
    with user_errors():
        model_config = VideoTextConfig(feature_dim=feature_dim, embed_dim=embed_dim,
                                       hidden_dim=hidden_dim, dropout=dropout,
                                       temperature=temperature, level=level)
        trainer = VideoTextTrainer(data, out, model_config, train_config, feature_rate,
                                   charades_dir)
        best = trainer.fit(progress=console.print)
    console.print(metric_table("best validation epoch", best))
    console.print(f"model saved to {out / 'best'}")


@app.command()
def compose(
    fvmr: Path = typer.Option(..., help="A trained FVMR checkpoint."),
    out: Path = typer.Option(..., help="Where the composed search checkpoint goes."),
    video_text: Path = typer.Option(None, help="A trained video-text checkpoint."),
    video_weight: float = typer.Option(0.0, min=0.0, help="beta: weight of the video score."),
    hub_weight: float = typer.Option(0.0, min=0.0, help="gamma: weight of the hub correction."),
    hub_bank: int = typer.Option(0, min=0, help="Training sentences the hub correction is "
                                 "measured on (0: none)."),
    data: Path = typer.Option(None, help="Corpus directory (for the bank's sentences)."),
    seed: int = typer.Option(0, help="Seed of the bank draw."),
) -> None:
    """Compose FVMR + video score + hub correction into one search checkpoint (index it)."""
    from moment_search.train.compose import compose as compose_checkpoint

    with user_errors():
        path = compose_checkpoint(fvmr, out, video_text, video_weight, hub_weight, hub_bank,
                                  data, "train", seed)
    console.print(f"search checkpoint saved to {path}")
