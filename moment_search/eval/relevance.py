"""Fitting and measuring the relevance calibration (``search.relevance``): numpy only.

Negatives are sentences about things no Charades video shows: the TACoS and ActivityNet
annotation sentences that name no Charades object or action class. A sentence names one when
any of its words matches a content word of the 157 class phrases or of the object names of the
Charades CSV (``objects``; generic ones like "something" or "object" left out), after removing
one ending (-s, -es, -ies -> -y, -ing, -ed, -d, a doubled final consonant). They are split
deterministically (by the sha1 of the sentence) into a fit half and a held-out half.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np

# function words and generic names of the class phrases and object names, not matched
GENERIC_WORDS = frozenset(
    "a an and at for from in into is of off on onto or some someone something somewhere the "
    "their themselves through to up with es s outside kind other various object objects item "
    "items second red".split())


def word_forms(word: str) -> set[str]:
    """A lowercase word and its forms with one ending removed (see the module docstring)."""
    forms = {word}
    for suffix in ("s", "es", "ing", "ed", "d"):
        base = word[:-len(suffix)]
        if word.endswith(suffix) and len(base) >= 3:
            forms.add(base)
            if suffix in ("ing", "ed"):
                forms.add(base + "e")
                if len(base) >= 4 and base[-1] == base[-2]:
                    forms.add(base[:-1])
    if word.endswith("ies"):
        forms.add(word[:-3] + "y")
    return forms


def words(text: str) -> list[str]:
    """The lowercase words (letters only) of a text."""
    return re.findall(r"[a-z]+", text.lower())


def charades_vocabulary(classes: dict[str, str], objects: list[str]) -> set[str]:
    """Word forms of the class phrases (``cNNN -> phrase``) and object names (``a/b`` split)."""
    vocabulary: set[str] = set()
    for text in [*classes.values(), *(alt for o in objects for alt in o.split("/"))]:
        for word in words(text):
            if word not in GENERIC_WORDS:
                vocabulary |= word_forms(word)
    return vocabulary


def names_charades(sentence: str, vocabulary: set[str]) -> bool:
    """Whether any word of the sentence matches the Charades vocabulary."""
    return any(word_forms(word) & vocabulary for word in words(sentence))


def out_of_domain_sentences(annotations: str | Path, vocabulary: set[str]
                            ) -> dict[str, list[str]]:
    """``{"tacos": [...], "activitynet": [...]}``: the distinct sentences of
    ``tacos/test.json`` and ``activitynet/val.json`` (2D-TAN format) that name nothing of the
    vocabulary, sorted; a sentence in both files counts for TACoS.

    Raises:
        FileNotFoundError: a missing annotation file.
    """
    annotations = Path(annotations)
    seen: set[str] = set()
    found: dict[str, list[str]] = {}
    for source, name in (("tacos", "tacos/test.json"), ("activitynet", "activitynet/val.json")):
        records = json.loads((annotations / name).read_text())
        kept = set()
        for record in records.values():
            for sentence in record["sentences"]:
                sentence = " ".join(sentence.split())
                if sentence and sentence not in seen and not names_charades(sentence, vocabulary):
                    kept.add(sentence)
        seen |= kept
        found[source] = sorted(kept)
    return found


def held_out(sentence: str) -> bool:
    """The deterministic half a negative sentence falls in: True for the evaluation half."""
    return hashlib.sha1(sentence.encode()).digest()[0] % 2 == 1


def auroc(positives: np.ndarray, negatives: np.ndarray) -> float:
    """Area under the ROC curve of ``positives`` ranked above ``negatives`` (ties count 1/2)."""
    positives, negatives = np.asarray(positives, float), np.asarray(negatives, float)
    both = np.concatenate([positives, negatives])
    order = both.argsort(kind="mergesort")
    ranks = np.empty(len(both))
    ranks[order] = np.arange(1, len(both) + 1)
    for value in np.unique(both):  # average ranks over ties
        tied = both == value
        ranks[tied] = ranks[tied].mean()
    n_pos, n_neg = len(positives), len(negatives)
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def fit_logistic(features: np.ndarray, labels: np.ndarray, l2: float = 1e-4,
                 iterations: int = 50) -> tuple[np.ndarray, float]:
    """Logistic regression by Newton's method, classes weighted to count equally.

    Args:
        features: (N, F) float; labels: (N,) 0/1 (both present).
        l2: ridge penalty on the weights (not the bias), per weighted sample.

    Returns:
        ``(weights (F,), bias)`` of ``P(y=1) = sigmoid(features @ weights + bias)``.
    """
    x = np.column_stack([np.asarray(features, float), np.ones(len(features))])  # (N, F+1)
    y = np.asarray(labels, float)
    weight = np.where(y == 1, 0.5 / y.sum(), 0.5 / (1 - y).sum())  # (N,) sums to 1
    penalty = np.diag([l2] * (x.shape[1] - 1) + [0.0])
    beta = np.zeros(x.shape[1])
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(x @ beta)))
        gradient = x.T @ (weight * (p - y)) + penalty @ beta
        hessian = (x * (weight * p * (1 - p))[:, None]).T @ x + penalty
        step = np.linalg.solve(hessian, gradient)
        beta -= step
        if np.abs(step).max() < 1e-10:
            break
    return beta[:-1], float(beta[-1])


def threshold_at(positive_relevance: np.ndarray, share: float) -> float:
    """The highest threshold that leaves at most ``share`` of the positives under it."""
    values = np.sort(np.asarray(positive_relevance, float))
    allowed = int(np.floor(share * len(values)))  # positives that may fall under it
    return float(values[allowed]) if allowed < len(values) else float("inf")
