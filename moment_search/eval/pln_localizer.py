"""``evaluate model pln`` and ``pln-s2``: PLN on each query's own video (Strategy 1 or 2)."""

from __future__ import annotations

from pathlib import Path

from ..search.pln_reranker import PLNReranker, load_reranker
from .runner import register_localizer


@register_localizer("pln")
def load_pln(data_dir: Path, model_dir: Path | None) -> PLNReranker:
    """PLN with the strategy stored in its checkpoint (default Strategy 1: the last stage)."""
    return load_reranker(model_dir, device="cpu")


@register_localizer("pln-s2")
def load_pln_strategy2(data_dir: Path, model_dir: Path | None) -> PLNReranker:
    """PLN with Strategy 2: the average of every stage's scores."""
    reranker = load_reranker(model_dir, device="cpu")
    reranker.strategy = 2
    return reranker
