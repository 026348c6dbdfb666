"""Corpus search report: video retrieval, corpus moment retrieval and hubness, per corpus setting.

For one FVMR checkpoint and each (beta, gamma) of a grid, a search checkpoint is composed
(``train.compose``: FVMR + beta x the video-level model - gamma x the hub correction), a flat
index of the split's videos is built with the real indexer, and every sentence of the split is
answered by the real ``Searcher``:

* corpus moment retrieval (TVR convention): R@{1,5,10,100}, IoU {0.5, 0.7}, from the searches;
* video retrieval R@{1,10,100} and median rank: videos ranked by their best fused proposal score
  (exact, over every stored vector);
* hubness of the video top 10: N10(v) = the number of sentences whose top 10 holds v; its
  maximum, skewness, the share of all top-10 slots taken by the 5 most frequent videos, and the
  videos never in any top 10;
* the random-video baseline, exactly: a random order of the V videos puts the right one in the
  top k with probability k / V;
* with ``--positives FILE`` (MVMR's positive-moment pools, ``eval.mvmr``): multi-positive corpus
  R@{1,10,100}, IoU {0.5, 0.7} beside the single-ground-truth figures (``eval.multi_positive``),
  and how many positives per sentence remain inside the indexed videos.

``--model DIR`` evaluates one finished search checkpoint as it is instead of composing a grid from
``--fvmr``; with neither, the shipped search checkpoint (``fvmr-charades-clip``) is evaluated.

    moment-search benchmark corpus-eval --data ../shared/data/charades-sta-clip \\
        --fvmr runs/fvmr/best --video-text runs/video-text/best --video-weights 0,1 \\
        --hub-weights 0,0.5 --out reports/corpus_eval
    moment-search benchmark corpus-eval --data ../shared/data/charades-sta-clip \\
        --positives charades_test_mvmr.json --out reports/mvmr
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.corpus import QueryId
from ..data.corpus_dir import open_corpus
from ..errors import InputError
from ..eval.multi_positive import multi_positive_metrics, positives_summary, query_positives
from ..eval.mvmr import PositiveMoment, match_queries, read_mvmr
from ..indexer.build import BuildConfig, build_index
from ..indexer.store import read_embeddings
from ..metrics import corpus_metrics, video_retrieval_metrics
from ..pretrained import default_model_dir
from ..search.searcher import Searcher
from ..train.compose import compose
from .report import machine_info, machine_markdown, markdown_table, write_report

CORPUS_KS = (1, 5, 10, 100)
VIDEO_KS = (1, 10, 100)
MULTI_KS = (1, 10, 100)
Positives = dict[QueryId, tuple[PositiveMoment, ...]]


@dataclass
class CorpusEvalConfig:
    """One run; ``moment-search benchmark corpus-eval`` builds it from its options."""

    data: Path  # corpus directory (features + annotations)
    out: Path  # report directory
    split: str = "val"  # the split whose videos and sentences are searched
    fvmr: Path | None = None  # FVMR checkpoint composed over the (beta, gamma) grid
    model: Path | None = None  # a search checkpoint as it is (neither: the shipped one)
    video_text: Path | None = None  # video-text checkpoint (for beta > 0)
    video_weights: tuple[float, ...] = (0.0,)  # beta values of the grid
    hub_weights: tuple[float, ...] = (0.0,)  # gamma values of the grid
    hub_bank: int = 500  # training sentences of the hub bank
    positives: Path | None = None  # MVMR positives file: adds multi-positive R@k

    def check(self) -> None:
        """Raises InputError: both checkpoints, or grid options without ``fvmr``."""
        if self.fvmr is not None and self.model is not None:
            raise InputError("give --fvmr (a grid) or --model (a checkpoint as it is), not both")
        grid = (self.video_text is not None, self.video_weights != CorpusEvalConfig.video_weights,
                self.hub_weights != CorpusEvalConfig.hub_weights)
        if self.fvmr is None and any(grid):
            raise InputError("--video-text, --video-weights and --hub-weights compose a grid "
                             "from --fvmr")


def hubness(scores: np.ndarray, k: int = 10) -> dict[str, float]:
    """Hubness of the top-k video lists of (Q, V) scores (see the module docstring)."""
    top = np.argsort(-scores, axis=1)[:, :k]  # (Q, k)
    counts = np.bincount(top.ravel(), minlength=scores.shape[1])  # N_k(v)
    return {f"N{k}_max": float(counts.max()), f"N{k}_skew": skewness(counts),
            "top5_share": float(100 * np.sort(counts)[-5:].sum() / top.size),
            "never_in_top": float((counts == 0).sum())}


def skewness(values: np.ndarray) -> float:
    """Sample skewness (the third standardised moment, biased estimator); 0 for constant values."""
    centred = values - values.mean()
    spread = centred.std()
    return float((centred ** 3).mean() / spread ** 3) if spread > 0 else 0.0


def video_scores(searcher: Searcher, texts: list[str], videos: list[str]) -> np.ndarray:
    """(Q, V) best fused proposal score of every video for every sentence (exact)."""
    vectors = np.concatenate([read_embeddings(searcher.index_dir, shard)
                              for shard in sorted(searcher.catalog.embedded_shards())])
    queries = searcher.encoder.encode(texts)  # (Q, D)
    scores = queries @ vectors.T  # (Q, V * P), rows in proposal-id order
    column = np.array([videos.index(v) for v in searcher.table.video_names])
    owner = column[searcher.table.video_index]  # (V * P,) video column of each proposal
    best = np.full((len(texts), len(videos)), -np.inf, dtype=np.float32)
    np.maximum.at(best.T, owner, scores.T)
    return best


def evaluate_setting(data: Path, split: str, model_dir: Path, k: int = 100,
                     positives: Positives | None = None) -> dict:
    """Corpus, video and hubness metrics of one search checkpoint on ``split``; with
    ``positives`` (:func:`read_positives`) also ``multi_R{k}@{m}``, the multi-positive recall."""
    corpus, _ = open_corpus(data, split=split)
    queries = [q for q in corpus.queries if q.windows]
    videos = list(corpus.videos)
    with tempfile.TemporaryDirectory() as tmp:
        index_dir = Path(tmp) / "index"
        build_index(data, index_dir, model_dir, BuildConfig(split=split, index_kind="flat",
                                                            device="cpu", keep_embeddings=True))
        searcher = Searcher.open(index_dir, device="cpu")
        texts = [q.text for q in queries]
        results = []
        for start in range(0, len(texts), 64):
            results += searcher.search_many(texts[start:start + 64], k=min(k, searcher.n_proposals))
        predictions = {q.qid: [(m.video_id, m.start_s, m.end_s, m.score) for m in moments]
                       for q, moments in zip(queries, results, strict=True)}
        scores = video_scores(searcher, texts, videos)
    truth = np.array([videos.index(q.video_id) for q in queries])
    row = corpus_metrics(predictions, queries, ks=CORPUS_KS)
    if positives is not None:
        multi = multi_positive_metrics(predictions, positives, ks=MULTI_KS)
        row.update({f"multi_{key}": value for key, value in multi.items() if key[0] == "R"})
    row.update(video_retrieval_metrics(scores, truth, VIDEO_KS))
    row.update(hubness(scores))
    row["videos"] = float(len(videos))
    return row


def random_video_row(n_videos: int) -> dict:
    """Video retrieval of a random video order: R@k = k / V, exactly."""
    row = {f"video_R@{n}": 100 * min(n, n_videos) / n_videos for n in VIDEO_KS}
    row["video_median_rank"] = (n_videos + 1) / 2
    return {"setting": "random video order", **row}


def read_positives(path: Path, data: Path, split: str) -> tuple[Positives, dict]:
    """The positives of every sentence of ``split`` inside its videos, from an MVMR file.

    Returns:
        ``qid -> positives`` and what the report says about them: the file (path, sha256), how the
        sentences matched (``eval.mvmr``), the positives kept and left outside the corpus, and
        positives per sentence (mean, min, max, percent with only the annotated one).

    Raises:
        PositivesError: a malformed file (file, video and sentence named).
    """
    corpus, _ = open_corpus(data, split=split)
    queries = [q for q in corpus.queries if q.windows]
    matched, counts = match_queries(queries, read_mvmr(path))
    durations = {vid: video.duration for vid, video in corpus.videos.items()}
    positives, kept = query_positives(queries, matched, durations)
    info = {"file": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "sentences": len(queries), "matched_exact": counts.exact,
            "matched_close": counts.close, "unmatched": counts.unmatched, **kept,
            **positives_summary(positives)}
    return positives, info


def checkpoints(fvmr: Path | None, model: Path | None, video_text: Path | None,
                betas: list[float], gammas: list[float], bank: int, data: Path,
                tmp: Path) -> Iterator[tuple[dict, Path]]:
    """(row fields, checkpoint) of each setting: ``model`` as it is, else each (beta, gamma)
    composed from ``fvmr`` in ``tmp``."""
    if model is not None:
        yield {"setting": f"{model.name} (as is)"}, model
        return
    for beta in betas:
        for gamma in gammas:
            model_dir = compose(fvmr, tmp / f"b{beta}-g{gamma}", video_text if beta > 0 else None,
                                beta, gamma, bank if gamma > 0 else 0, data, "train")
            yield {"setting": f"beta={beta} gamma={gamma}", "beta": beta, "gamma": gamma}, model_dir


def run(config: CorpusEvalConfig) -> dict:
    """Every setting (see :func:`checkpoints`); writes ``corpus_eval.json`` and ``corpus_eval.md``.

    Raises:
        InputError: see :meth:`CorpusEvalConfig.check`.
    """
    config.check()
    data, split, fvmr, model = Path(config.data), config.split, config.fvmr, config.model
    if fvmr is None and model is None:
        model = default_model_dir("fvmr")
    positives, positives_info = (read_positives(config.positives, data, split)
                                 if config.positives is not None else (None, None))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for fields, model_dir in checkpoints(fvmr, model, config.video_text,
                                             list(config.video_weights),
                                             list(config.hub_weights), config.hub_bank, data,
                                             Path(tmp)):
            row = {**fields, **evaluate_setting(data, split, model_dir, positives=positives)}
            rows.append(row)
            print(f"{row['setting']}: R10@0.5 {row['R10@0.5']:.2f} "
                  f"R100@0.5 {row['R100@0.5']:.2f} video_R@10 {row['video_R@10']:.2f} "
                  f"N10_max {row['N10_max']:.0f}", flush=True)
    rows.append(random_video_row(int(rows[0]["videos"])))
    report = {"data": str(data), "split": split, "fvmr": str(fvmr), "model": str(model),
              "video_text": str(config.video_text), "bank": config.hub_bank, "rows": rows,
              "positives": positives_info, "machine": machine_info()}
    write_report(config.out, "corpus_eval", report, markdown(report))
    return report


def markdown(report: dict) -> str:
    """The report's tables."""
    corpus_cols = [f"R{k}@{m}" for m in (0.5, 0.7) for k in CORPUS_KS]
    video_cols = [f"video_R@{n}" for n in VIDEO_KS] + ["video_median_rank"]
    hub_cols = ["N10_max", "N10_skew", "top5_share", "never_in_top"]
    settings = [r for r in report["rows"] if "R1@0.5" in r]
    return "\n\n".join([
        f"Corpus moment retrieval over the {report['split']} videos (percent):",
        markdown_table(settings, ["setting", *corpus_cols]),
        "Video retrieval (percent) and median rank:",
        markdown_table(report["rows"], ["setting", *video_cols]),
        "Hubness of the video top 10:",
        markdown_table(settings, ["setting", *hub_cols]),
        *(multi_positive_markdown(report, settings) if report.get("positives") else []),
        machine_markdown(report["machine"]),
    ])


def multi_positive_markdown(report: dict, settings: list[dict]) -> list[str]:
    """The multi-positive table beside the single-ground-truth one, and the positives counts."""
    info = report["positives"]
    cols = [f"{prefix}R{k}@{m}" for m in (0.5, 0.7) for k in MULTI_KS for prefix in ("", "multi_")]
    heads = [f"{'multi' if prefix else 'single'} R{k}@{m}" for m in (0.5, 0.7) for k in MULTI_KS
             for prefix in ("", "multi_")]
    return [
        f"Corpus moment retrieval with more than one right answer (percent): single = the "
        f"annotated moment only; multi = any positive of `{info['file']}` (sha256 "
        f"{info['sha256'][:12]}) inside the {report['split']} videos, the annotated one included:",
        markdown_table(settings, ["setting", *cols], ["setting", *heads]),
        f"Positives: {info['sentences']} sentences, matched to the file by video, window and text "
        f"({info['matched_exact']} exact, {info['matched_close']} after a spelling difference, "
        f"{info['unmatched']} unmatched and kept with their annotated moment only); of the "
        f"file's {info['file_positives']:.0f} other-video positives of the matched sentences, "
        f"{info['kept']:.0f} are inside the indexed videos and "
        f"{info['outside_corpus']:.0f} outside (ignored). Positives per sentence inside the "
        f"corpus: mean {info['positives_mean']:.2f}, "
        f"min {info['positives_min']:.0f}, max {info['positives_max']:.0f}; "
        f"{info['annotated_only_pct']:.1f}% have only the annotated one.",
    ]
