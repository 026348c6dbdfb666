"""How an exported query encoder is checked: sentences of every shape, and the per-sentence
agreement of two encoders' vectors (used by the ONNX export and by quantization)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Sentences of every shape a user may type: short, long (past the token limit), cased,
# punctuated, numbers, non-ASCII, emoji.
CHECK_SENTENCES = (
    "person opens a cabinet",
    "A person is putting a book on a shelf.",
    "the man sits down on the couch and then starts laughing at something on his phone while "
    "his friend walks in through the open door carrying two bags of groceries and a lamp",
    "Someone takes off their shoes, then puts them in the closet.",
    "person turns on the light",
    "2 people eat sandwiches at 3 o'clock",
    "Une personne ouvre la porte du réfrigérateur",
    "一个人打开了门",
    "🐬 🚗",
    "a dolphin jumps over a car",
    "PERSON RUNS",
    "they're washing dishes -- quickly!",
    "x",
)


def agreement(reference, candidate, texts: Sequence[str]) -> dict:
    """Per-sentence cosine of two encoders' vectors: ``{n, min_cosine, mean_cosine, worst}``."""
    a = np.concatenate([reference.encode(texts[i:i + 64]) for i in range(0, len(texts), 64)])
    b = np.concatenate([candidate.encode(texts[i:i + 64]) for i in range(0, len(texts), 64)])
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    cosine = (a * b).sum(1) / np.maximum(norms, 1e-12)  # (n,)
    worst = int(np.argmin(cosine))
    return {"n": len(texts), "min_cosine": round(float(cosine.min()), 7),
            "mean_cosine": round(float(cosine.mean()), 7), "worst": texts[worst]}
