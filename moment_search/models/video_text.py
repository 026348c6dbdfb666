"""A video-level relevance model for corpus search (not in the FVMR paper; an option of ours).

FVMR's moment scores are trained within one video, so they do not say which *video* of a corpus
a sentence is about. This model gives a query-video score s_v = t(query) . v(video), trained
contrastively across videos (InfoNCE over a batch of videos, ``train.video_text_trainer``):

* video side v: the N pooled clip features (the same input as FVMR's video encoder) -> a
  two-layer MLP per clip -> mean and max over clips -> linear -> L2-normalised, times
  ``1/sqrt(temperature)``;
* text side t: the frozen MiniLM token embeddings, mean-pooled (as sentence-transformers pools
  all-MiniLM-L6-v2) -> MLP -> L2-normalised, times ``1/sqrt(temperature)``.

So ``t . v`` is the InfoNCE logit (cosine / temperature). FVMR appends these to its moment and
query vectors (see ``FVMR.encode_moments``), so one inner product ranks the corpus.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .base import PretrainedMixin
from .layers import masked_mean


@dataclass
class VideoTextConfig:
    """Sizes of the video-level relevance model."""

    feature_dim: int = 512  # input clip features (CLIP ViT-B/32)
    token_dim: int = 384  # frozen MiniLM token embeddings
    hidden_dim: int = 256  # MLP width on both sides
    embed_dim: int = 128  # the shared video-text space
    clip_scale: float = 22.627  # sqrt(512): L2-normalised CLIP features get unit RMS entries
    temperature: float = 0.05  # InfoNCE temperature; folded into the embeddings' norm
    dropout: float = 0.1


class VideoText(PretrainedMixin, nn.Module):
    """Video and sentence encoders into one space (see the module docstring)."""

    model_type = "video-text"
    config_class = VideoTextConfig

    def __init__(self, config: VideoTextConfig):
        super().__init__()
        self.config = c = config
        self.clip_mlp = nn.Sequential(
            nn.Linear(c.feature_dim, c.hidden_dim), nn.ReLU(), nn.Dropout(c.dropout),
            nn.Linear(c.hidden_dim, c.hidden_dim), nn.ReLU())
        self.video_out = nn.Linear(2 * c.hidden_dim, c.embed_dim)
        self.text_mlp = nn.Sequential(
            nn.Linear(c.token_dim, c.hidden_dim), nn.ReLU(), nn.Dropout(c.dropout),
            nn.Linear(c.hidden_dim, c.embed_dim))

    @property
    def scale(self) -> float:
        """The norm of every embedding: ``1/sqrt(temperature)``, so dot products are logits."""
        return 1.0 / math.sqrt(self.config.temperature)

    def encode_videos(self, clips: torch.Tensor) -> torch.Tensor:
        """(B, N, Dv) pooled clip features -> (B, E) video embeddings."""
        hidden = self.clip_mlp(clips * self.config.clip_scale)  # (B, N, H)
        pooled = torch.cat([hidden.mean(1), hidden.amax(1)], -1)  # (B, 2H)
        return nn.functional.normalize(self.video_out(pooled), dim=-1) * self.scale

    @staticmethod
    def pool_tokens(tokens: torch.Tensor, token_mask: torch.Tensor) -> torch.Tensor:
        """(B, L, Dt) tokens, (B, L) mask -> (B, Dt) mean over the real tokens."""
        return masked_mean(tokens, token_mask.to(tokens.dtype)[:, None])[:, 0]

    def encode_sentences(self, pooled: torch.Tensor) -> torch.Tensor:
        """(B, Dt) mean-pooled token embeddings -> (B, E) text embeddings."""
        return nn.functional.normalize(self.text_mlp(pooled), dim=-1) * self.scale

    def encode_texts(self, tokens: torch.Tensor, token_mask: torch.Tensor) -> torch.Tensor:
        """(B, L, Dt) tokens, (B, L) mask -> (B, E) text embeddings."""
        return self.encode_sentences(self.pool_tokens(tokens, token_mask))

    def forward(self, clips: torch.Tensor, pooled_text: torch.Tensor) -> dict[str, torch.Tensor]:
        """Logits of every text against every video of a batch.

        Args:
            clips: (V, N, Dv) clip features of V videos.
            pooled_text: (B, Dt) mean-pooled token embeddings of B sentences.

        Returns:
            ``{"logits": (B, V), "videos": (V, E), "texts": (B, E)}``.
        """
        videos = self.encode_videos(clips)
        texts = self.encode_sentences(pooled_text)
        return {"logits": texts @ videos.T, "videos": videos, "texts": texts}
