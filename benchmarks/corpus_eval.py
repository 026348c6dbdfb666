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
  top k with probability k / V.

    python -m moment_search.benchmarks.corpus_eval --data ../shared/data/charades-sta-clip \\
        --fvmr runs/fvmr/best --video-text runs/video-text/best --video-weights 0,1 \\
        --hub-weights 0,0.5 --out reports/corpus_eval
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from ..data.corpus_dir import open_corpus
from ..eval.metrics import corpus_metrics, video_retrieval_metrics
from ..indexer.build import BuildConfig, build_index
from ..indexer.store import read_embeddings
from ..search.searcher import Searcher
from ..train.compose import compose
from .report import machine_info, machine_markdown, markdown_table, write_report

CORPUS_KS = (1, 5, 10, 100)
VIDEO_KS = (1, 10, 100)


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


def evaluate_setting(data: Path, split: str, model_dir: Path, k: int = 100) -> dict:
    """Corpus, video and hubness metrics of one search checkpoint on ``split``."""
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
    row.update(video_retrieval_metrics(scores, truth, VIDEO_KS))
    row.update(hubness(scores))
    row["videos"] = float(len(videos))
    return row


def random_video_row(n_videos: int) -> dict:
    """Video retrieval of a random video order: R@k = k / V, exactly."""
    row = {f"video_R@{n}": 100 * min(n, n_videos) / n_videos for n in VIDEO_KS}
    row["video_median_rank"] = (n_videos + 1) / 2
    return {"setting": "random video order", **row}


def run(data: Path, split: str, fvmr: Path, video_text: Path | None, betas: list[float],
        gammas: list[float], bank: int, out: Path) -> dict:
    """Every (beta, gamma) setting; writes ``corpus_eval.json`` and ``corpus_eval.md``."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for beta in betas:
            for gamma in gammas:
                model_dir = compose(fvmr, Path(tmp) / f"b{beta}-g{gamma}",
                                    video_text if beta > 0 else None, beta, gamma,
                                    bank if gamma > 0 else 0, data, "train")
                row = evaluate_setting(data, split, model_dir)
                rows.append({"setting": f"beta={beta} gamma={gamma}", "beta": beta,
                             "gamma": gamma, **row})
                print(f"beta={beta} gamma={gamma}: R10@0.5 {row['R10@0.5']:.2f} "
                      f"R100@0.5 {row['R100@0.5']:.2f} video_R@10 {row['video_R@10']:.2f} "
                      f"N10_max {row['N10_max']:.0f}", flush=True)
    rows.append(random_video_row(int(rows[0]["videos"])))
    report = {"data": str(data), "split": split, "fvmr": str(fvmr),
              "video_text": str(video_text), "bank": bank, "rows": rows,
              "machine": machine_info()}
    write_report(out, "corpus_eval", report, markdown(report))
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
        machine_markdown(report["machine"]),
    ])


def floats(text: str) -> list[float]:
    """``"0,0.5,1"`` -> ``[0.0, 0.5, 1.0]``."""
    return [float(x) for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--split", default="val")
    parser.add_argument("--fvmr", type=Path, required=True)
    parser.add_argument("--video-text", type=Path)
    parser.add_argument("--video-weights", default="0")
    parser.add_argument("--hub-weights", default="0")
    parser.add_argument("--hub-bank", type=int, default=500)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    report = run(args.data, args.split, args.fvmr, args.video_text, floats(args.video_weights),
                 floats(args.hub_weights), args.hub_bank, args.out)
    print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
