"""Building blocks of FIAN ("Fine-grained Iterative Attention Network", Qu et al., ACM MM 2020).

Each block is one piece of the paper's Sec. 3.2-3.3, usable and testable alone:

* :class:`BiGRU`: a bi-directional GRU whose two directions are concatenated (Eq. 1-3);
* :class:`CrossModalGuidedAttention`: CMA (multi-head attention, Eq. 4-5) under the information
  gate (Eq. 6), the CGA;
* :class:`CrossModalEncoder`: FFN(CGA(Q, V)) with the shortcuts and LayerNorms the paper omits
  from its equations (Eq. 7-8);
* :class:`IterativeAttention`: one branch of the symmetrical iterative attention (Eq. 9 or 10);
* :class:`VideoEnhancedIntegration`: the query projected to the video's length, concatenated
  and gated into the video (Eq. 11-14).

Shapes: B pairs, T video steps, L query tokens, d the hidden width. Masks are bool, True on real
positions; attention never reads a padded token, and padded token rows are zeroed wherever they
could leak (the length projection of Eq. 11), so padding changes no output.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .layers import run_packed


class BiGRU(nn.Module):
    """Bi-directional GRU, ``dim // 2`` units per direction, so [h^f; h^b] is ``dim`` wide.

    The paper sets "hidden dimension of all bi-directional GRUs" to 512 and uses d_h = 512 for
    the features they produce; halving each direction keeps the concatenation at d_h (our
    reading: a 2 x 512 = 1024-wide output would contradict d_h elsewhere).
    """

    def __init__(self, in_dim: int, dim: int):
        super().__init__()
        if dim % 2:
            raise ValueError(f"a BiGRU width must be even (two directions), got {dim}")
        self.gru = nn.GRU(in_dim, dim // 2, batch_first=True, bidirectional=True)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, N, D_in) and optional (B, N) bool mask -> (B, N, dim), zero on padding."""
        if mask is None:
            return self.gru(x)[0]
        return run_packed(self.gru, x, mask)


class CrossModalGuidedAttention(nn.Module):
    """CGA(Q, V) (Eq. 4-6): multi-head cross-modal attention from Q to V, then the gate.

    Eq. 4-5 are the standard multi-head scaled dot-product attention (per-head W^Q, W^K, W^V of
    width d/n, concatenation, W^O), which ``nn.MultiheadAttention`` computes. Eq. 6 is the
    information gate of Attention-on-Attention (their ref. [14]): i = W_q^i Q + W_v^i CMA + b^i,
    g = sigmoid(W_q^g Q + W_v^g CMA + b^g), output g * i. The paper says it keeps
    W^g = W^i "by sharing projection weights"; read literally, the gate and the information
    would differ only by a bias. AoA's own code computes both from [Q; CMA] with one linear
    layer of width 2d followed by a GLU, i.e. one *shared projection* holding both weight sets;
    that is what we take the sentence to mean, and what is implemented here.
    """

    def __init__(self, dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        if dim % heads:
            raise ValueError(f"hidden width {dim} must divide into {heads} heads")
        self.cma = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.gate = nn.Linear(2 * dim, 2 * dim)

    def forward(self, query: torch.Tensor, value: torch.Tensor, value_mask: torch.Tensor | None
                ) -> torch.Tensor:
        """(B, Nq, d) queries attend to (B, Nv, d) values ((B, Nv) mask) -> (B, Nq, d)."""
        padding = None if value_mask is None else ~value_mask
        attended, _ = self.cma(query, value, value, key_padding_mask=padding,
                               need_weights=False)  # (B, Nq, d): CMA, Eq. 5
        return F.glu(self.gate(torch.cat([query, attended], -1)), dim=-1)  # Eq. 6


class CrossModalEncoder(nn.Module):
    """Encoder(Q, V) = FFN(CGA(Q, V)) (Eq. 7-8): the "Q-V encoder", a V-aware Q.

    The paper writes the feed-forward form and says it omits "the internal shortcut connection
    and layer normalization" from the equations, i.e. the encoder has them as a Transformer
    encoder layer does: X = LN(Q + CGA(Q, V)), output LN(X + FFN(X)). The FFN's inner width is
    2d (the paper gives none; a Transformer's 4d doubles the cost for no gain at our sizes).
    """

    def __init__(self, dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        self.cga = CrossModalGuidedAttention(dim, heads, dropout)
        self.norm1 = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, 2 * dim), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(2 * dim, dim))  # Eq. 7
        self.norm2 = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, query: torch.Tensor, value: torch.Tensor, value_mask: torch.Tensor | None
                ) -> torch.Tensor:
        """(B, Nq, d) query side, (B, Nv, d) value side and its mask -> (B, Nq, d)."""
        x = self.norm1(query + self.dropout(self.cga(query, value, value_mask)))
        return self.norm2(x + self.dropout(self.ffn(x)))


class IterativeAttention(nn.Module):
    """One branch of the symmetrical iterative attention (Fig. 3; Eq. 9 and 10).

    With ``first="query"`` (query-video, Eq. 9): Q1 = Encoder(Q, V), V1 = Encoder(V, Q1).
    With ``first="video"`` (video-query, Eq. 10): V2 = Encoder(V, Q), Q2 = Encoder(Q, V2).
    Returns ``(video_side, query_side)`` either way. The two encoders of a branch do not share
    weights (the paper draws them as separate blocks); the two branches share none either
    ("two sub-modules sharing same architecture but reverse input").
    """

    def __init__(self, dim: int, heads: int, first: str, dropout: float = 0.0):
        super().__init__()
        if first not in ("query", "video"):
            raise ValueError(f"first must be 'query' or 'video', got {first!r}")
        self.first = first
        self.step1 = CrossModalEncoder(dim, heads, dropout)
        self.step2 = CrossModalEncoder(dim, heads, dropout)

    def forward(self, video: torch.Tensor, query: torch.Tensor, query_mask: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, d) video, (B, L, d) query, (B, L) mask -> ((B, T, d), (B, L, d))."""
        if self.first == "query":
            query_out = self.step1(query, video, None)  # Q^(1) = Encoder(Q, V)
            return self.step2(video, query_out, query_mask), query_out  # V^(1) = Enc(V, Q^(1))
        video_out = self.step1(video, query, query_mask)  # V^(2) = Encoder(V, Q)
        return video_out, self.step2(query, video_out, None)  # Q^(2) = Encoder(Q, V^(2))


class LengthProjection(nn.Module):
    """Eq. 11: Q-hat = W Q + b with W of shape (n_v, n_q): a linear map along the token axis.

    It needs a fixed n_q, so queries are zero-padded to ``max_tokens`` rows (padded rows are
    zeroed first, so they add nothing). The paper gives b in R^{n_q}, which cannot be added to
    an (n_v, d) result; the bias here is per video step, (n_v, 1), broadcast over channels.
    """

    def __init__(self, max_tokens: int, n_steps: int):
        super().__init__()
        self.max_tokens = max_tokens
        self.weight = nn.Parameter(torch.empty(n_steps, max_tokens))
        self.bias = nn.Parameter(torch.zeros(n_steps, 1))
        nn.init.xavier_uniform_(self.weight)

    def forward(self, query: torch.Tensor, query_mask: torch.Tensor) -> torch.Tensor:
        """(B, L, d) query and (B, L) mask, L <= max_tokens -> (B, n_v, d)."""
        query = query * query_mask[..., None].to(query.dtype)  # padded rows contribute nothing
        query = F.pad(query, (0, 0, 0, self.max_tokens - query.shape[1]))  # (B, n_q, d)
        return torch.einsum("vq,bqd->bvd", self.weight, query) + self.bias


class VideoEnhancedIntegration(nn.Module):
    """Eq. 11-14: M = LayerNorm(V-hat + r * Q-hat), r = sigmoid(Q-hat W^r + b^r).

    V-hat = [V^(1), V^(2)] and Q-hat = [Q-hat^(1), Q-hat^(2)] are concatenated along channels
    ("by column"), so M is 2d wide. With one branch (the ablation), V-hat and Q-hat hold that
    branch only and M is d wide.
    """

    def __init__(self, dim: int, branches: int, max_tokens: int, n_steps: int):
        super().__init__()
        self.projections = nn.ModuleList(LengthProjection(max_tokens, n_steps)
                                         for _ in range(branches))
        self.filter = nn.Linear(branches * dim, branches * dim)  # W^r, b^r of Eq. 13
        self.norm = nn.LayerNorm(branches * dim)

    def forward(self, videos: list[torch.Tensor], queries: list[torch.Tensor],
                query_mask: torch.Tensor) -> torch.Tensor:
        """Per branch (B, T, d) video and (B, L, d) query, (B, L) mask -> (B, T, branches*d)."""
        video_hat = torch.cat(videos, -1)  # Eq. 12
        query_hat = torch.cat([project(q, query_mask)
                               for project, q in zip(self.projections, queries, strict=True)], -1)
        gate = torch.sigmoid(self.filter(query_hat))  # r, Eq. 13
        return self.norm(video_hat + gate * query_hat)  # M, Eq. 14
