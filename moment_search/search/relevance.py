"""A moment's relevance: a probability that the answer is a real match, and "no good match".

A fast-path score is FVMR's logit of a moment matching the sentence; it ranks the moments of one
query but says little across queries (a sentence about a dolphin scores 2.6 where real matches
score 2.7-2.9). The relevance model, fitted on the train split (``eval.relevance``), reads::

    relevance = sigmoid(bias + familiarity_weight * familiarity
                        + score_weight * (score - top_score))

``familiarity`` is the highest cosine between the sentence's search vector (its first ``width``
dimensions: the FVMR and video-text parts) and a bank of the training sentences' vectors: how
much the sentence is like what the model was trained on. The answer's top moment gets
``sigmoid(bias + familiarity_weight * familiarity)``; lower moments lose with their score gap
to it, so relevance is monotone in the score within a query and does not move with the corpus
size (the top score does). An answer whose top relevance is under ``threshold`` is marked
"no good match".

Stored beside the checkpoint (``index build`` copies it into ``INDEX/model/``)::

    relevance.json       weights, threshold, bank width, the model fingerprint, the fit's figures
    relevance-bank.npy   (N, width) float16, the training sentences' vectors (L2-normalised)

Imports numpy only: the query path stays free of PyTorch and scikit-learn.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError

RELEVANCE_FILE = "relevance.json"
NO_CALIBRATION = ("no relevance: this index's model carries no relevance calibration "
                  "(model/relevance.json); build the index with a calibrated checkpoint or fit "
                  "one with 'moment-search benchmark relevance --write-model DIR'")
BANK_FILE = "relevance-bank.npy"
FORMAT_VERSION = 1


@dataclass
class RelevanceModel:
    """The fitted calibration (see the module docstring)."""

    bias: float
    familiarity_weight: float  # > 0: a sentence like the training ones is more relevant
    score_weight: float  # >= 0: per unit of fast-path score below the top moment
    threshold: float  # top relevance under this: "no good match"
    bank: np.ndarray  # (N, width) float32, L2-normalised training-sentence vectors
    model_id: str = ""
    config_hash: str = ""
    fit: dict = field(default_factory=dict)  # how it was fitted and what it measured

    @property
    def width(self) -> int:
        return int(self.bank.shape[1])

    def familiarity(self, queries: np.ndarray) -> np.ndarray:
        """(B, D) search vectors -> (B,) highest cosine to the bank, in [-1, 1]."""
        part = np.asarray(queries, dtype=np.float32)[:, :self.width]  # (B, W)
        norms = np.linalg.norm(part, axis=1, keepdims=True)
        unit = part / np.maximum(norms, 1e-12)
        # einsum, not @: BLAS's own thread pool, called from a server's worker threads beside
        # ONNX Runtime and FAISS, cut served throughput at 32 clients from 469 to 294 q/s
        # (measured); this product is small enough (B x N x W = B x 0.5 M) for one core
        return np.einsum("bw,nw->bn", unit, self.bank).max(axis=1)  # (B,)

    def logits(self, familiarity: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """(B,) familiarity, (B, K) fast-path scores (best first) -> (B, K) relevance logits."""
        top = scores[:, :1] if scores.shape[1] else scores
        return (self.bias + self.familiarity_weight * familiarity[:, None]
                + self.score_weight * (scores - top))

    def relevance(self, queries: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """(B, D) search vectors, (B, K) fast-path scores with the top one first -> (B, K)
        relevance in [0, 1]."""
        return sigmoid(self.logits(self.familiarity(queries), np.asarray(scores, float)))

    def no_good_match(self, top_relevance: float) -> bool:
        """True when the answer's best relevance is under the threshold."""
        return bool(top_relevance < self.threshold)

    def to_dict(self) -> dict:
        """The JSON-ready fields (the bank goes to its own file)."""
        return {"format_version": FORMAT_VERSION, "bias": self.bias,
                "familiarity_weight": self.familiarity_weight, "score_weight": self.score_weight,
                "threshold": self.threshold, "width": self.width,
                "bank_sha256": bank_digest(self.bank), "model_id": self.model_id,
                "config_hash": self.config_hash, "fit": self.fit}

    def save(self, model_dir: str | Path) -> None:
        """Write ``relevance.json`` and ``relevance-bank.npy`` into a checkpoint folder
        (each to a temp file, then renamed)."""
        from ..atomic import atomic_write_text

        model_dir = Path(model_dir)
        bank = model_dir / BANK_FILE
        staging = model_dir / f".{BANK_FILE}.tmp"
        with open(staging, "wb") as handle:
            np.save(handle, self.bank.astype(np.float16))
        staging.replace(bank)
        atomic_write_text(model_dir / RELEVANCE_FILE, json.dumps(self.to_dict(), indent=1))


def sigmoid(x: np.ndarray) -> np.ndarray:
    """The logistic function, without overflow warnings for large |x|."""
    x = np.asarray(x, dtype=np.float64)
    return np.exp(-np.logaddexp(0.0, -x))


def bank_digest(bank: np.ndarray) -> str:
    """sha256 (12 hex) of the bank as stored (float16)."""
    return hashlib.sha256(np.ascontiguousarray(bank, np.float16).tobytes()).hexdigest()[:12]


def read_relevance(model_dir: str | Path, model_id: str | None = None,
                   config_hash: str | None = None) -> RelevanceModel | None:
    """The calibration stored in a checkpoint (or ``INDEX/model``) folder, or None when it
    holds none (an index built before calibrations, or from a checkpoint without one: its
    moments have no relevance; the CLI and the server say so once).

    Raises:
        ValueError: an unreadable file, another format, a bank that does not match its digest,
            or a calibration fitted for another model (names the file).
    """
    model_dir = Path(model_dir)
    path = model_dir / RELEVANCE_FILE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
        bank = np.load(model_dir / BANK_FILE).astype(np.float32)
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: unreadable relevance calibration ({e})") from e
    _check(path, data, bank, model_id, config_hash)
    return RelevanceModel(float(data["bias"]), float(data["familiarity_weight"]),
                          float(data["score_weight"]), float(data["threshold"]), bank,
                          data.get("model_id", ""), data.get("config_hash", ""),
                          data.get("fit", {}))


def _check(path: Path, data: dict, bank: np.ndarray, model_id: str | None,
           config_hash: str | None) -> None:
    if data.get("format_version") != FORMAT_VERSION:
        raise DataError(f"{path}: format_version {data.get('format_version')!r}, expected "
                        f"{FORMAT_VERSION}; fit the calibration again")
    if bank.ndim != 2 or bank.shape[1] != data.get("width") \
            or bank_digest(bank) != data.get("bank_sha256"):
        raise DataError(f"{path}: {BANK_FILE} does not match it (shape {bank.shape}); fit the "
                        f"calibration again")
    if model_id is not None and (data.get("model_id"), data.get("config_hash")) != (
            model_id, config_hash):
        raise DataError(f"{path} was fitted for model {data.get('model_id')} (config "
                        f"{data.get('config_hash')}), not {model_id} (config {config_hash}); "
                        f"fit it again with 'moment-search benchmark relevance'")
