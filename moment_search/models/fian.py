"""FIAN: "Fine-grained Iterative Attention Network for Temporal Language Localization in Videos"
(Qu et al., ACM MM 2020). No official code exists; every choice the paper leaves open is named
where it is made (here and in ``fian_blocks.py``).

Pipeline (paper Fig. 2):

* video (Sec. 3.2): features resampled to ``n_steps`` steps -> FC -> self-attention -> BiGRU;
  query: MiniLM token embeddings (the project's offline text side, in place of GloVe) -> BiGRU
  (Eq. 1-3);
* symmetrical iterative attention (Sec. 3.3): the query-video branch (Eq. 9) and the
  video-query branch (Eq. 10), each two cross-modal encoders (CGA + FFN, Eq. 4-8);
* video-enhanced integration (Eq. 11-14) -> M;
* content-oriented localization (Sec. 3.4): BiGRU over M, then for each window size theta_k two
  Conv1d with kernel theta_k and stride theta_s (= theta_k / 8 for Charades-STA) over the whole
  sequence: one output per candidate window, a confidence score (sigmoid) and the two boundary
  offsets. The loss (Eq. 15-18) is in ``train/fian_trainer.py``.

Time axis: every video is mean-pooled to ``n_steps`` = 64 equal steps, the paper's fixed
Charades-STA length ("We set the length of video feature sequences to ... 64 for Charades-STA";
videos that are too long are downsampled). The kernels [16, 24, 32, 40] are therefore fractions
of the video (1/4 to 5/8) at any feature rate, which is how they are "scaled to the corpus":
a 1-fps CLIP video of ~30 rows is stretched to 64 steps (rows are repeated, see
``data.clips.pool_clips``), a 3-minute one is averaged down. A video with fewer rows than the
smallest kernel is stretched the same way (documented fallback, not an error); a video with no
rows is a ValueError. Videos are never padded, so there is no clip mask; tokens are padded and
masked.

Ablation: ``branches=("video",)`` keeps only the video-query branch (the paper's FIAN-VQMA:
V^(2) and Q^(2) only), ``("query",)`` only the query-video one (FIAN-QVMA).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..data.clips import pool_clips
from ..errors import InputError
from .base import PretrainedMixin
from .fian_blocks import BiGRU, IterativeAttention, VideoEnhancedIntegration


@dataclass
class FIANConfig:
    """FIAN sizes and switches (paper Sec. 4.3 for Charades-STA unless noted).

    The paper's width is 512. ``hidden_dim`` = 128 here: the Charades-STA CLIP split has 2.3k
    training sentences (the paper's Charades-STA has 12.4k), and one training run must fit in
    ~40 minutes on one CPU thread; at 512 each of the eight attention/FFN blocks and the three
    BiGRUs costs ~16x more (d^2) for a data set this size cannot feed.
    """

    feature_dim: int = 512  # width of the input clip features (CLIP ViT-B/32)
    token_dim: int = 384  # width of the frozen MiniLM token embeddings
    hidden_dim: int = 128  # d_h (paper: 512)
    heads: int = 4  # attention heads (paper: 4 for Charades-STA)
    n_steps: int = 64  # video sequence length (paper: 64 for Charades-STA)
    kernels: tuple[int, ...] = (16, 24, 32, 40)  # window sizes theta_k (paper, Charades-STA)
    stride_ratio: float = 0.125  # theta_s / theta_k (paper: 1/8 for Charades-STA)
    max_tokens: int = 32  # n_q of Eq. 11: queries are padded to this many tokens
    branches: tuple[str, ...] = ("query", "video")  # iterative attention branches (Eq. 9, 10)
    video_self_attention: bool = True  # Sec. 3.2, after [44] (CMIN)
    dropout: float = 0.1  # in every attention/FFN block (paper: not stated)
    # Multiplies the input clip features (not in the paper): sqrt(512) gives L2-normalised CLIP
    # features unit RMS, so the input FC sees more than its bias at its default init.
    clip_scale: float = 1.0

    def __post_init__(self) -> None:
        self.kernels = tuple(int(k) for k in self.kernels)
        self.branches = tuple(self.branches)
        if not self.kernels or min(self.kernels) < 1 or max(self.kernels) > self.n_steps:
            raise InputError(f"kernels {self.kernels} must lie in 1..n_steps ({self.n_steps})")
        if not self.branches or set(self.branches) - {"query", "video"} \
                or len(set(self.branches)) < len(self.branches):
            raise InputError(f"branches must be distinct 'query' / 'video', got {self.branches}")
        if self.hidden_dim % self.heads or self.hidden_dim % 2:
            raise InputError(f"hidden_dim {self.hidden_dim} must be even and divide into "
                             f"{self.heads} heads")
        if not 0.0 < self.stride_ratio <= 1.0:
            raise InputError(f"stride_ratio must be in (0, 1], got {self.stride_ratio}")


def anchor_strides(kernels: tuple[int, ...], stride_ratio: float) -> tuple[int, ...]:
    """theta_s per kernel: ``round(theta_k * ratio)``, at least 1 (16, 24, 32, 40 -> 2, 3, 4, 5)."""
    return tuple(max(1, round(k * stride_ratio)) for k in kernels)


def anchor_layout(n_steps: int, kernels: tuple[int, ...], stride_ratio: float) -> np.ndarray:
    """The candidate moments C_j = (s_j, e_j) of every window size, in step units (Fig. 5).

    Window j of size d and stride s covers steps [j*s, j*s + d) (the paper's 1-based
    C_1 = (1, d), C_2 = (1 + d - p, 2d - p) with overlap p = d - s), for j = 0 .. (T - d) // s:
    exactly the output positions of ``Conv1d(kernel=d, stride=s)`` over T steps, kernel by
    kernel in the order given.

    Returns:
        int64 (A, 2) ``[start, end)`` in steps.
    """
    rows = []
    for kernel, stride in zip(kernels, anchor_strides(kernels, stride_ratio), strict=True):
        starts = np.arange(0, n_steps - kernel + 1, stride)
        rows.append(np.stack([starts, starts + kernel], axis=1))
    return np.concatenate(rows).astype(np.int64)


def decode_spans(anchors: torch.Tensor, offsets: torch.Tensor, n_steps: int) -> torch.Tensor:
    """Anchors moved by predicted offsets (Sec. 3.5), clamped into the video, in steps.

    Args:
        anchors: (A, 2) ``[start, end)`` in steps.
        offsets: (B, A, 2) predicted (delta_s, delta_e), in steps.
        n_steps: T.

    Returns:
        (B, A, 2) float spans with 0 <= start < end <= T: the two ends are put in order and a
        span is at least one step long (the paper does not say how it handles crossed ends).
    """
    raw = anchors.to(offsets.dtype) + offsets  # (B, A, 2)
    start = raw.amin(-1).clamp(0, n_steps - 1)
    end = torch.maximum(raw.amax(-1).clamp(max=n_steps), start + 1)
    return torch.stack([start, end], -1)


def pool_video_steps(features: np.ndarray, n_steps: int, duration: float,
                     feature_rate: float | None = None) -> torch.Tensor:
    """(T, Dv) feature rows -> (n_steps, Dv) float32 steps over equal time spans.

    Raises:
        ValueError: for an empty feature array (see ``data.clips.pool_clips``).
    """
    return torch.from_numpy(pool_clips(features, n_steps, duration, feature_rate))


def moments_in_seconds(scores: torch.Tensor, spans: torch.Tensor, duration: float,
                       n_steps: int) -> np.ndarray:
    """One video's (A,) scores and (A, 2) spans in steps -> (A, 3) ``[start_s, end_s, score]``
    (float64, anchor order), step t covering ``[t, t + 1) * duration / n_steps`` seconds."""
    seconds = spans.detach().float().cpu().double().numpy() * (duration / n_steps)  # (A, 2)
    return np.concatenate([seconds, scores.detach().float().cpu().double().numpy()[:, None]], 1)


@dataclass
class FIANOutput:
    """Named outputs of :meth:`FIAN.forward`, anchors in :func:`anchor_layout` order."""

    logits: torch.Tensor  # (B, A) confidence logits: cs = sigmoid(logits)
    offsets: torch.Tensor  # (B, A, 2) boundary offsets (delta_s, delta_e), in steps


@dataclass
class EncodedQuery:
    """The text-only part of FIAN: BiGRU token features h_q and their mask."""

    words: torch.Tensor  # (B, L, d)
    mask: torch.Tensor  # (B, L) bool

    def expand(self, batch: int) -> EncodedQuery:
        """One query repeated for ``batch`` videos."""
        return EncodedQuery(self.words.expand(batch, -1, -1), self.mask.expand(batch, -1))


class FIAN(PretrainedMixin, nn.Module):
    """The FIAN model (see the module docstring)."""

    model_type = "fian"
    config_class = FIANConfig

    def __init__(self, config: FIANConfig):
        super().__init__()
        self.config = c = config
        d = c.hidden_dim
        self.video_fc = nn.Sequential(nn.Linear(c.feature_dim, d), nn.ReLU(),
                                      nn.Dropout(c.dropout))  # "FC ... to reduce the dimension"
        self.video_attention = nn.MultiheadAttention(d, c.heads, dropout=c.dropout,
                                                     batch_first=True)
        self.video_norm = nn.LayerNorm(d)  # residual + LN around the self-attention ([32])
        self.video_gru = BiGRU(d, d)
        self.query_gru = BiGRU(c.token_dim, d)  # Eq. 1-3
        self.branches = nn.ModuleList(IterativeAttention(d, c.heads, first, c.dropout)
                                      for first in c.branches)
        self.integration = VideoEnhancedIntegration(d, len(c.branches), c.max_tokens, c.n_steps)
        self.local_gru = BiGRU(len(c.branches) * d, d)  # M -> M-hat (Sec. 3.4)
        strides = anchor_strides(c.kernels, c.stride_ratio)
        windows = list(zip(c.kernels, strides, strict=True))
        self.score_convs = nn.ModuleList(nn.Conv1d(d, 1, k, s) for k, s in windows)
        self.offset_convs = nn.ModuleList(nn.Conv1d(d, 2, k, s) for k, s in windows)
        anchors = anchor_layout(c.n_steps, c.kernels, c.stride_ratio)
        self.register_buffer("anchors", torch.from_numpy(anchors), persistent=False)

    @property
    def n_anchors(self) -> int:
        """A, the number of candidate moments per video."""
        return int(self.anchors.shape[0])

    def encode_query(self, tokens: torch.Tensor, token_mask: torch.Tensor) -> EncodedQuery:
        """h_q (Eq. 1-3) from (B, L, Dt) token embeddings and (B, L) bool mask, computed once
        per query however many videos it meets.

        Raises:
            ValueError: a query with no tokens, or more than ``max_tokens`` of them.
        """
        if token_mask.ndim != 2 or tokens.shape[:2] != token_mask.shape:
            raise ValueError(f"tokens {tuple(tokens.shape)} and mask {tuple(token_mask.shape)} "
                             f"must be (B, L, Dt) and (B, L)")
        empty = (token_mask.sum(1) == 0).nonzero().flatten().tolist()
        if empty:
            raise ValueError(f"FIAN needs at least one token per query; query {empty[0]} has none")
        if tokens.shape[1] > self.config.max_tokens:
            raise ValueError(f"queries of {tokens.shape[1]} tokens exceed max_tokens "
                             f"{self.config.max_tokens} (Eq. 11 projects a fixed length)")
        return EncodedQuery(self.query_gru(tokens, token_mask), token_mask)

    def encode_video(self, steps: torch.Tensor) -> torch.Tensor:
        """h_v: (B, T, Dv) steps -> FC -> self-attention -> BiGRU -> (B, T, d)."""
        c = self.config
        if steps.ndim != 3 or steps.shape[1:] != (c.n_steps, c.feature_dim):
            raise ValueError(f"video steps must have shape (B, {c.n_steps}, {c.feature_dim}) "
                             f"(see pool_video_steps), got {tuple(steps.shape)}")
        x = self.video_fc(steps * c.clip_scale)  # (B, T, d)
        if c.video_self_attention:
            x = self.video_norm(x + self.video_attention(x, x, x, need_weights=False)[0])
        return self.video_gru(x)  # (B, T, d)

    def localize(self, steps: torch.Tensor, query: EncodedQuery) -> FIANOutput:
        """Scores and offsets of every anchor for (B, T, Dv) steps and an encoded query."""
        video = self.encode_video(steps)
        pairs = [branch(video, query.words, query.mask) for branch in self.branches]
        fused = self.integration([v for v, _ in pairs], [q for _, q in pairs], query.mask)
        sequence = self.local_gru(fused).transpose(1, 2)  # (B, d, T): M-hat
        logits = torch.cat([conv(sequence).squeeze(1) for conv in self.score_convs], 1)  # (B, A)
        offsets = torch.cat([conv(sequence) for conv in self.offset_convs], 2)  # (B, 2, A)
        return FIANOutput(logits=logits, offsets=offsets.transpose(1, 2))

    def forward(self, steps: torch.Tensor, tokens: torch.Tensor, token_mask: torch.Tensor
                ) -> FIANOutput:
        """Every anchor's confidence logit and boundary offsets for each video-query pair.

        Args:
            steps: (B, n_steps, Dv) video steps (see :func:`pool_video_steps`).
            tokens: (B, L, Dt) token embeddings; token_mask: (B, L) bool, True on real tokens.

        Returns:
            :class:`FIANOutput` with logits (B, A) and offsets (B, A, 2).

        Raises:
            ValueError: steps of the wrong shape, an empty query, too many tokens.
        """
        return self.localize(steps, self.encode_query(tokens, token_mask))

    def score_encoded(self, steps: torch.Tensor, query: EncodedQuery
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """Confidence cs (B, A) in [0, 1] and regressed spans (B, A, 2) in steps."""
        out = self.localize(steps, query)
        return torch.sigmoid(out.logits), decode_spans(self.anchors, out.offsets,
                                                       self.config.n_steps)
