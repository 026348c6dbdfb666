"""Position and length bias of corpus search, and the cell prior that removes it (JSON + Markdown).

1. Choose (train only). By default: video-disjoint 5-fold cross-validation on the train split
   (the folds of ``train.folds``); for each fold, the prior is fitted on the sentences and videos
   of the other four folds and measured on the held-out fold's sentences searched over its
   videos, for each ``strength`` and without a prior. The rule, fixed before any val figure of a
   prior was looked at (the bias itself had been measured on val): among the settings (no prior,
   or a strength) whose mean top-1 start-at-0 share is within 5 points of the folds' ground
   truth, the one with the best mean R10@0.5 + R10@0.7; if none is, the closest. The report says
   which branch decided. The fitting steps and rate are ``PriorConfig``'s fixed defaults.
2. Fit the chosen prior on all train sentences over all train videos.
3. Report val once: the val sentences searched over the val videos, without and with it.

The search model was trained on the train sentences, so its train folds are easier than val
(fold R10@0.5 ~75 vs ~20 on val), and a prior fitted on them over-corrects on new sentences.
Hence the second way, ``--fold-model`` with ``--fold-data``: search checkpoints trained without
a fold (``train fvmr --fold K/N`` and ``train video-text`` on the ``data fold`` corpus, composed
as the shipped one is) each score their own held-out fold over its videos, sentences they never
trained on, as val's are (their FVMR teachers did see them: see the FVMR recipe). Step 1 then
cross-fits over those folds (the prior fitted on the other folds' predictions, measured on each)
and step 2 fits the chosen prior on every fold's predictions, for the model trained on all of
train (``--model``).

Search here is the searcher's own rule over exact scores (``best_across_videos``: the top
``default_candidates(k)`` proposals, NMS 0.5 within a video, top k), metrics are
``metrics.corpus_metrics``. Sentences are encoded by the PyTorch model (fp32), so a figure can
differ by a query or two from an index answering with its 8-bit ONNX encoder.

    moment-search benchmark position-bias --data ../shared/data/charades-sta-clip \\
        --model runs/search --fold-model runs/search-f0 --fold-data runs/folds/f0 \\
        --fold-model runs/search-f1 --fold-data runs/folds/f1 \\
        --out reports/position_bias --write-model runs/search-prior
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from ..data.corpus import Corpus
from ..data.corpus_dir import open_corpus
from ..errors import InputError
from ..geometry.proposals import num_proposals
from ..geometry.spans import temporal_iou_diag
from ..metrics import corpus_metrics
from ..search.localize import best_across_videos
from ..search.searcher import default_candidates
from ..train.cell_prior import (
    PriorConfig,
    best_cell_scores,
    fit_cell_prior,
    truth_cells,
    with_cell_prior,
)
from ..train.folds import check_fold_checkpoint, check_fold_corpora, split_fold
from .position_bias_report import HELD_OUT, METRICS, START_SLACK, TRAIN, markdown
from .report import machine_info, progress, write_report

FOLDS = 5


@dataclass
class PositionBiasConfig:
    """One run; ``moment-search benchmark position-bias`` builds it from its options."""

    out: Path  # report directory
    data: Path = Path("../shared/data/charades-sta-clip")  # the charades-sta-clip corpus
    model: Path | None = None  # FVMR search checkpoint (None: the shipped one); any prior dropped
    strengths: tuple[float, ...] = (0.5, 1.0)  # candidate strengths of the prior
    write_model: Path | None = None  # write the checkpoint with the chosen prior here
    fold_models: tuple[Path, ...] = ()  # search checkpoints, each trained without one fold
    fold_data: tuple[Path, ...] = ()  # the fold corpora they hold out, in the same order

    def __post_init__(self) -> None:
        if not self.strengths or any(not 0 < s < 100 for s in self.strengths):
            raise InputError(f"strengths must be one or more numbers in (0, 100), got "
                             f"{self.strengths}", parameter="strengths")
        if len(self.fold_models) != len(self.fold_data) or len(self.fold_models) == 1:
            raise InputError(f"fold models and fold corpora go in pairs, two or more: got "
                             f"{len(self.fold_models)} models and {len(self.fold_data)} corpora",
                             parameter="fold_models")

    def command(self) -> str:
        """The ``moment-search benchmark position-bias`` command line of this run."""
        options = ["--data", self.data, "--out", self.out,
                   "--strengths", ",".join(map(str, self.strengths))]
        options += ["--model", self.model] if self.model else []
        options += ["--write-model", self.write_model] if self.write_model else []
        for model, data in zip(self.fold_models, self.fold_data, strict=True):
            options += ["--fold-model", model, "--fold-data", data]
        return "moment-search benchmark position-bias " + " ".join(map(str, options))


@dataclass
class Split:
    """A split's search vectors and ground truth, videos in sorted order."""

    corpus: Corpus
    videos: list[str]
    moments: np.ndarray  # (V, P, D)
    spans: np.ndarray  # (V, P, 2) seconds
    queries: np.ndarray  # (Q, D)
    own: np.ndarray  # (Q,) each query's video number
    windows: np.ndarray  # (Q, 2) ground truth, seconds

    @cached_property
    def best_cells(self) -> np.ndarray:
        """(Q, P) each sentence's best score per cell over the split's videos (computed once:
        every prior fitted on this split reads it)."""
        return best_cell_scores(self.queries, self.moments)

    @cached_property
    def true_cells(self) -> np.ndarray:
        """(Q,) each sentence's ground-truth cell in its own video."""
        return truth_cells(self.spans[self.own], self.windows)

    def subset(self, corpus: Corpus) -> Split:
        """The same vectors for the videos and sentences of ``corpus`` (a part of this one)."""
        keep = [self.videos.index(v) for v in sorted(corpus.videos)]
        number = {old: new for new, old in enumerate(keep)}
        rows = [i for i, v in enumerate(self.own) if v in number]
        return Split(corpus, sorted(corpus.videos), self.moments[keep], self.spans[keep],
                     self.queries[rows], np.array([number[v] for v in self.own[rows]]),
                     self.windows[rows])


def embed_split(model, data: Path, split: str, feature_rate: float | None) -> Split:
    """Every proposal and sentence of a split through the search model (features read at the
    model's rate, as the indexer reads them)."""
    from ..embed.encoders import MomentEncoder, QueryEncoder
    from ..text.tokens import TokenEncoder

    corpus, store = open_corpus(data, split, feature_rate)
    videos = sorted(corpus.videos)
    moments = MomentEncoder(model)
    encoder = QueryEncoder(model, TokenEncoder(device=moments.device))
    queries = list(corpus.queries)
    texts = [q.text for q in queries]
    return Split(
        corpus, videos,
        np.stack([moments.embed_video(store.load(v), corpus.video(v)) for v in videos]),
        np.stack([moments.spans(corpus.video(v).duration) for v in videos]),
        np.concatenate([encoder.encode(texts[i:i + 256]) for i in range(0, len(texts), 256)]),
        np.array([videos.index(q.video_id) for q in queries]),
        np.array([q.windows[0] for q in queries], dtype=np.float64))


def fit(splits: list[Split], strength: float = 1.0) -> np.ndarray:
    """The prior fitted on each split's own sentences over its own videos, all splits together
    (``strength`` x the unit fit: the strength only scales it)."""
    best = np.concatenate([s.best_cells for s in splits])
    truth = np.concatenate([s.true_cells for s in splits])
    return fit_cell_prior(best, truth, PriorConfig(strength=strength))


def search(split: Split, prior: np.ndarray | None, k: int = 100) -> list[np.ndarray]:
    """Each sentence's top-k proposal numbers over the split's videos (the searcher's rule)."""
    n_videos, n_cells, width = split.moments.shape
    flat = split.moments.reshape(-1, width)
    spans = split.spans.reshape(-1, 2)
    videos = np.repeat(np.arange(n_videos), n_cells)
    offset = np.tile(prior, n_videos) if prior is not None else 0.0
    wanted = min(default_candidates(k), len(flat) - 1)
    ranked = []
    for query in split.queries:
        scores = flat @ query + offset
        top = np.argpartition(-scores, wanted)[:wanted]
        top = top[np.argsort(-scores[top], kind="stable")]
        ranked.append(top[best_across_videos(spans[top], scores[top], videos[top], k, k, 0.5)])
    return ranked


def measure(split: Split, prior: np.ndarray | None) -> dict[str, float]:
    """Corpus R@k, the bias of the top-1 and top-10 moments, single-video R1 of the fast path."""
    ranked = search(split, prior)
    n_cells = split.moments.shape[1]
    spans = split.spans.reshape(-1, 2)
    predictions = {q.qid: [(split.videos[i // n_cells], *spans[i], 0.0) for i in top]
                   for q, top in zip(split.corpus.queries, ranked, strict=True)}
    metrics = corpus_metrics(predictions, list(split.corpus.queries), (1, 10, 100))
    row = {m: metrics[m] for m in METRICS}
    row.update(bias_of(split, ranked))
    row.update(single_video(split, prior))
    return row


def bias_of(split: Split, ranked: list[np.ndarray]) -> dict[str, float]:
    """Start-at-0 shares (percent) and length (s) of the top-1 and top-10 moments."""
    n_cells = split.moments.shape[1]
    spans = split.spans.reshape(-1, 2)
    first = np.array([spans[top[0]] for top in ranked])
    tens = [top[:10] for top in ranked]
    return {"top1_start0": 100 * float(np.mean(first[:, 0] == 0)),
            "top1_length": float(np.mean(first[:, 1] - first[:, 0])),
            "top10_start0": 100 * float(np.mean([np.mean(spans[t, 0] == 0) for t in tens])),
            "top10_most_from_one_video": float(np.mean(
                [np.bincount(t // n_cells).max() for t in tens]))}


def single_video(split: Split, prior: np.ndarray | None) -> dict[str, float]:
    """R1@0.5 / R1@0.7 of the fast path's best proposal in each sentence's own video."""
    scores = np.einsum("qpd,qd->qp", split.moments[split.own], split.queries)
    if prior is not None:
        scores = scores + prior[None]
    best = split.spans[split.own, scores.argmax(1)]
    iou = temporal_iou_diag(best, split.windows)
    return {"single_R1@0.5": 100 * float(np.mean(iou >= 0.5)),
            "single_R1@0.7": 100 * float(np.mean(iou >= 0.7))}


def causes(split: Split, model) -> list[dict]:
    """Which term of the search vectors carries the bias: the split searched with each term of
    the one inner product alone, and with the hub correction or NMS left out (no prior)."""
    space, width = model.config.space_dim, model._unpadded_dim
    terms_end = width - 1 if model.constant_column else width  # where the constant column starts
    terms = {"all terms": slice(0, width), "FVMR term only": slice(0, space),
             "video-text term only": slice(space, terms_end),
             "without the constant column (hub)": slice(0, terms_end)}
    rows = []
    for name, kept in terms.items():
        if kept.stop <= kept.start or (name != "all terms" and kept == slice(0, width)):
            continue  # a term the model does not have
        queries = np.zeros_like(split.queries)
        queries[:, kept] = split.queries[:, kept]
        ranked = search(dataclasses.replace(split, queries=queries), None)
        rows.append({"search vectors": name, **bias_of(split, ranked)})
    return rows


def truth_bias(split: Split) -> dict[str, float]:
    """The ground truth's start-at-0 share and mean length."""
    return {"truth_start0": 100 * float(np.mean(split.windows[:, 0] == 0)),
            "truth_length": float(np.mean(split.windows[:, 1] - split.windows[:, 0]))}


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


def cross_fit(held_out: list[Split], strengths: tuple[float, ...]) -> list[dict]:
    """One row per (fold, setting): each held-out split measured with the prior fitted on the
    other held-out splits."""
    rows = []
    for fold, measured in enumerate(held_out):
        progress(f"held-out fold {fold + 1}/{len(held_out)}")
        rows += setting_rows(fold, held_out[:fold] + held_out[fold + 1:], measured, strengths)
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


def held_out_splits(config: PositionBiasConfig) -> list[Split]:
    """Each fold model's held-out fold (its corpus's val split) through that model, any prior
    it carries dropped (pairs checked by :func:`check_fold_pairs`)."""
    from ..models.fvmr import FVMR

    splits = []
    for model_dir, data in zip(config.fold_models, config.fold_data, strict=True):
        _, extra = FVMR.read_config(model_dir)
        model = with_cell_prior(FVMR.from_pretrained(model_dir), None)
        splits.append(embed_split(model, data, "val", extra.get("feature_rate")))
    return splits


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
        if config.fold_models:
            fitted_on, splits = HELD_OUT, held_out_splits(config)
            folds = cross_fit(splits, config.strengths)
        else:
            fitted_on = TRAIN
            splits = [embed_split(base, config.data, "train", extra.get("feature_rate"))]
            folds = cross_validate(splits[0], config.strengths)
    means = fold_means(folds)
    setting, decided_by = choose(means)
    strength = 0.0 if setting == "none" else setting
    prior = fit(splits, strength) if strength else None
    report = {"config": {**vars(config), "command": config.command()}, "model": str(model_dir),
              "rule": PriorConfig(strength=strength).to_dict(), "folds": folds,
              "fold_means": means, "chosen_strength": setting, "decided_by": decided_by,
              "fitted_on": fitted_on, "prior": None if prior is None else prior.tolist(),
              "n_folds": len({r["fold"] for r in folds}),
              "val_size": {"sentences": len(val.queries), "videos": len(val.videos)},
              "causes": causes(val, base),
              "val": {"truth": truth_bias(val), "before": measure(val, None),
                      "after": measure(val, prior)},
              "machine": machine_info()}
    write_report(config.out, "position_bias", report, markdown(report))
    if config.write_model:
        record = {"fitted_on": fitted_on, "strength": strength, "rule": report["rule"],
                  "report": str(config.out / "position_bias.json")}
        with torch.inference_mode():
            with_cell_prior(base, prior).save_pretrained(config.write_model,
                                                         extra={**extra, "cell_prior": record})
    return report
