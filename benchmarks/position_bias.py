"""Position and length bias of corpus search, and the cell prior that removes it (JSON + Markdown).

1. Choose (train only): the prior is fitted for each ``strength`` (and no prior is a candidate),
   and measured on a fold's sentences searched over that fold's videos. The rule, fixed before
   any val figure of a prior was looked at (the bias itself had been measured on val): among the
   settings whose mean top-1 start-at-0 share is within 5 points of the folds' ground truth, the
   one with the best mean R10@0.5 + R10@0.7; if none is, the closest. The report says which
   branch decided. The fitting steps and rate are ``PriorConfig``'s fixed defaults.
2. Fit the chosen prior the same way for the model given (``--model``).
3. Report val once: the val sentences searched over the val videos, without and with it.

Which predictions the prior is fitted on:

- ``--fold-model`` with ``--fold-data`` and ``fit_on = "own-train"`` (the default): search
  checkpoints trained without a fold (``train fvmr --fold K/N`` and ``train video-text`` on the
  ``data fold`` corpus, composed as the shipped one is) are each measured on their held-out
  fold (sentences they never trained on, as val's are; their FVMR teachers did see them: see
  the FVMR recipe), with a prior fitted on that checkpoint's own training sentences, searched
  in video-disjoint chunks the size of a fold. Step 2 fits the model given on its own training
  sentences, in chunks of the same size. A prior is thus always fitted on the predictions of
  the model that carries it: on train, the checkpoint trained on all of train is more biased
  than the fold checkpoints (top-1 start-at-0 46.5% vs 40.1% and 37.8% on their own training
  sentences), so a prior fitted on the fold checkpoints under-corrects it.
- ``fit_on = "held-out"``: the prior is fitted on the other fold checkpoints' held-out
  predictions (cross-fitted) and step 2 fits it on every fold's (the shipped prior before this
  mode existed; the history page keeps its report).
- No fold models: 5-fold cross-validation on the train split through the model given, each
  fold fitted on the other four; those sentences were trained on, so the folds are easier than
  val (fold R10@0.5 ~75 vs ~20 on val).

Search here is the searcher's own rule over exact scores (``best_across_videos``: the top
``default_candidates(k)`` proposals, fetched wider where the cap comes up short as the
searcher does, NMS 0.5 within a video, the default per-video cap
``localize.CORPUS_PER_VIDEO``, top k), metrics are
``metrics.corpus_metrics``. Sentences are encoded by the PyTorch model (fp32), so a figure can
differ by a query or two from an index answering with its 8-bit ONNX encoder.

    moment-search benchmark position-bias --data ../shared/data/charades-sta-clip \\
        --model runs/search --fold-model runs/search-f0 --fold-data runs/folds/f0 \\
        --fold-model runs/search-f1 --fold-data runs/folds/f1 \\
        --out reports/position_bias --write-model runs/search-prior
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..geometry.proposals import num_proposals
from ..train.cell_prior import PriorConfig, fit_cell_prior, with_cell_prior
from ..train.folds import check_fold_checkpoint, check_fold_corpora, split_fold
from .position_bias_report import HELD_OUT, OWN_TRAIN, START_SLACK, TRAIN, markdown
from .position_bias_search import Split, bias_of, causes, embed_split, measure, search, truth_bias
from .report import machine_info, progress, write_report

FOLDS = 5
FIT_OWN, FIT_HELD_OUT = "own-train", "held-out"  # PositionBiasConfig.fit_on (module docstring)


@dataclass
class PositionBiasConfig:
    """One run; ``moment-search benchmark position-bias`` builds it from its options."""

    out: Path  # report directory
    data: Path = Path("../shared/data/charades-sta-clip")  # the charades-sta-clip corpus
    model: Path | None = None  # FVMR search checkpoint (None: the shipped one); any prior dropped
    strengths: tuple[float, ...] = (0.5, 1.0, 1.5, 2.0)  # candidate strengths of the prior
    write_model: Path | None = None  # write the checkpoint with the chosen prior here
    fold_models: tuple[Path, ...] = ()  # search checkpoints, each trained without one fold
    fold_data: tuple[Path, ...] = ()  # the fold corpora they hold out, in the same order
    fit_on: str = FIT_OWN  # with fold models: FIT_OWN or FIT_HELD_OUT (module docstring)
    write_fold_models: Path | None = None  # write each fold model with its fold's prior here

    def __post_init__(self) -> None:
        if not self.strengths or any(not 0 < s < 100 for s in self.strengths):
            raise InputError(f"strengths must be one or more numbers in (0, 100), got "
                             f"{self.strengths}", parameter="strengths")
        if len(self.fold_models) != len(self.fold_data) or len(self.fold_models) == 1:
            raise InputError(f"fold models and fold corpora go in pairs, two or more: got "
                             f"{len(self.fold_models)} models and {len(self.fold_data)} corpora",
                             parameter="fold_models")
        if self.write_fold_models is not None and not self.fold_models:
            raise InputError(f"--write-fold-models {self.write_fold_models} needs --fold-model",
                             parameter="fold_models")
        if self.fit_on not in (FIT_OWN, FIT_HELD_OUT):
            raise InputError(f"fit_on must be {FIT_OWN} or {FIT_HELD_OUT}, got {self.fit_on!r}",
                             parameter="fit_on")
        if self.fit_on == FIT_HELD_OUT and not self.fold_models:
            raise InputError(f"fit_on {FIT_HELD_OUT} needs --fold-model (the held-out "
                             "predictions it fits on)", parameter="fit_on")

    def command(self) -> str:
        """The ``moment-search benchmark position-bias`` command line of this run."""
        options = ["--data", self.data, "--out", self.out,
                   "--strengths", ",".join(map(str, self.strengths))]
        options += ["--model", self.model] if self.model else []
        options += ["--write-model", self.write_model] if self.write_model else []
        options += ["--write-fold-models", self.write_fold_models] if self.write_fold_models else []
        for model, data in zip(self.fold_models, self.fold_data, strict=True):
            options += ["--fold-model", model, "--fold-data", data]
        options += ["--fit-on", self.fit_on] if self.fold_models else []
        return "moment-search benchmark position-bias " + " ".join(map(str, options))


def fit(splits: list[Split], strength: float = 1.0) -> np.ndarray:
    """The prior fitted on each split's own sentences over its own videos, all splits together
    (``strength`` x the unit fit: the strength only scales it)."""
    best = np.concatenate([s.best_cells for s in splits])
    truth = np.concatenate([s.true_cells for s in splits])
    return fit_cell_prior(best, truth, PriorConfig(strength=strength))


def setting_rows(fold: int, fitted: list[Split], measured: Split,
                 strengths: tuple[float, ...]) -> list[dict]:
    """One row per setting ("none" and each strength) of one fold: the prior fitted on
    ``fitted``, measured on ``measured``."""
    unit = fit(fitted)
    return [{"fold": fold, "setting": setting, **truth_bias(measured),
             **measure(measured, None if setting == "none" else setting * unit)}
            for setting in ("none", *strengths)]


def cross_validate(train: Split, strengths: tuple[float, ...]) -> list[dict]:
    """One row per (fold, setting): ``FOLDS`` folds of one split, each fitted on the others."""
    rows = []
    for fold in range(FOLDS):
        rest, held = split_fold(train.corpus, fold, FOLDS)
        progress(f"fold {fold + 1}/{FOLDS}")
        rows += setting_rows(fold, [train.subset(rest)], train.subset(held), strengths)
    return rows


def held_out_rows(held_out: list[Split], fold_fits: list[list[Split]],
                  strengths: tuple[float, ...]) -> list[dict]:
    """One row per (fold, setting): each held-out split measured with the prior fitted on
    ``fold_fits`` of its fold (the other held-out splits, or its fold model's own training
    chunks)."""
    rows = []
    for fold, (measured, fits) in enumerate(zip(held_out, fold_fits, strict=True)):
        progress(f"held-out fold {fold + 1}/{len(held_out)}")
        rows += setting_rows(fold, fits, measured, strengths)
    return rows


def check_fold_pairs(config: PositionBiasConfig, n_proposals: int) -> None:
    """Before anything is embedded: the fold corpora are different folds of one ``data fold``
    cut of ``config.data``'s train split, and each fold model was trained without its fold and
    has ``n_proposals`` cells (the model the prior is given to has that many).

    Raises:
        InputError: naming the corpus or checkpoint and what was expected of it.
    """
    from ..models.fvmr import FVMR

    if not config.fold_models:
        return
    check_fold_corpora(config.fold_data, config.data)
    for model_dir, data in zip(config.fold_models, config.fold_data, strict=True):
        check_fold_checkpoint(data, model_dir)
        cells = num_proposals(FVMR.read_config(model_dir)[0].n_clips)  # as FVMR.n_proposals
        if cells != n_proposals:
            raise InputError(f"{model_dir}: {cells} 2D-map cells, but the model given the prior "
                             f"has {n_proposals}", parameter="fold_models")


def fold_splits(config: PositionBiasConfig) -> list[tuple[Split, list[Split]]]:
    """Each fold model's held-out fold (its corpus's val split) through that model, any prior
    it carries dropped, with (``own-train`` only) its own training sentences in chunks the size
    of that fold (pairs checked by :func:`check_fold_pairs`)."""
    from ..models.fvmr import FVMR

    pairs = []
    for model_dir, data in zip(config.fold_models, config.fold_data, strict=True):
        rate = FVMR.read_config(model_dir)[1].get("feature_rate")
        model = with_cell_prior(FVMR.from_pretrained(model_dir), None)
        held = embed_split(model, data, "val", rate)
        own = (own_train_chunks(model, data, rate, len(held.videos))
               if config.fit_on == FIT_OWN else [])
        pairs.append((held, own))
    return pairs


def own_train_chunks(model, data: Path, feature_rate: float | None, chunk_videos: int
                     ) -> list[Split]:
    """The train split of ``data`` through ``model``, cut into video-disjoint chunks of about
    ``chunk_videos`` videos (each searched over its own videos: corpora the size of those the
    prior is measured on)."""
    train = embed_split(model, data, "train", feature_rate)
    n_chunks = max(1, round(len(train.videos) / chunk_videos))
    return [train.subset(split_fold(train.corpus, k, n_chunks)[1]) for k in range(n_chunks)]


@dataclass
class Choice:
    """What the choice was made on, and what the final prior is fitted on."""

    fitted_on: str  # the report's fitted_on
    splits: list[Split]  # the final prior is fitted on these
    folds: list[dict]  # one row per (fold, setting)
    fold_fits: list[list[Split]]  # per fold model: what its fold's prior was fitted on
    own_bias: list[dict]  # own-train only: each model's bias on its own training chunks


def choice_folds(config: PositionBiasConfig, base, model_dir: Path, rate: float | None
                 ) -> Choice:
    """The folds of the choice (``base``: the model given, from ``model_dir``, without a prior;
    ``rate``: its feature rate)."""
    strengths = config.strengths
    if not config.fold_models:
        train = embed_split(base, config.data, "train", rate)
        return Choice(TRAIN, [train], cross_validate(train, strengths), [], [])
    pairs = fold_splits(config)
    held = [measured for measured, _ in pairs]
    if config.fit_on == FIT_HELD_OUT:
        fold_fits = [held[:k] + held[k + 1:] for k in range(len(held))]
        return Choice(HELD_OUT, held, held_out_rows(held, fold_fits, strengths), fold_fits, [])
    size = round(float(np.mean([len(h.videos) for h in held])))
    own = own_train_chunks(base, config.data, rate, size)
    names = [*map(str, config.fold_models), str(model_dir)]
    fold_fits = [chunks for _, chunks in pairs]
    bias = [own_bias(name, chunks) for name, chunks in zip(names, [*fold_fits, own], strict=True)]
    return Choice(OWN_TRAIN, own, held_out_rows(held, fold_fits, strengths), fold_fits, bias)


def own_bias(model: str, chunks: list[Split]) -> dict:
    """A model's top-1 start-at-0 share without a prior on its own training chunks (mean over
    chunks, percent), beside the ground truth's."""
    return {"model": model,
            "top1_start0": float(np.mean([bias_of(c, search(c, None, 10))["top1_start0"]
                                          for c in chunks])),
            "truth_start0": float(np.mean([truth_bias(c)["truth_start0"] for c in chunks]))}


def fold_means(rows: list[dict]) -> list[dict]:
    """The mean over folds of every number, per setting."""
    means = []
    for setting in dict.fromkeys(r["setting"] for r in rows):
        mine = [r for r in rows if r["setting"] == setting]
        means.append({"setting": setting, **{key: float(np.mean([r[key] for r in mine]))
                                            for key in mine[0] if key not in ("fold", "setting")}})
    return means


def choose(means: list[dict]) -> tuple[float | str, str]:
    """The module docstring's rule over the fold means: the setting (a strength, or "none"),
    and which branch of the rule decided."""
    near = [m for m in means if abs(m["top1_start0"] - m["truth_start0"]) <= START_SLACK]
    if len(near) > 1:
        best = max(near, key=lambda m: m["R10@0.5"] + m["R10@0.7"])["setting"]
        return best, f"{len(near)} settings within the slack; the best R10@0.5 + R10@0.7"
    if near:
        return near[0]["setting"], "the only setting within the slack"
    closest = min(means, key=lambda m: abs(m["top1_start0"] - m["truth_start0"]))["setting"]
    return closest, "no setting within the slack; the closest"


def run(config: PositionBiasConfig) -> dict:
    """Choose on folds (of train, or held out by fold models), fit on the same predictions,
    measure val; write the report (and the checkpoint)."""
    import torch

    from ..models.fvmr import FVMR
    from ..pretrained import default_model_dir

    model_dir = config.model or default_model_dir("fvmr")
    _, extra = FVMR.read_config(model_dir)
    with torch.inference_mode():
        base = with_cell_prior(FVMR.from_pretrained(model_dir), None)
        check_fold_pairs(config, base.n_proposals)
        progress("embedding the sentences and videos")
        val = embed_split(base, config.data, "val", extra.get("feature_rate"))
        choice = choice_folds(config, base, model_dir, extra.get("feature_rate"))
    fitted_on, splits, folds = choice.fitted_on, choice.splits, choice.folds
    means = fold_means(folds)
    setting, decided_by = choose(means)
    strength = 0.0 if setting == "none" else setting
    prior = fit(splits, strength) if strength else None
    report = {"config": {**vars(config), "command": config.command()}, "model": str(model_dir),
              "rule": PriorConfig(strength=strength).to_dict(), "folds": folds,
              "fold_means": means, "chosen_strength": setting, "decided_by": decided_by,
              "fitted_on": fitted_on, "prior": None if prior is None else prior.tolist(),
              "own_train_bias": choice.own_bias,
              "n_folds": len({r["fold"] for r in folds}),
              "val_size": {"sentences": len(val.queries), "videos": len(val.videos)},
              "causes": causes(val, base),
              "val": {"truth": truth_bias(val), "before": measure(val, None),
                      "after": measure(val, prior)},
              "machine": machine_info()}
    write_report(config.out, "position_bias", report, markdown(report))
    record = prior_record(fitted_on, strength, report["rule"],
                          str(config.out / "position_bias.json"))
    with torch.inference_mode():
        if config.write_model:
            with_cell_prior(base, prior).save_pretrained(config.write_model,
                                                         extra={**extra, "cell_prior": record})
        if config.write_fold_models:
            write_fold_models(config, choice.fold_fits, strength, record)
    return report


def prior_record(fitted_on: str, strength: float, rule: dict, report: str) -> dict:
    """What a checkpoint stores of its per-cell prior: what it was fitted on, its strength, the
    rule and the report."""
    return {"fitted_on": fitted_on, "strength": strength, "rule": rule, "report": report}


def write_fold_models(config: PositionBiasConfig, fold_fits: list[list[Split]], strength: float,
                      record: dict) -> None:
    """Each fold model with the prior its fold was measured with at ``strength`` (none at 0),
    as ``config.write_fold_models``/fold-K (what ``cascade-cv --search`` takes)."""
    from ..models.fvmr import FVMR

    for k, (model_dir, fits) in enumerate(zip(config.fold_models, fold_fits, strict=True)):
        extra = FVMR.read_config(model_dir)[1]
        model = with_cell_prior(FVMR.from_pretrained(model_dir),
                                fit(fits, strength) if strength else None)
        model.save_pretrained(Path(config.write_fold_models) / f"fold-{k}",
                              extra={**extra, "cell_prior": record})
