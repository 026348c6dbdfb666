"""Layers shared by the models: MLP heads, the 2D-map conv stack, gated convolution, text RNNs."""

from __future__ import annotations

import torch
from torch import nn


class MLP(nn.Module):
    """Linear -> ReLU -> Dropout -> Linear: the one-hidden-layer transforms phi of FVMR."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, dropout: float = 0.0):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden_dim), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden_dim, out_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., in_dim) -> (..., out_dim)."""
        return self.net(x)


class MapConvStack(nn.Module):
    """Conv -> BatchNorm -> tanh layers over a 2D temporal map, re-masked after each layer.

    Cells outside the proposal mask are zeroed after every layer (as 2D-TAN does) so that
    padding cells never leak into proposal features.
    """

    def __init__(self, channels: int, kernel_sizes: tuple[int, ...]):
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Sequential(nn.Conv2d(channels, channels, k, padding=k // 2),
                          nn.BatchNorm2d(channels), nn.Tanh())
            for k in kernel_sizes
        )

    def forward(self, map2d: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, C, N, N) map and (N, N) bool mask -> (B, C, N, N)."""
        weight = mask.to(map2d.dtype)
        for layer in self.layers:
            map2d = layer(map2d) * weight
        return map2d


class GatedConv2d(nn.Module):
    """Gated convolution (Yu et al., free-form inpainting): conv(x) * sigmoid(gate_conv(x))."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int):
        super().__init__()
        self.feature = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        self.gate = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) -> (B, C_out, H, W)."""
        return self.feature(x) * torch.sigmoid(self.gate(x))


def run_packed(rnn: nn.RNNBase, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Run a batch-first RNN over padded sequences, ignoring padding.

    Args:
        rnn: an LSTM/GRU with ``batch_first=True``.
        tokens: (B, L, D_in) token features.
        mask: (B, L) bool, True on real tokens; every row has at least one.

    Returns:
        (B, L, D_out) outputs, zero on padding.
    """
    lengths = mask.sum(1).clamp(min=1).cpu()
    packed = nn.utils.rnn.pack_padded_sequence(tokens, lengths, batch_first=True,
                                               enforce_sorted=False)
    output, _ = rnn(packed)
    padded, _ = nn.utils.rnn.pad_packed_sequence(output, batch_first=True,
                                                 total_length=tokens.shape[1])
    return padded


def last_valid(sequence: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, L, D) outputs and (B, L) mask -> (B, D) output at each row's last real token."""
    last = mask.sum(1).clamp(min=1) - 1  # (B,)
    return sequence[torch.arange(sequence.shape[0], device=sequence.device), last]


def masked_mean(sequence: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted average over L: (B, L, D) and (B, K, L) weights -> (B, K, D); zero rows stay 0."""
    total = weights.sum(-1, keepdim=True).clamp(min=1e-6)  # (B, K, 1)
    return torch.bmm(weights, sequence) / total
