"""Building blocks of PLN ("Progressive Localization Networks", Zheng et al., 2021).

Each block is one piece of the paper's Sec. III, usable and testable alone:

* :class:`SentenceEncoder`: the stacked LSTM whose top layer's last hidden state is f_s;
* :class:`QueryFusion`: FC on the 2D map and on f_s, Hadamard product (F^t);
* :class:`ConditionalFeatureManipulation`: Eq. 4-5, clip features rescaled under H^{t-1};
* :class:`UpsamplingConnection`: n blocks of (x2 upsampling, two 3x3 convs) bringing H^{t-1}
  to the size of stage t (the "upsample" of Eq. 2);
* :class:`MapConvNet`: the ConvNet shared by all stages (two 5x5 conv + ReLU layers), giving H^t;
* :func:`masked_map_max` and :func:`upsample_map`: the pooling and nearest upsampling they use.

Every 2D map is (B, C, N, N), cell (i, j) the moment of clips i..j; cells outside the proposal
mask are kept at zero after every layer, as 2D-TAN (the paper's component localizer) does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .layers import last_valid, run_packed


def masked_map_max(map2d: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Max over the proposal cells of a 2D map: (B, C, N, N), (N, N) bool -> (B, C).

    Padding cells (``mask`` False) never win, whatever their value.
    """
    hidden = map2d.masked_fill(~mask, float("-inf"))  # (B, C, N, N)
    return hidden.flatten(2).amax(-1)  # (B, C)


def upsample_map(map2d: torch.Tensor, factor: int) -> torch.Tensor:
    """Nearest upsampling of the last two axes by ``factor``: (..., N, N) -> (..., fN, fN).

    Fine cell (a, b) takes coarse cell (a // f, b // f): with coarse clip k covering fine clips
    k*f .. k*f + f - 1, that is the smallest coarse moment containing the fine one.
    """
    if factor == 1:
        return map2d
    return map2d.repeat_interleave(factor, -2).repeat_interleave(factor, -1)


def upper_triangle(n: int, device: torch.device) -> torch.Tensor:
    """(n, n) bool, True where i <= j: every cell that is a moment on the dense grid."""
    return torch.ones(n, n, dtype=torch.bool, device=device).triu()


class SentenceEncoder(nn.Module):
    """f_s: a stacked LSTM over the word features, its top layer's last hidden state (Sec. III-A).

    The paper feeds GloVe vectors to a three-layer LSTM of 512 units; here the words are frozen
    MiniLM token embeddings, as in the rest of the project (see ``text/tokens.py``).
    """

    def __init__(self, token_dim: int, hidden_dim: int, layers: int, dropout: float = 0.0):
        super().__init__()
        self.lstm = nn.LSTM(token_dim, hidden_dim, num_layers=layers, batch_first=True,
                            dropout=dropout if layers > 1 else 0.0)

    def forward(self, tokens: torch.Tensor, token_mask: torch.Tensor) -> torch.Tensor:
        """(B, L, Dt) tokens and (B, L) bool mask -> (B, H) sentence features f_s."""
        words = run_packed(self.lstm, tokens, token_mask)  # (B, L, H)
        return last_valid(words, token_mask)  # (B, H)


class QueryFusion(nn.Module):
    """F^t: the moment map and f_s, each through an FC layer, fused by a Hadamard product.

    The FC on the map is a 1x1 convolution (the same FC on every cell). As in 2D-TAN, whose
    fusion PLN adopts, the product is L2-normalised over channels and re-masked; the paper does
    not mention the normalisation, but its authors built on 2D-TAN's code, which has it.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.moment_fc = nn.Conv2d(dim, dim, 1)
        self.query_fc = nn.Linear(dim, dim)

    def forward(self, map2d: torch.Tensor, query: torch.Tensor, weight: torch.Tensor
                ) -> torch.Tensor:
        """(B, C, N, N) map M^t, (B, C) f_s, (N, N) float mask -> (B, C, N, N) F^t."""
        fused = self.moment_fc(map2d) * self.query_fc(query)[:, :, None, None]  # (B, C, N, N)
        return F.normalize(fused, dim=1) * weight


class ConditionalFeatureManipulation(nn.Module):
    """CFM (Eq. 4-5): rescale each clip feature under the guidance of the previous stage.

    h^{t-1} is the max over H^{t-1}'s proposal cells; a_i = sigmoid(W_r (h^{t-1} * c_i) + b_r)
    and c-bar_i = c_i * a_i. The paper writes a_i in R^{d^s}; the Hadamard products need
    h^{t-1}, c_i and a_i to share one width, which they do here (and with d^s = d^v = 512 in
    the paper's implementation details).
    """

    def __init__(self, dim: int):
        super().__init__()
        self.fc = nn.Linear(dim, dim)

    def forward(self, clips: torch.Tensor, previous: torch.Tensor, previous_mask: torch.Tensor
                ) -> torch.Tensor:
        """(B, N, C) clips C^t, (B, C, M, M) H^{t-1} and its (M, M) mask -> (B, N, C) C-bar^t."""
        guide = masked_map_max(previous, previous_mask)  # (B, C): h^{t-1}
        scale = torch.sigmoid(self.fc(clips * guide[:, None]))  # (B, N, C): a_i, Eq. 4
        return clips * scale  # Eq. 5


class UpsampleBlock(nn.Module):
    """x2 nearest upsampling, then two 3x3 conv + ReLU layers, re-masked to i <= j after each.

    The paper does not name the upsampling mode nor the activations; nearest keeps each fine
    moment aligned with the coarse moment that contains it (see :func:`upsample_map`), and a
    ReLU after each convolution matches the rest of the network.
    """

    def __init__(self, dim: int, kernel_size: int = 3):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2)
                                   for _ in range(2))

    def forward(self, map2d: torch.Tensor) -> torch.Tensor:
        """(B, C, N, N) -> (B, C, 2N, 2N)."""
        map2d = upsample_map(map2d, 2)  # (B, C, 2N, 2N)
        weight = upper_triangle(map2d.shape[-1], map2d.device).to(map2d.dtype)
        for conv in self.convs:
            map2d = torch.relu(conv(map2d)) * weight
        return map2d


class UpsamplingConnection(nn.Module):
    """UC: n = log2(N^t / N^{t-1}) stacked :class:`UpsampleBlock` s (n = 0 is the identity).

    Raises:
        ValueError: if ``factor`` is not a power of two (1, 2, 4, ...).
    """

    def __init__(self, dim: int, factor: int, kernel_size: int = 3):
        super().__init__()
        if factor < 1 or factor & (factor - 1):
            raise ValueError(f"the upsampling connection needs N^t / N^(t-1) to be a power of "
                             f"two, got {factor}")
        self.factor = factor
        self.blocks = nn.ModuleList(UpsampleBlock(dim, kernel_size)
                                    for _ in range(factor.bit_length() - 1))

    def forward(self, map2d: torch.Tensor) -> torch.Tensor:
        """(B, C, M, M) H^{t-1} -> (B, C, factor*M, factor*M)."""
        for block in self.blocks:
            map2d = block(map2d)
        return map2d


class MapConvNet(nn.Module):
    """The ConvNet of every stage (shared in the paper): conv + ReLU layers, each re-masked."""

    def __init__(self, dim: int, kernel_size: int = 5, layers: int = 2):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2)
                                   for _ in range(layers))

    def forward(self, map2d: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """(B, C, N, N) G^t and (N, N) float mask -> (B, C, N, N) H^t."""
        for conv in self.convs:
            map2d = torch.relu(conv(map2d)) * weight
        return map2d
