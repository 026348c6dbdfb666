"""The whole query side of an FVMR checkpoint as one torch module that exports to ONNX.

``QueryEncoder`` (PyTorch) runs MiniLM through transformers, drops [CLS]/[SEP], packs the tokens
for FVMR's BiLSTM and appends the corpus terms. :class:`TextSide` computes the same vectors from
the tokenizer's output alone, with only operators that ``torch.onnx.export`` turns into plain ONNX:
packed sequences do not export, so the backward direction of each BiLSTM layer runs over the
tokens reversed within each sentence's length (exactly what packing computes; checked against
``run_packed`` in the tests).

Inputs (all int64, right-padded, B sentences of at most T word pieces incl. [CLS]/[SEP]):
``input_ids`` (B, T), ``attention_mask`` (B, T), ``token_index`` (B, L) the positions of the
sentence's own word pieces (special tokens dropped), ``token_mask`` (B, L) 1 on real entries.
Output: ``queries`` (B, embedding_dim) float32, the search vectors.
"""

from __future__ import annotations

import torch
from torch import nn

from ..models.fvmr import FVMR

INPUT_NAMES = ("input_ids", "attention_mask", "token_index", "token_mask")
OUTPUT_NAME = "queries"


def reverse_within(sequence: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each row's first ``lengths[b]`` steps, leaving the padding where it is.

    Args:
        sequence: (B, L, D); lengths: (B,) int64 in [1, L].

    Returns:
        (B, L, D) with row b's steps 0..len-1 in reverse order.
    """
    steps = torch.arange(sequence.shape[1], device=sequence.device)[None]  # (1, L)
    last = lengths[:, None] - 1  # (B, 1)
    order = torch.where(steps <= last, last - steps, steps)  # (B, L)
    return torch.gather(sequence, 1, order[..., None].expand(-1, -1, sequence.shape[2]))


class PaddedBiLSTM(nn.Module):
    """A bidirectional, batch-first ``nn.LSTM`` rebuilt as unidirectional one-layer LSTMs that run
    on right-padded batches: the forward direction never sees the padding (it comes last) and the
    backward one runs over each sentence reversed within its length."""

    def __init__(self, lstm: nn.LSTM):
        super().__init__()
        if not (lstm.bidirectional and lstm.batch_first):
            raise ValueError("PaddedBiLSTM rebuilds a bidirectional batch-first LSTM")
        self.forward_layers = nn.ModuleList()
        self.backward_layers = nn.ModuleList()
        for layer in range(lstm.num_layers):
            self.forward_layers.append(_one_direction(lstm, layer, ""))
            self.backward_layers.append(_one_direction(lstm, layer, "_reverse"))

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, L, D_in) right-padded tokens, (B,) lengths -> (B, L, 2H) (padding rows: garbage)."""
        hidden = tokens
        for ahead, behind in zip(self.forward_layers, self.backward_layers, strict=True):
            forward_out, _ = ahead(hidden)  # (B, L, H)
            backward_out, _ = behind(reverse_within(hidden, lengths))
            hidden = torch.cat([forward_out, reverse_within(backward_out, lengths)], -1)
        return hidden


def _one_direction(lstm: nn.LSTM, layer: int, suffix: str) -> nn.LSTM:
    """Layer ``layer`` of ``lstm`` in one direction as its own one-layer LSTM (weights copied)."""
    width = lstm.hidden_size * 2 if layer else lstm.input_size
    single = nn.LSTM(width, lstm.hidden_size, batch_first=True)
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        source = getattr(lstm, f"{name}_l{layer}{suffix}")
        getattr(single, f"{name}_l0").data.copy_(source.data)
    return single.eval()


class TextSide(nn.Module):
    """Tokenizer output -> MiniLM -> FVMR's query vector with its corpus terms (eval only).

    Args:
        transformer: the MiniLM ``AutoModel`` (BERT) the checkpoint's tokens come from.
        model: the FVMR checkpoint (with or without corpus terms).
    """

    def __init__(self, transformer: nn.Module, model: FVMR):
        super().__init__()
        self.transformer = transformer
        self.lstm = PaddedBiLSTM(model.lstm)
        self.phi_s = model.phi_s
        self.video_text = model.video_text
        self.video_weight = float(model.config.video_weight)
        self.hub_column = model.constant_column  # the query side's constant 1
        self.padding = model.embedding_dim - model._unpadded_dim
        self.eval()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_index: torch.Tensor, token_mask: torch.Tensor) -> torch.Tensor:
        """See the module docstring; returns (B, embedding_dim)."""
        hidden = self.transformer(input_ids=input_ids,
                                  attention_mask=attention_mask).last_hidden_state  # (B, T, Dt)
        tokens = torch.gather(hidden, 1, token_index[..., None].expand(-1, -1, hidden.shape[2]))
        weight = token_mask.to(tokens.dtype)[..., None]  # (B, L, 1)
        tokens = tokens * weight  # (B, L, Dt), zero on padding as TokenEncoder pads
        lengths = token_mask.sum(1).clamp(min=1)  # (B,)
        words = self.lstm(tokens, lengths)  # (B, L, H)
        last = torch.gather(words, 1, (lengths - 1)[:, None, None].expand(-1, 1, words.shape[2]))
        queries = self.phi_s(words[:, 0] + last[:, 0])  # (B, D)
        parts = [queries]
        if self.video_text is not None:
            pooled = (tokens * weight).sum(1) / weight.sum(1).clamp(min=1e-6)  # (B, Dt)
            parts.append(self.video_text.encode_sentences(pooled) * self.video_weight ** 0.5)
        if self.hub_column:
            parts.append(torch.ones_like(queries[:, :1]))
        if self.padding:
            parts.append(torch.zeros_like(queries[:, :1]).expand(-1, self.padding))
        return torch.cat(parts, -1)
