"""A video-level relevance model for corpus search (not in the FVMR paper; an option of ours).

FVMR's moment scores are trained within one video, so they do not say which *video* of a corpus
a sentence is about. This model gives a query-video score s_v = t(query) . v(video), trained
contrastively across videos (InfoNCE over a batch of videos, ``train.video_text_trainer``):

* video side v: the N pooled clip features (the same input as FVMR's video encoder) -> a
  two-layer MLP per clip -> mean and max over clips -> linear -> L2-normalised, times
  ``1/sqrt(temperature)``. With ``level="moment"`` the mean and max run over the clips of each
  2D-map proposal instead of the whole video, giving one vector per proposal: the score then
  says which *moment* of the corpus a sentence is about (trained on the sentences' windows; a
  whole-video text such as a description is matched with the whole-video proposal);
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

from ..errors import InputError
from ..geometry.proposals import map_max_pool, proposal_index
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
    level: str = "video"  # "video": one vector per video; "moment": one per 2D-map proposal

    def __post_init__(self) -> None:
        if self.level not in ("video", "moment"):
            raise InputError(f"level must be 'video' or 'moment', got {self.level!r}")


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
        """(B, N, Dv) pooled clip features -> (B, E) whole-video embeddings."""
        n = clips.shape[1]
        spans = torch.tensor([[0, n - 1]], device=clips.device).expand(clips.shape[0], -1)
        return self.encode_spans(clips, spans)

    def encode_spans(self, clips: torch.Tensor, spans: torch.Tensor) -> torch.Tensor:
        """Embeddings of one clip span per video: (B, N, Dv), (B, 2) int [i, j] -> (B, E)."""
        hidden = self.clip_mlp(clips * self.config.clip_scale)  # (B, N, H)
        steps = torch.arange(hidden.shape[1], device=hidden.device)
        inside = (steps >= spans[:, :1]) & (steps <= spans[:, 1:])  # (B, N)
        weight = inside.to(hidden.dtype)[..., None]  # (B, N, 1)
        mean = (hidden * weight).sum(1) / weight.sum(1)  # (B, H)
        peak = hidden.masked_fill(~inside[..., None], float("-inf")).amax(1)  # (B, H)
        return self._project(torch.cat([mean, peak], -1))

    def encode_proposals(self, clips: torch.Tensor) -> torch.Tensor:
        """(B, N, Dv) clips -> (B, P, E): every 2D-map proposal, in ``proposal_index`` order."""
        hidden = self.clip_mlp(clips * self.config.clip_scale)  # (B, N, H)
        index = torch.from_numpy(proposal_index(hidden.shape[1])).to(hidden.device)  # (P, 2)
        peak = map_max_pool(hidden)[..., index[:, 0], index[:, 1]].transpose(1, 2)  # (B, P, H)
        sums = nn.functional.pad(hidden.cumsum(1), (0, 0, 1, 0))  # (B, N + 1, H)
        length = (index[:, 1] - index[:, 0] + 1).to(hidden.dtype)[:, None]  # (P, 1)
        mean = (sums[:, index[:, 1] + 1] - sums[:, index[:, 0]]) / length  # (B, P, H)
        return self._project(torch.cat([mean, peak], -1))

    def _project(self, pooled: torch.Tensor) -> torch.Tensor:
        """(..., 2H) pooled clips -> (..., E) on the sphere of radius ``scale``."""
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

    def forward(self, clips: torch.Tensor, pooled_text: torch.Tensor,
                spans: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Logits of every text against every video (or video span) of a batch.

        Args:
            clips: (V, N, Dv) clip features of V videos.
            pooled_text: (B, Dt) mean-pooled token embeddings of B sentences.
            spans: (V, 2) int clip span of each video to embed; None: the whole videos.

        Returns:
            ``{"logits": (B, V), "videos": (V, E), "texts": (B, E)}``.
        """
        videos = self.encode_videos(clips) if spans is None else self.encode_spans(clips, spans)
        texts = self.encode_sentences(pooled_text)
        return {"logits": texts @ videos.T, "videos": videos, "texts": texts}
