"""The default per-video cap of a corpus search, chosen by cross-validation on train folds.

A corpus search keeps at most ``localize.CORPUS_PER_VIDEO`` moments of one video (then, when a
small corpus leaves fewer than k, the moments held back), so that a few videos do not fill the
top 10. This benchmark chooses that number. For each fold corpus (``moment-search data fold``:
the fold is its val split) a search checkpoint trained without the fold (with its prior:
``benchmark position-bias --write-fold-models``) answers the fold's sentences over the fold's
videos with the real indexer and ``Searcher``, once per candidate cap, the fast path alone (a cap
given to the searcher is a hard one: the fill never matters to R@10 here). Each reranker given
(its checkpoint trained without the fold, at the fusion weight its shipped checkpoint stores, on
the top ``SearchOptions.rerank_videos`` videos) is reported beside each cap; it does not choose.

The rule, fixed before the runs: the cap with the best mean over folds of R10@0.5 + R10@0.7 of
the fast path (ties: the larger cap). "none" is no cap. The val split is not read: every corpus
must be a different fold of one cut of a train split, and every checkpoint is checked against
its fold before any is evaluated. The chosen cap is what ``CORPUS_PER_VIDEO`` holds (a test
reads the shipped report).

    moment-search benchmark per-video-cv --fold-data runs/folds/f0 --fold-data runs/folds/f1 \\
        --search runs/fold-priors/fold-0 --search runs/fold-priors/fold-1 \\
        --rerank drn=runs/drn-f0/best,runs/drn-f1/best --out reports/per_video_cv
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..data.corpus_dir import open_corpus
from ..errors import InputError
from ..registry import model_class, reranker_class, shipped_checkpoint
from ..search.searcher import SearchOptions
from ..train.folds import check_fold_checkpoint, check_fold_corpora
from ..train.loop import selection_score
from .cascade_cv import mean_row
from .corpus_cv import CorpusCVConfig
from .fvmr_eval import CORPUS_COLUMNS, corpus_row, split_searcher
from .report import machine_info, markdown_table, progress, write_report

FAST_PATH = "fast path"


@dataclass
class PerVideoCVConfig:
    """One run; ``moment-search benchmark per-video-cv`` builds it from its options."""

    out: Path  # report directory
    fold_data: tuple[Path, ...]  # fold corpus directories
    search: tuple[Path, ...]  # a search checkpoint trained without each fold
    caps: tuple[int | None, ...] = (None, 1, 2, 3, 5)  # candidate caps (None: no cap)
    # reranker name -> its checkpoint trained without each fold (reported, not chosen on)
    rerankers: dict[str, tuple[Path, ...]] = field(default_factory=dict)
    metric: str = CorpusCVConfig.metric  # what the folds choose by

    def __post_init__(self) -> None:
        n = len(self.fold_data)
        if n < 2 or len(self.search) != n:
            raise InputError(f"give one --search per --fold-data, two folds or more; got {n} "
                             f"folds and {len(self.search)} search checkpoints",
                             parameter="fold_data")
        if not self.caps or any(c is not None and (isinstance(c, bool) or c < 1)
                                for c in self.caps):
            raise InputError(f"caps must be positive integers or none, got {self.caps}",
                             parameter="caps")
        for name, paths in self.rerankers.items():
            if len(paths) != n:
                raise InputError(f"--rerank {name}: give one checkpoint per fold ({n}), got "
                                 f"{len(paths)}", parameter="rerank")


def check_inputs(config: PerVideoCVConfig) -> None:
    """Everything that can be checked before any index is built (see ``cascade_cv``)."""
    check_fold_corpora(config.fold_data)
    for i, (data, search) in enumerate(zip(config.fold_data, config.search, strict=True)):
        check_fold_checkpoint(data, search)
        for name, paths in config.rerankers.items():
            reranker_class(name)
            model_class(name).read_config(paths[i])
            check_fold_checkpoint(data, paths[i])


def cap_label(cap: int | None) -> str:
    """The cap's name in the tables."""
    return "none" if cap is None else str(cap)


def cap_options(cap: int | None, k: int) -> dict:
    """The search options of one cap: a hard cap; "none" as a cap of k, i.e. no cap at all
    (``per_video=None`` would be the searcher's default cap)."""
    return {"per_video": k if cap is None else cap}


def fold_rows(config: PerVideoCVConfig, i: int, weights: dict[str, float]) -> list[dict]:
    """One fold's rows: for each cap, the fast path, then each reranker's cascade."""
    data = Path(config.fold_data[i])
    corpus, _ = open_corpus(data, split="val")
    rows = []
    with split_searcher(data, "val", config.search[i]) as searcher:
        k = min(100, searcher.n_proposals)
        for name, paths in config.rerankers.items():
            searcher.add_reranker(name, paths[i])
        for cap in config.caps:
            options = cap_options(cap, k)
            setups = [(FAST_PATH, options)] + [
                (name, {**options, "rerank": name, "rerank_weight": weights[name]})
                for name in config.rerankers]
            for label, opts in setups:
                row = corpus_row(searcher, data, "val", corpus.queries, label, opts)
                rows.append({"setting": f"{label}, cap {cap_label(cap)}", "cap": cap_label(cap),
                             "path": label, "score": selection_score(row, config.metric), **row})
    return rows


def mean_rows(per_fold: list[list[dict]]) -> list[dict]:
    """Each (cap, path)'s mean over folds, with each fold's score beside it."""
    return [mean_row(list(same), ("setting", "cap", "path"))
            for same in zip(*per_fold, strict=True)]


def choose(rows: list[dict], caps: tuple[int | None, ...]) -> int | None:
    """The rule: the best mean fast-path score; ties to the larger cap (none above all)."""
    fast = {r["cap"]: r["score"] for r in rows if r["path"] == FAST_PATH}
    order = sorted(caps, key=lambda c: float("inf") if c is None else c, reverse=True)
    return max(order, key=lambda c: fast[cap_label(c)])


def run(config: PerVideoCVConfig) -> dict:
    """Every fold's rows, the means, the choice; writes ``per_video_cv.json``/``.md``."""
    check_inputs(config)
    weights = {name: _shipped_weight(name) for name in config.rerankers}
    per_fold = []
    for i in range(len(config.fold_data)):
        progress(f"fold {i + 1}/{len(config.fold_data)}")
        per_fold.append(fold_rows(config, i, weights))
    rows = mean_rows(per_fold)
    chosen = choose(rows, config.caps)
    report = {"metric": config.metric, "caps": [cap_label(c) for c in config.caps],
              "fold_data": [str(p) for p in config.fold_data],
              "search": [str(p) for p in config.search],
              "rerankers": {n: [str(p) for p in ps] for n, ps in config.rerankers.items()},
              "fusion_weights": weights, "rerank_videos": SearchOptions.rerank_videos,
              "folds": per_fold, "rows": rows, "chosen_cap": chosen,
              "machine": machine_info()}
    write_report(config.out, "per_video_cv", report, markdown(report))
    return report


def _shipped_weight(name: str) -> float:
    """The fusion weight the shipped checkpoint of reranker ``name`` stores."""
    from ..search.rerank import stored_fusion_weight

    _, extra = model_class(name).read_config(shipped_checkpoint(name))
    return stored_fusion_weight(extra)


def markdown(report: dict) -> str:
    """The mean table (each fold's score beside it) and the choice."""
    folds = [f"fold {i} score" for i in range(len(report["fold_data"]))]
    weights = ", ".join(f"{n} w = {w:g}" for n, w in report["fusion_weights"].items())
    return "\n".join([
        "# The per-video cap of a corpus search, chosen on train folds",
        "",
        f"Corpus search on {len(report['fold_data'])} video-disjoint folds of train (percent, "
        f"mean over folds): each fold's sentences over its own videos, the search checkpoint "
        f"trained without the fold, at most `cap` moments of one video. Cascades (reported, "
        f"not chosen on) rerank the top {report['rerank_videos']} videos with the reranker "
        f"trained without the fold, at the shipped fusion weight"
        f"{' (' + weights + ')' if weights else ''}. The rule, fixed before the runs: the cap "
        f"with the best mean {report['metric']} (score) of the fast path; ties to the larger.",
        "",
        markdown_table(report["rows"], ["cap", "path", "score", *folds, *CORPUS_COLUMNS]),
        "",
        f"Chosen: **{cap_label(report['chosen_cap'])}**.",
        "",
    ])
