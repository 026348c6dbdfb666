"""What every trained reranker shares: a model whose ``encode_query`` reads MiniLM token
embeddings, the token encoder, the NMS threshold, feature rate and fusion weight stored with the
checkpoint, and loading from a checkpoint directory (default: the shipped one)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..device import resolve_device
from ..pretrained import default_model_dir
from ..text.tokens import TokenEncoder
from .rerank import DEFAULT_FUSION_WEIGHT, stored_fusion_weight


class TokenReranker:
    """Base of the PLN, FIAN, DRN and LPNet rerankers."""

    name = ""  # the model type (registry key): its shipped checkpoint
    model_class: type = object  # the model class: read_config / from_pretrained
    default_nms = 0.5

    def __init__(self, model, tokens: TokenEncoder, nms_threshold: float | None = None,
                 feature_rate: float | None = None,
                 fusion_weight: float = DEFAULT_FUSION_WEIGHT):
        self.model = model
        self.tokens = tokens
        self.nms_threshold = self.default_nms if nms_threshold is None else nms_threshold
        self.feature_rate = feature_rate  # used for videos that carry none (training's rate)
        self.fusion_weight = fusion_weight  # the cascade's w when the caller gives none

    @torch.inference_mode()
    def encode_text(self, text: str):
        """TE: MiniLM token embeddings -> the model's query encoder.

        Raises:
            ValueError: an empty or blank sentence.
        """
        device = next(self.model.parameters()).device
        batch = self.tokens.encode([text])
        return self.model.encode_query(batch.embeddings.to(device), batch.mask.to(device))

    def score_videos(self, text: str, videos: list) -> list[np.ndarray]:
        """Per video, (K, 3) ``[start_s, end_s, score]`` of its candidates (see each model's
        ``score_encoded``): TE once, then CML over the videos."""
        return self.score_encoded(self.encode_text(text), videos) if videos else []

    @classmethod
    def load(cls, model_dir: Path | None, device: str = "auto"):
        """The reranker from ``model_dir`` (default: the shipped checkpoint), with its stored
        settings (max_tokens, nms_threshold, feature_rate, fusion_weight).

        Raises:
            FileNotFoundError: no ``model_dir`` and no shipped checkpoint of this model.
        """
        directory = model_dir or default_model_dir(cls.name)
        config, extra = cls.model_class.read_config(directory)
        torch_device = resolve_device(device)
        max_tokens = int(extra.get("max_tokens", getattr(config, "max_tokens", 32)))
        tokens = TokenEncoder(device=torch_device, max_length=max_tokens)
        return cls(cls.model_class.from_pretrained(directory, torch_device), tokens,
                   float(extra.get("nms_threshold", cls.default_nms)), extra.get("feature_rate"),
                   stored_fusion_weight(extra), **cls.stored_settings(extra))

    @classmethod
    def stored_settings(cls, extra: dict) -> dict:
        """Keyword arguments of this model's own that its checkpoint stores (none here)."""
        return {}
