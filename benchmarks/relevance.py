"""Fit the relevance calibration on the train split and measure it on val (JSON + Markdown).

Fit (train only): positives are the train sentences searched over an index of the 850 train
videos; negatives the fit half of the out-of-domain sentences (``eval.relevance``) searched over
the same index. A sentence's familiarity is its highest cosine to the bank of train sentences,
leaving out, for a train sentence, those of its own video and its exact repeats (as a val
sentence meets the bank). Two logistic fits: familiarity alone gives the top moment's relevance;
familiarity and the top score together give the weight of a score gap below the top moment. The
threshold leaves ``share`` (5%) of the train positives' top relevance under it.

Measure (val): val sentences over an index of the 150 val videos vs the held-out half of the
negatives, through ``Searcher.search_many`` with the fitted calibration: AUROC of the top
relevance, the share of val sentences marked "no good match", per source, examples.

    moment-search benchmark relevance --data ../shared/data/charades-sta-clip \\
        --annotations ../shared/data/annotations --work /tmp/relevance --out reports/relevance \\
        --write-model runs/search-prior
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.corpus_dir import read_split
from ..errors import InputError
from ..eval.relevance import (
    auroc,
    charades_vocabulary,
    fit_logistic,
    held_out,
    out_of_domain_sentences,
    threshold_at,
)
from ..search.relevance import RelevanceModel, sigmoid
from .report import machine_info, markdown_table, progress, write_report


@dataclass
class RelevanceConfig:
    """One run; ``moment-search benchmark relevance`` builds it from its options."""

    work: Path  # where the train and val indexes are (built when absent)
    out: Path  # report directory
    data: Path = Path("../shared/data/charades-sta-clip")  # the charades-sta-clip corpus
    # TACoS, ActivityNet, Charades classes and CSV (the out-of-domain sentences)
    annotations: Path = Path("../shared/data/annotations")
    model: Path | None = None  # FVMR checkpoint (None: the shipped one)
    share: float = 0.05  # train sentences allowed under the no-good-match threshold
    write_model: Path | None = None  # write the calibration into this checkpoint folder

    def command(self) -> str:
        """The ``moment-search benchmark relevance`` command line of this run."""
        options = ["--data", self.data, "--annotations", self.annotations, "--work", self.work,
                   "--out", self.out, "--share", self.share]
        options += ["--model", self.model] if self.model else []
        options += ["--write-model", self.write_model] if self.write_model else []
        return "moment-search benchmark relevance " + " ".join(map(str, options))

ISSUE_QUERIES = ("a dolphin jumps over a car", "🐬🚗🐬", "一个人在厨房里打开冰箱门",
                 "person opens the refrigerator")


def split_sentences(data: Path, split: str) -> tuple[list[str], list[str]]:
    """The sentences of a split and their video ids (read by the corpus readers)."""
    queries = read_split(data, split).queries
    return [q.text for q in queries], [q.video_id for q in queries]


def ensure_index(data: Path, split: str, index_dir: Path, model: Path | None) -> Path:
    """An index of one split's videos (built with ``index build`` when absent).

    Raises:
        InputError: an index already there was built with another model (a calibration fitted
            on it would belong to that model).
    """
    from ..indexer.build import BuildConfig, build_index
    from ..indexer.store import MODEL_DIR
    from ..models.base import model_fingerprint
    from ..pretrained import default_model_dir

    model = Path(model or default_model_dir("fvmr"))
    if not (index_dir / "catalog.sqlite").exists():
        build_index(data, index_dir, weights_only(model, index_dir.parent / "model-weights"),
                    BuildConfig(split=split))
        return index_dir
    wanted = model_fingerprint(model)
    found = model_fingerprint(index_dir / MODEL_DIR)
    if found != wanted:
        raise InputError(f"{index_dir}: built with model {found[0]} (config {found[1]}), not "
                         f"the model given, {model} ({wanted[0]}, config {wanted[1]}); give "
                         f"another --work folder or delete this one", parameter="work")
    return index_dir


def weights_only(model: Path, out: Path) -> Path:
    """``model``'s config and weights alone in ``out`` (same fingerprint): the work indexes must
    open whatever calibration the model carries, even one fitted for other weights, since this
    benchmark fits it again."""
    import shutil

    from ..models.base import CONFIG_NAME, WEIGHTS_NAME

    out.mkdir(parents=True, exist_ok=True)
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        shutil.copyfile(model / name, out / name)
    return out


def encode(searcher, texts: list[str], batch: int = 64) -> np.ndarray:
    """(N, D) search vectors."""
    return np.concatenate([searcher.encoder.encode(texts[i:i + batch])
                           for i in range(0, len(texts), batch)])


def top_scores(searcher, queries: np.ndarray) -> np.ndarray:
    """(N,) the best fast-path score of each encoded sentence over the whole index."""
    scores, _ = searcher.index.search(queries, 1, searcher.params, None)
    return scores[:, 0]


def bank_width(model_dir: Path) -> int:
    """Width of the sentence part of the search vector (FVMR + video-text, no corpus column)."""
    config = json.loads((model_dir / "config.json").read_text())["config"]
    video_text = config.get("video_text")
    return int(config["space_dim"]) + (int(video_text["embed_dim"]) if video_text else 0)


def unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def fit(train_searcher, texts: list[str], videos: list[str], negatives: list[str],
        width: int, share: float) -> tuple[RelevanceModel, dict]:
    """The calibration fitted on train sentences and negatives, with the fit's figures."""
    positives_q = encode(train_searcher, texts)
    negatives_q = encode(train_searcher, negatives)
    bank = unit(positives_q[:, :width]).astype(np.float32)  # (N, W)
    similar = unit(positives_q[:, :width]) @ bank.T  # (N, N)
    same = (np.array(videos)[:, None] == np.array(videos)[None]) | (similar > 0.9999)
    familiar_pos = np.where(same, -1.0, similar).max(1)
    familiar_neg = (unit(negatives_q[:, :width]) @ bank.T).max(1)
    labels = np.r_[np.ones(len(texts)), np.zeros(len(negatives))]
    familiarity = np.r_[familiar_pos, familiar_neg]
    (w_f,), bias = fit_logistic(familiarity[:, None], labels)
    top = np.r_[top_scores(train_searcher, positives_q), top_scores(train_searcher, negatives_q)]
    (_, w_s), _ = fit_logistic(np.column_stack([familiarity, top]), labels)
    top_relevance = sigmoid(bias + w_f * familiar_pos)
    threshold = threshold_at(top_relevance, share)
    keep = np.unique(np.array(texts), return_index=True)[1]
    model = RelevanceModel(bias, float(w_f), max(0.0, float(w_s)), threshold, bank[np.sort(keep)])
    figures = {"train_positives": len(texts), "fit_negatives": len(negatives),
               "bank_sentences": len(keep), "share": share,
               "train_auroc": auroc(familiar_pos, familiar_neg),
               "train_no_match_rate": float((top_relevance < threshold).mean()),
               "joint_score_weight": float(w_s)}
    return model, figures


def measure(val_searcher, texts: list[str], negatives: dict[str, list[str]]) -> dict:
    """Val figures of the calibration the searcher holds."""
    def top(sentences):
        answers = [m for i in range(0, len(sentences), 64)
                   for m in val_searcher.search_many(sentences[i:i + 64], k=10)]
        return np.array([a[0].relevance for a in answers]), np.array([a[0].score for a in answers])

    threshold = val_searcher.relevance.threshold
    pos_rel, pos_score = top(texts)
    rows, all_neg, all_neg_score = [], [], []
    for source, sentences in negatives.items():
        rel, score = top(sentences)
        all_neg.append(rel)
        all_neg_score.append(score)
        rows.append({"negatives": source, "sentences": len(sentences), "auroc": auroc(pos_rel, rel),
                     "marked_no_good_match": float((rel < threshold).mean()),
                     "score_auroc": auroc(pos_score, score)})
    neg_rel, neg_score = np.concatenate(all_neg), np.concatenate(all_neg_score)
    rows.append({"negatives": "all", "sentences": len(neg_rel), "auroc": auroc(pos_rel, neg_rel),
                 "marked_no_good_match": float((neg_rel < threshold).mean()),
                 "score_auroc": auroc(pos_score, neg_score)})
    flat = [s for sentences in negatives.values() for s in sentences]
    return {"val_sentences": len(texts), "auroc": rows[-1]["auroc"],
            "false_no_match_rate": float((pos_rel < threshold).mean()), "per_source": rows,
            "lowest_val": _examples(texts, pos_rel, pos_score, lowest=True),
            "highest_negatives": _examples(flat, neg_rel, neg_score, lowest=False),
            "issue_queries": _issue_queries(val_searcher)}


def _examples(texts, relevance, scores, lowest: bool, n: int = 5) -> list[dict]:
    order = np.argsort(relevance)
    order = order[:n] if lowest else order[::-1][:n]
    return [{"query": texts[i], "relevance": float(relevance[i]), "top_score": float(scores[i])}
            for i in order]


def _issue_queries(searcher) -> list[dict]:
    rows = []
    for text in ISSUE_QUERIES:
        moments = searcher.search(text, k=10)
        rows.append({"query": text, "top_score": moments[0].score,
                     "relevance": moments[0].relevance,
                     "no_good_match": searcher.no_good_match(moments)})
    return rows


def run(config: RelevanceConfig) -> dict:
    """Fit on train, measure on val, write ``relevance.json`` and ``relevance.md`` (and the
    calibration into ``config.write_model``); returns the report."""
    from ..data.readers.charades_csv import read_charades_classes, read_charades_csv
    from ..indexer.store import MODEL_DIR
    from ..search.searcher import Searcher

    annotations = Path(config.annotations)
    classes = read_charades_classes(annotations / "charades" / "Charades_v1_classes.txt")
    videos = read_charades_csv(annotations / "charades" / "Charades_v1_test_sta1000.csv")
    vocabulary = charades_vocabulary(classes, [o for v in videos.values() for o in v.objects])
    by_source = out_of_domain_sentences(annotations, vocabulary)
    fit_half = [s for sentences in by_source.values() for s in sentences if not held_out(s)]
    eval_half = {k: [s for s in v if held_out(s)] for k, v in by_source.items()}
    work, data, model = Path(config.work), Path(config.data), config.model
    train = Searcher.open(ensure_index(data, "train", work / "train", model))
    texts, video_ids = split_sentences(data, "train")
    progress(f"fitting on {len(texts)} train sentences and {len(fit_half)} negatives")
    calibration, figures = fit(train, texts, video_ids, fit_half,
                               bank_width(train.index_dir / MODEL_DIR), config.share)
    info = train.catalog.info()
    calibration.model_id, calibration.config_hash = info.model_id, info.config_hash
    val = Searcher.open(ensure_index(data, "val", work / "val", model))
    val.relevance = calibration
    progress("measuring on val")
    measured = measure(val, split_sentences(data, "val")[0], eval_half)
    calibration.fit = {**figures, "val_auroc": measured["auroc"],
                       "val_false_no_match_rate": measured["false_no_match_rate"]}
    if config.write_model:
        calibration.save(config.write_model)
    report = {"command": config.command(), "calibration": {k: v for k, v in calibration.to_dict()
                                                       .items() if k != "fit"},
              "fit": figures, "val": measured, "machine": machine_info()}
    write_report(config.out, "relevance", report, markdown(report))
    return report


def markdown(report: dict) -> str:
    val, fit_, cal = report["val"], report["fit"], report["calibration"]
    lines = ["# Relevance calibration: real val sentences vs sentences about things Charades "
             "does not show", "", f"`{report['command']}`", "",
             f"relevance = sigmoid({cal['bias']:.3f} + {cal['familiarity_weight']:.3f} x "
             f"familiarity + {cal['score_weight']:.3f} x (score - top score)); no good match "
             f"under {cal['threshold']:.4f} ({fit_['share']:.0%} of the train positives).", "",
             f"**Val: AUROC {val['auroc']:.3f} (aim >= 0.9); real val sentences marked no good "
             f"match {val['false_no_match_rate']:.1%} (aim <= 5%)** over "
             f"{val['val_sentences']} val sentences. Train (fit): AUROC "
             f"{fit_['train_auroc']:.3f}, {fit_['train_no_match_rate']:.1%} under the threshold.",
             "", "## Per source (held-out negatives; score_auroc: the raw top score instead)", "",
             markdown_table(val["per_source"], ["negatives", "sentences", "auroc",
                                                "marked_no_good_match", "score_auroc"]), "",
             "## The issue's queries (val index)", "",
             markdown_table(val["issue_queries"], ["query", "top_score", "relevance",
                                                   "no_good_match"]), "",
             "## Val sentences with the lowest relevance", "",
             markdown_table(val["lowest_val"], ["query", "relevance", "top_score"]), "",
             "## Negatives with the highest relevance", "",
             markdown_table(val["highest_negatives"], ["query", "relevance", "top_score"]), ""]
    return "\n".join(lines)
