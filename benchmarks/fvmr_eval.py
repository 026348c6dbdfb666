"""FVMR accuracy report: single-video metrics with prior controls, and corpus search metrics.

For every model given as ``NAME=CHECKPOINT_DIR`` (and the prior baseline):

* single-video R@{1,5}, IoU={0.3,0.5,0.7} and mIoU on ``--split``, with the real pairing and the
  two controls (``shuffled-video``, ``shuffled-query``); the drop from the real figure is what the
  model takes from the video and from the text;
* corpus search (TVR convention, R@{1,10,100}, IoU={0.5,0.7}) over the split's videos: a flat index
  is built in a temporary directory and every query is answered by batched search.

    python -m moment_search.benchmarks.fvmr_eval --data ../shared/data/charades-sta-clip \\
        --model fvmr=moment_search/pretrained/fvmr-charades-clip --out reports/fvmr
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ..data.corpus_dir import open_corpus
from ..errors import InputError
from ..eval.runner import evaluate_model
from ..indexer.build import BuildConfig, build_index
from ..metrics import corpus_metrics
from ..search.batch import search_file
from ..search.localize import CORPUS_PER_VIDEO
from ..search.searcher import Searcher
from .report import machine_info, machine_markdown, markdown_table, write_report

SINGLE_COLUMNS = ["R1@0.3", "R1@0.5", "R1@0.7", "R5@0.3", "R5@0.5", "R5@0.7", "mIoU"]
CORPUS_COLUMNS = ["R1@0.5", "R10@0.5", "R100@0.5", "R1@0.7", "R10@0.7", "R100@0.7"]
CONTROLS = (None, "shuffled-video", "shuffled-query")


@dataclass
class AccuracyConfig:
    """One run; ``moment-search benchmark fvmr-accuracy`` and :func:`main` build it."""

    data: Path  # corpus directory (features + annotations)
    out: Path  # report directory
    models: dict[str, Path] = field(default_factory=dict)  # name -> FVMR checkpoint
    split: str = "val"  # the split evaluated
    rerankers: dict[str, Path] = field(default_factory=dict)  # on top of the first model
    rerank_videos: tuple[int, ...] = (10,)  # M values: videos each reranker rescores
    # fused = w * p + (1 - w) * logit(r) (rerank.fuse); None: each reranker checkpoint's own w
    rerank_weight: float | None = None


def single_video_rows(name: str, model_dir: Path | None, data: Path, split: str) -> list[dict]:
    """One row per pairing (real, shuffled-video, shuffled-query) of one model."""
    localizer = "prior" if model_dir is None else "fvmr"
    rows = []
    for control in CONTROLS if model_dir is not None else (None,):
        result = evaluate_model(localizer, data, split, model_dir, control=control)
        rows.append({"model": name, "pairing": control or "real", **result.metrics,
                     **result.timings})
    return rows


@contextmanager
def split_searcher(data: Path, split: str, model_dir: Path) -> Iterator[Searcher]:
    """A searcher over a flat index of the split's videos, built in a temporary directory."""
    with tempfile.TemporaryDirectory() as tmp:
        index_dir = Path(tmp) / "index"
        build_index(data, index_dir, model_dir,
                    BuildConfig(split=split, index_kind="flat", device="cpu"))
        yield Searcher.open(index_dir, device="cpu")


def corpus_row(searcher: Searcher, data: Path, split: str, queries, label: str,
               options: dict) -> dict:
    """One setting's corpus metrics: every sentence of the split answered one at a time (the
    top 100 moments, or every proposal of a smaller index) with the search ``options``."""
    k = min(100, searcher.n_proposals)
    begin = time.perf_counter()
    results = search_file(searcher, data / f"{split}.jsonl", k=k, batch_size=1, **options)
    ms = 1000 * (time.perf_counter() - begin) / max(1, len(results))
    predictions = {qid: [(m.video_id, m.start_s, m.end_s, m.score) for m in moments]
                   for qid, moments in results.items()}
    videos = len(searcher.table.video_names)
    return {"model": label, "videos": videos, "ms_per_query": ms,
            **corpus_metrics(predictions, queries)}


def corpus_rows(name: str, model_dir: Path, data: Path, split: str,
                rerankers: dict[str, Path] | None = None, rerank_videos: tuple[int, ...] = (10,),
                rerank_weights: tuple[float | None, ...] = (None,)) -> list[dict]:
    """Corpus search metrics over the split's videos (index built on the fly): the fast path
    alone, then the fast path + each reranker on its top M videos for each M and each w
    (None: the reranker checkpoint's own w); each cascade row says its ``rerank_weight``."""
    corpus, _ = open_corpus(data, split=split)
    rows = []
    with split_searcher(data, split, model_dir) as searcher:
        setups = [(name, {})]
        for rerank, rerank_dir in (rerankers or {}).items():
            searcher.add_reranker(rerank, rerank_dir)
            for weight in rerank_weights:
                w = searcher.rerankers[rerank].fusion_weight if weight is None else weight
                setups += [(f"{name} + {rerank} (M={m}, w={w})",
                            {"rerank": rerank, "rerank_videos": m, "rerank_weight": w})
                           for m in rerank_videos]
        for label, options in setups:
            row = corpus_row(searcher, data, split, corpus.queries, label, options)
            if options:
                row["rerank_weight"] = options["rerank_weight"]
            rows.append(row)
    return rows


def run(config: AccuracyConfig) -> dict:
    """Evaluate every model (rerankers on top of the first); write ``fvmr_eval.json`` and
    ``fvmr_eval.md`` into ``config.out``."""
    data, split = Path(config.data), config.split
    single = single_video_rows("prior", None, data, split)
    corpus = []
    for i, (name, model_dir) in enumerate(config.models.items()):
        single += single_video_rows(name, model_dir, data, split)
        corpus += corpus_rows(name, model_dir, data, split,
                              config.rerankers if i == 0 else None, config.rerank_videos,
                              (config.rerank_weight,))
    report = {"data": str(data), "split": split,
              "models": {k: str(v) for k, v in config.models.items()},
              "per_video": CORPUS_PER_VIDEO,  # the searcher's default cap the corpus rows had
              "single_video": single, "corpus": corpus, "machine": machine_info()}
    write_report(config.out, "fvmr_eval", report, markdown(report))
    return report


def markdown(report: dict) -> str:
    """The report's two tables."""
    return "\n\n".join([
        f"Single-video, {report['split']} split (percent):",
        markdown_table(report["single_video"], ["model", "pairing", *SINGLE_COLUMNS]),
        f"Corpus search over the {report['split']} videos (percent; a hit needs the right video):",
        markdown_table(report["corpus"], ["model", "videos", *CORPUS_COLUMNS, "ms_per_query"]),
        machine_markdown(report["machine"]),
    ])


def parse_models(values: list[str]) -> dict[str, Path]:
    """``NAME=DIR`` pairs; ValueError naming a malformed one."""
    models = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise InputError(f"--model expects NAME=CHECKPOINT_DIR, got {value!r}")
        models[name] = Path(path)
    return models


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (see the module docstring); an option not given keeps the
    default of :class:`AccuracyConfig`."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     argument_default=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--model", dest="models", action="append", help="NAME=CHECKPOINT_DIR")
    parser.add_argument("--split")
    parser.add_argument("--rerank", dest="rerankers", action="append",
                        help="NAME=CHECKPOINT_DIR of a reranker applied on top of the first model")
    parser.add_argument("--rerank-videos", type=int_tuple, help="comma-separated M values")
    parser.add_argument("--rerank-weight", type=float,
                        help="fused = w * fast-path score + (1 - w) * logit(reranker's "
                        "probability) (default: the reranker checkpoint's own w)")
    options = vars(parser.parse_args(argv))
    for name in ("models", "rerankers"):
        if name in options:
            options[name] = parse_models(options[name])
    print(markdown(run(AccuracyConfig(**options))))
    return 0


def int_tuple(text: str) -> tuple[int, ...]:
    """``"1,2"`` -> ``(1, 2)``."""
    return tuple(int(item) for item in text.split(","))


if __name__ == "__main__":
    raise SystemExit(main())
