"""LPNet: "Natural Language Video Localization with Learnable Moment Proposals" (Xiao et al.,
EMNLP 2021).

Pipeline (paper Fig. 2; details the paper leaves open are settled by the official TensorFlow
code, github.com/xiaoneil/LPNet, and named where they are used):

* feature encoder (Sec. 3.1): the frozen MiniLM token embeddings (the project's offline text
  side; the paper's GloVe vectors are not available here) and the clip features (CLIP), each
  projected to ``hidden_dim``; one shared embedding encoder (QANet, as the official code:
  positional encoding, ``n_conv`` depthwise-separable convolutions of kernel ``kernel``, then
  multi-head self-attention and a feed-forward layer, each pre-LayerNorm with a residual);
  the cross-modal attention layer (Eq. 1-2) -> the fused sequence V^q;
* learnable proposals (Sec. 3.2): ``n_proposals`` boxes, each a centre in [0, 1] and a
  half-width in [0, ``max_half_width``] (the official code draws half-widths in [0, 0.25]), and
  one proposal feature P_i each, MHSA over them -> P~;
* interactive rating layer: temporal RoIAlign (Eq. 3) takes ``n_samples`` = 16 points of V^q
  per proposal by linear interpolation (``sample_proposals``); the dynamic interaction (Eq. 4,
  Sparse R-CNN's dynamic layers as the official ``dynamic_head``); Eq. 5 fuses it with P~ and
  the pooled query Q~; Eq. 6 scores it (s_i = sigmoid(logit_i));
* boundary-aware predictor (Sec. 3.4, Eq. 8-9): a BiLSTM and two feed-forward layers give
  frame-level start and end logits (a training signal only).

Gradient routing (Sec. 3.5): "L_IoU is used to update the parameters of proposal boxes and L
is used to update the rest of network", so the boxes enter the rating layer detached; only the
proposal IoU loss (``train/lpnet_losses.py``) moves them. Where the paper's dynamic adjustor
moves the best proposal, this is the model's boundary adjustment: there are no per-query box
offsets in the paper or the official code, so the answer is the best-rated learned proposal.

Videos are mean-pooled to ``n_clips`` equal segments (never padded); tokens are padded and
masked (convolutions see zeros at padding, attention never reads it). A video with no feature
rows and a query with no tokens are ValueErrors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..data.clips import pool_clips
from ..errors import InputError
from .base import PretrainedMixin
from .layers import run_packed


@dataclass
class LPNetConfig:
    """LPNet sizes (paper Sec. 4.3 / official Charades setup unless noted)."""

    feature_dim: int = 512  # width of the input clip features (CLIP ViT-B/32)
    token_dim: int = 384  # width of the frozen MiniLM token embeddings
    hidden_dim: int = 128  # d (paper: 256; halved for the 2.3k-sentence CLIP split on CPU)
    n_heads: int = 8  # attention heads (official num_heads)
    n_conv: int = 4  # convolutions of the embedding encoder (paper: 4)
    kernel: int = 7  # their kernel size (paper: 7)
    n_clips: int = 64  # T: video segments (official Charades max_position_length: 64)
    n_proposals: int = 100  # k learnable proposals (official code: 100; paper text: 300)
    n_samples: int = 16  # l: RoIAlign length (paper: 16)
    max_half_width: float = 0.25  # half-widths live in [0, this] (official init range)
    dynamic_dim: int = 64  # inner width of the dynamic layers (official: 64)
    dropout: float = 0.1  # (official drop_rate)
    # Multiplies the input clip features (not in the paper): sqrt(512) gives L2-normalised CLIP
    # features unit RMS, so the first layers see more than their biases at init.
    clip_scale: float = 1.0

    def __post_init__(self) -> None:
        if self.hidden_dim % self.n_heads:
            raise InputError(f"hidden_dim {self.hidden_dim} must divide by n_heads "
                             f"{self.n_heads}")
        if self.n_clips < 2 or self.n_samples < 2:
            raise InputError(f"n_clips and n_samples must be >= 2, got {self.n_clips}, "
                             f"{self.n_samples}")
        if not 0 < self.max_half_width <= 0.5:
            raise InputError(f"max_half_width must be in (0, 0.5], got {self.max_half_width}")


def pool_video_clips(features: np.ndarray, n_clips: int, duration: float,
                     feature_rate: float | None = None) -> torch.Tensor:
    """(T, Dv) feature rows -> (n_clips, Dv) float32 clips over equal time spans.

    Raises:
        ValueError: for an empty feature array (see ``data.clips.pool_clips``).
    """
    return torch.from_numpy(pool_clips(features, n_clips, duration, feature_rate))


def proposal_spans(centres: torch.Tensor, half_widths: torch.Tensor) -> torch.Tensor:
    """(k,) centres and half-widths -> (k, 2) [start, end] clamped into [0, 1] (fractions of
    the video; the official code clips starts at 0 with a ReLU)."""
    return torch.stack([centres - half_widths, centres + half_widths], -1).clamp(0.0, 1.0)


def sample_proposals(sequence: torch.Tensor, spans: torch.Tensor, n_samples: int
                     ) -> torch.Tensor:
    """Temporal RoIAlign (Eq. 3) as the official ``tf.image.crop_and_resize``: sample j of a
    span [s, e] sits at index s (T-1) + j (e-s)(T-1)/(n-1), read by linear interpolation.

    Args:
        sequence: (B, T, D) fused sequence; spans: (k, 2) in [0, 1]; n_samples: n >= 2.

    Returns:
        (B, k, n, D) proposal features; differentiable in ``sequence`` and ``spans``.
    """
    last = sequence.shape[1] - 1
    steps = torch.linspace(0, 1, n_samples, device=spans.device, dtype=spans.dtype)  # (n,)
    positions = (spans[:, :1] + steps * (spans[:, 1:] - spans[:, :1])) * last  # (k, n)
    low = positions.detach().floor().clamp(0, max(last - 1, 0)).long()  # (k, n)
    frac = (positions - low).unsqueeze(-1)  # (k, n, 1)
    left = sequence[:, low]  # (B, k, n, D)
    right = sequence[:, (low + 1).clamp(max=last)]
    return left * (1 - frac) + right * frac


def positional_encoding(length: int, dim: int, device: torch.device) -> torch.Tensor:
    """(length, dim) sinusoidal positions (the official code learns them; fixed ones need no
    maximum length)."""
    position = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, device=device).float() * (-math.log(1e4) / dim))
    table = torch.zeros(length, dim, device=device)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq[: dim // 2])
    return table


class EmbeddingEncoder(nn.Module):
    """QANet's embedding encoder block (Sec. 3.1), shared by video and query."""

    def __init__(self, dim: int, n_conv: int, kernel: int, n_heads: int, dropout: float):
        super().__init__()
        self.conv_norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(n_conv))
        self.convs = nn.ModuleList(nn.Sequential(
            nn.Conv1d(dim, dim, kernel, padding=kernel // 2, groups=dim),  # depthwise
            nn.Conv1d(dim, dim, 1), nn.ReLU()) for _ in range(n_conv))
        self.attn_norm = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, n_heads, dropout=dropout, batch_first=True)
        self.ffn_norm = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, L, d) and (B, L) bool mask -> (B, L, d), zero at padding."""
        keep = mask.unsqueeze(-1).to(x.dtype)  # (B, L, 1)
        x = (x + positional_encoding(x.shape[1], x.shape[2], x.device)) * keep
        for norm, conv in zip(self.conv_norms, self.convs, strict=True):
            h = (norm(x) * keep).transpose(1, 2)  # zeros at padding, as at the sequence ends
            x = x + self.drop(conv(h).transpose(1, 2))
        h = self.attn_norm(x)
        h, _ = self.attn(h, h, h, key_padding_mask=~mask, need_weights=False)
        x = x + self.drop(h)
        x = x + self.drop(self.ffn(self.ffn_norm(x)))
        return x * keep


class CrossModalAttention(nn.Module):
    """Eq. 1-2: S (trilinear similarity), A = S_r Q', B = S_r S_c^T V', V^q = FFN([V'; A;
    V' (.) A; V' (.) B])."""

    def __init__(self, dim: int, dropout: float):
        super().__init__()
        self.w_video = nn.Linear(dim, 1)
        self.w_query = nn.Linear(dim, 1, bias=False)
        self.w_both = nn.Parameter(torch.empty(dim).uniform_(-1 / math.sqrt(dim),
                                                             1 / math.sqrt(dim)))
        self.ffn = nn.Sequential(nn.Dropout(dropout), nn.Linear(4 * dim, dim))

    def forward(self, video: torch.Tensor, query: torch.Tensor, query_mask: torch.Tensor
                ) -> torch.Tensor:
        """(B, T, d) video, (B, M, d) query, (B, M) mask -> V^q (B, T, d)."""
        similarity = (self.w_video(video) + self.w_query(query).transpose(1, 2)
                      + torch.bmm(video * self.w_both, query.transpose(1, 2)))  # (B, T, M)
        s_row = similarity.masked_fill(~query_mask[:, None], float("-inf")).softmax(2)
        s_col = similarity.softmax(1)  # over frames (videos are never padded)
        a = torch.bmm(s_row, query)  # (B, T, d), Eq. 1
        b = torch.bmm(torch.bmm(s_row, s_col.transpose(1, 2)), video)  # (B, T, d), Eq. 1
        return self.ffn(torch.cat([video, a, video * a, video * b], -1))  # Eq. 2


class DynamicInteraction(nn.Module):
    """Eq. 4 as the official ``dynamic_head`` (Sparse R-CNN): P~_i generates two layers that act
    on C'_i, whose flattened output W_c maps to d; then LayerNorm(P~_i + that)."""

    def __init__(self, dim: int, n_samples: int, dynamic_dim: int, dropout: float):
        super().__init__()
        self.dim, self.inner = dim, dynamic_dim
        self.params = nn.Linear(dim, 2 * dim * dynamic_dim)  # W_p of Eq. 4
        self.norm1, self.norm2 = nn.LayerNorm(dynamic_dim), nn.LayerNorm(dim)
        self.out = nn.Sequential(nn.Linear(n_samples * dim, dim), nn.LayerNorm(dim), nn.ReLU())
        self.norm_out = nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, samples: torch.Tensor, proposals: torch.Tensor) -> torch.Tensor:
        """(B, k, l, d) samples C' and (k, d) proposal features P~ -> C~ (B, k, d)."""
        d, e = self.dim, self.inner
        params = self.params(proposals)  # (k, 2de)
        first = params[:, : d * e].reshape(-1, d, e)  # (k, d, e)
        second = params[:, d * e:].reshape(-1, e, d)  # (k, e, d)
        x = torch.relu(self.norm1(torch.einsum("bkld,kde->bkle", samples, first)))
        x = torch.relu(self.norm2(torch.einsum("bkle,ked->bkld", x, second)))
        x = self.out(x.flatten(2))  # (B, k, d): Flatten(.) W_c
        return self.norm_out(proposals + self.drop(x))


@dataclass
class EncodedQuery:
    """The text-only part of LPNet: Q' and Q~ of one or more queries."""

    words: torch.Tensor  # (B, M, d) Q'
    mask: torch.Tensor  # (B, M) bool
    pooled: torch.Tensor  # (B, d) Q~

    def expand(self, batch: int) -> EncodedQuery:
        """One query repeated for ``batch`` videos."""
        return EncodedQuery(self.words.expand(batch, -1, -1), self.mask.expand(batch, -1),
                            self.pooled.expand(batch, -1))


@dataclass
class LPNetOutput:
    """Named outputs of :meth:`LPNet.forward`."""

    logits: torch.Tensor  # (B, k) matching logits: s_i = sigmoid(logits), Eq. 6
    start_logits: torch.Tensor  # (B, T) L^s of Eq. 9
    end_logits: torch.Tensor  # (B, T) L^e of Eq. 9
    spans: torch.Tensor  # (k, 2) the proposals, [start, end] fractions (with gradients)


class LPNet(PretrainedMixin, nn.Module):
    """The LPNet model (see the module docstring)."""

    model_type = "lpnet"
    config_class = LPNetConfig

    def __init__(self, config: LPNetConfig):
        super().__init__()
        self.config = c = config
        d = c.hidden_dim
        self.video_proj = nn.Sequential(nn.Dropout(c.dropout), nn.Linear(c.feature_dim, d))
        self.query_proj = nn.Linear(c.token_dim, d)
        self.encoder = EmbeddingEncoder(d, c.n_conv, c.kernel, c.n_heads, c.dropout)
        self.cross = CrossModalAttention(d, c.dropout)
        self.query_pool = nn.Linear(d, 1)  # weights of the pooled query Q~
        # Boxes as unconstrained logits so that they stay in range under any update: centre =
        # sigmoid(raw), half-width = max_half_width x sigmoid(raw); initialised uniform in
        # [0, 1] and [0, max_half_width] as the official code (eps keeps the logits finite).
        u = torch.rand(c.n_proposals, 2).clamp(1e-3, 1 - 1e-3)
        self.proposal_logits = nn.Parameter(torch.log(u) - torch.log1p(-u))  # (k, 2)
        self.proposal_features = nn.Parameter(torch.randn(c.n_proposals, d))  # P
        self.proposal_attn = nn.MultiheadAttention(d, c.n_heads, dropout=c.dropout,
                                                   batch_first=True)
        self.proposal_norm = nn.LayerNorm(d)
        self.interaction = DynamicInteraction(d, c.n_samples, c.dynamic_dim, c.dropout)
        self.fuse = nn.Sequential(nn.Linear(2 * d, d), nn.ReLU(), nn.Dropout(c.dropout))  # Eq. 5
        self.rate = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, 1))  # Eq. 6
        self.boundary_lstm = nn.LSTM(d, d // 2, batch_first=True, bidirectional=True)  # Eq. 8
        self.start_head = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, 1))  # Eq. 9
        self.end_head = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, 1))

    def proposal_boxes(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The (k,) centres in [0, 1] and (k,) half-widths in [0, max_half_width]."""
        centres = torch.sigmoid(self.proposal_logits[:, 0])
        return centres, self.config.max_half_width * torch.sigmoid(self.proposal_logits[:, 1])

    def spans(self) -> torch.Tensor:
        """The (k, 2) learned proposals as [start, end] fractions of a video."""
        return proposal_spans(*self.proposal_boxes())

    def encode_query(self, tokens: torch.Tensor, token_mask: torch.Tensor) -> EncodedQuery:
        """Q' and Q~ from (B, M, Dt) tokens and a (B, M) bool mask; computed once per query
        however many videos it meets.

        Raises:
            ValueError: mismatched shapes or a query with no tokens.
        """
        if token_mask.ndim != 2 or tokens.shape[:2] != token_mask.shape:
            raise ValueError(f"tokens {tuple(tokens.shape)} and mask {tuple(token_mask.shape)} "
                             f"must be (B, M, Dt) and (B, M)")
        empty = (token_mask.sum(1) == 0).nonzero().flatten().tolist()
        if empty:
            raise ValueError(f"LPNet needs at least one token per query; query {empty[0]} has "
                             f"none")
        words = self.encoder(self.query_proj(tokens), token_mask)  # (B, M, d)
        weights = self.query_pool(words).squeeze(-1).masked_fill(~token_mask, float("-inf"))
        pooled = torch.bmm(weights.softmax(-1)[:, None], words).squeeze(1)  # (B, d)
        return EncodedQuery(words, token_mask, pooled)

    def fused_sequence(self, clips: torch.Tensor, query: EncodedQuery) -> torch.Tensor:
        """V^q (B, T, d) of Eq. 2 from (B, T, Dv) clips and an encoded query."""
        c = self.config
        if clips.ndim != 3 or clips.shape[1:] != (c.n_clips, c.feature_dim):
            raise ValueError(f"video clips must have shape (B, {c.n_clips}, {c.feature_dim}) "
                             f"(see pool_video_clips), got {tuple(clips.shape)}")
        video_mask = torch.ones(clips.shape[:2], dtype=torch.bool, device=clips.device)
        video = self.encoder(self.video_proj(clips * c.clip_scale), video_mask)
        return self.cross(video, query.words, query.mask)

    def rate_proposals(self, fused: torch.Tensor, query: EncodedQuery, spans: torch.Tensor
                       ) -> torch.Tensor:
        """Eq. 3-6: (B, k) matching logits of the proposals ``spans`` (k, 2)."""
        p = self.proposal_features[None]  # (1, k, d)
        attended, _ = self.proposal_attn(p, p, p, need_weights=False)
        proposals = self.proposal_norm(p + attended)[0]  # (k, d): P~
        samples = sample_proposals(fused, spans, self.config.n_samples)  # (B, k, l, d): C'
        interacted = self.interaction(samples, proposals)  # (B, k, d): C~
        pooled = query.pooled[:, None].expand(-1, interacted.shape[1], -1)  # (B, k, d)
        fused_pair = self.fuse(torch.cat([interacted + proposals, pooled], -1))  # Eq. 5
        return self.rate(fused_pair).squeeze(-1)  # Eq. 6 before the sigmoid

    def boundaries(self, fused: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Eq. 8-9: (B, T) start and end logits from V^q."""
        mask = torch.ones(fused.shape[:2], dtype=torch.bool, device=fused.device)
        hidden = run_packed(self.boundary_lstm, fused, mask)  # (B, T, d)
        return self.start_head(hidden).squeeze(-1), self.end_head(hidden).squeeze(-1)

    def localize(self, clips: torch.Tensor, query: EncodedQuery) -> LPNetOutput:
        """Every proposal's logit and the boundary logits for (B, T, Dv) clips."""
        fused = self.fused_sequence(clips, query)
        spans = self.spans()
        logits = self.rate_proposals(fused, query, spans.detach())  # L never moves the boxes
        start, end = self.boundaries(fused)
        return LPNetOutput(logits=logits, start_logits=start, end_logits=end, spans=spans)

    def forward(self, clips: torch.Tensor, tokens: torch.Tensor, token_mask: torch.Tensor
                ) -> LPNetOutput:
        """Matching logits of the k proposals and frame-level boundary logits per pair.

        Args:
            clips: (B, n_clips, Dv) video clips (see :func:`pool_video_clips`).
            tokens: (B, M, Dt) token embeddings; token_mask: (B, M) bool, True on real tokens.

        Raises:
            ValueError: clips of the wrong shape, an empty query.
        """
        return self.localize(clips, self.encode_query(tokens, token_mask))

    def score_encoded(self, clips: torch.Tensor, query: EncodedQuery
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, k) scores s_i (Eq. 6) and the (k, 2) proposals as fractions of the video."""
        fused = self.fused_sequence(clips, query)
        spans = self.spans()
        return torch.sigmoid(self.rate_proposals(fused, query, spans)), spans

    def moments(self, scores: torch.Tensor, spans: torch.Tensor, duration: float
                ) -> np.ndarray:
        """One video's proposals (k,) scores, (k, 2) spans -> (k, 3) float64 ``[start_s,
        end_s, score]``, best first."""
        order = scores.argsort(descending=True)
        seconds = spans[order].detach().double().cpu().numpy() * duration
        return np.concatenate([seconds, scores[order].detach().double().cpu().numpy()[:, None]],
                              1)
