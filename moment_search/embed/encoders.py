"""The two sides of the FVMR common space at inference time.

* :class:`MomentEncoder`: a video's features -> N clips -> P proposal embeddings phi_m(m_i) and
  their spans in seconds (run once per video by the indexer).
* :class:`QueryEncoder`: sentences -> MiniLM tokens -> BiLSTM -> phi_s(s) (run per query).

A checkpoint with corpus terms (``train.compose``) appends them to both vectors, so their inner
product is FVMR's p plus the video-text score minus the hub correction plus the per-cell prior
(``train.cell_prior``), each where the checkpoint has it (``FVMR.encode_moments``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..data.clips import pool_clips
from ..data.corpus import Video
from ..device import resolve_device
from ..geometry.proposals import proposal_spans
from ..models.fvmr import FVMR
from ..text.tokens import TokenEncoder
from .one_video import OneVideoWeights


class MomentEncoder:
    """Embeds every 2D-map proposal of a video into the common space."""

    def __init__(self, model: FVMR):
        self.model = model
        self.n_clips = model.config.n_clips

    @property
    def device(self) -> torch.device:
        """The model's device."""
        return next(self.model.parameters()).device

    def clips(self, features: np.ndarray, video: Video) -> np.ndarray:
        """(T, Dv) features -> (N, Dv) clips, honouring the video's feature rate."""
        return pool_clips(features, self.n_clips, video.duration, video.feature_rate)

    @torch.inference_mode()
    def embed_clips(self, clips: np.ndarray) -> np.ndarray:
        """(B, N, Dv) clips -> (B, P, embedding_dim) float32 proposal vectors."""
        batch = torch.from_numpy(np.ascontiguousarray(clips, dtype=np.float32)).to(self.device)
        return self.model.encode_moments(batch).float().cpu().numpy()

    def embed_video(self, features: np.ndarray, video: Video) -> np.ndarray:
        """(T, Dv) features of one video -> (P, D) proposal embeddings."""
        return self.embed_clips(self.clips(features, video)[None])[0]

    def spans(self, duration: float) -> np.ndarray:
        """(P, 2) proposal spans in seconds, proposal order."""
        return proposal_spans(self.n_clips, duration)


class QueryEncoder:
    """Encodes sentences into the common space."""

    def __init__(self, model: FVMR, tokens: TokenEncoder):
        self.model = model
        self.tokens = tokens

    @property
    def dim(self) -> int:
        """Width of the search vectors."""
        return self.model.embedding_dim

    @property
    def one_video(self) -> OneVideoWeights:
        """How a search within one video weighs the query's columns (``embed.one_video``)."""
        return OneVideoWeights(self.model.constant_column_index, self.model.video_text_columns,
                               self.model.config.one_video_text_scale)

    @torch.inference_mode()
    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """B sentences -> (B, embedding_dim) float32 query vectors (phi_s(s) [+ corpus terms]).

        Raises:
            ValueError: an empty or blank sentence (names its position).
        """
        batch = self.tokens.encode(list(texts))
        device = next(self.model.parameters()).device
        queries = self.model.encode_queries(batch.embeddings.to(device), batch.mask.to(device))
        return queries.float().cpu().numpy()


def pytorch_encoder(model_dir: Path, device: str = "auto", token_cache: int | None = None
                    ) -> QueryEncoder:
    """The PyTorch ``QueryEncoder`` of an FVMR checkpoint (imports torch, transformers);
    ``token_cache``: its sentence cache size (None: TokenEncoder's default)."""
    torch_device = resolve_device(device)
    model = FVMR.from_pretrained(model_dir, torch_device)
    _, extra = FVMR.read_config(model_dir)
    cache = {} if token_cache is None else {"cache_size": token_cache}
    tokens = TokenEncoder(device=torch_device, max_length=int(extra.get("max_tokens", 32)),
                          **cache)
    return QueryEncoder(model, tokens)
