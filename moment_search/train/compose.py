"""Compose a search checkpoint: a trained FVMR plus the corpus terms (see ``FVMRConfig``).

* the video-level relevance model (``models.video_text``, trained apart), weighted by beta;
* the hub correction: b_v, the mean over a bank of training sentences of a video's best fused
  score, subtracted with weight gamma. Videos that score high for every sentence (hubs, which
  otherwise fill the top 10 of unrelated queries) are pulled down by how high they score for
  sentences in general. The bank's query vectors are stored in the checkpoint, so the indexer
  computes b_v per video with no other input, and one inner product still ranks the corpus.

What we chose and why: the corpus terms live in the search vectors (appended dimensions), not in a
second index or a re-scoring pass, so the index stays one FAISS inner-product search and every
index kind (flat, IVF, PQ, HNSW) serves the fused score unchanged.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from ..data.corpus_dir import open_corpus
from ..errors import InputError
from ..models.fvmr import FVMR
from ..models.video_text import VideoText
from ..text.tokens import TokenEncoder


def bank_sentences(data_dir: str | Path, split: str, size: int, seed: int) -> list[str]:
    """``size`` distinct sentences of ``split``, drawn with a seeded generator."""
    corpus, _ = open_corpus(data_dir, split=split)
    texts = sorted({q.text for q in corpus.queries})
    if size > len(texts):
        raise InputError(f"hub bank of {size} sentences asked for, {split!r} has {len(texts)}")
    picks = np.random.default_rng(seed).choice(len(texts), size, replace=False)
    return [texts[i] for i in sorted(picks)]


def compose(fvmr_dir: str | Path, out_dir: str | Path, video_text_dir: str | Path | None = None,
            video_weight: float = 0.0, hub_weight: float = 0.0, hub_bank: int = 0,
            data_dir: str | Path | None = None, split: str = "train", seed: int = 0) -> Path:
    """Write FVMR + corpus terms as one checkpoint in ``out_dir``.

    Args:
        fvmr_dir: a trained FVMR checkpoint (its own corpus terms, if any, are replaced).
        video_text_dir: a trained ``VideoText`` checkpoint, or None for no video term.
        video_weight: beta. hub_weight: gamma. hub_bank: bank size (0: no hub correction).
        data_dir, split: where the bank sentences come from (needed when ``hub_bank`` > 0).
        seed: the bank draw.

    Raises:
        InputError: a negative weight, or a bank without ``data_dir``.
    """
    if video_weight < 0 or hub_weight < 0:
        raise InputError(f"weights must be >= 0, got beta={video_weight}, gamma={hub_weight}")
    if hub_bank and data_dir is None:
        raise InputError("a hub bank needs data_dir (its sentences come from the training split)")
    if video_weight > 0 and video_text_dir is None:
        raise InputError(f"a video weight ({video_weight}) needs a video-text checkpoint")
    config, extra = FVMR.read_config(fvmr_dir)
    base = FVMR.from_pretrained(fvmr_dir)
    video, video_extra = None, {}
    if video_text_dir:
        video = VideoText.from_pretrained(video_text_dir)
        video_extra = VideoText.read_config(video_text_dir)[1]
        check_video_text(video, video_text_dir, video_extra, config)
    config = dataclasses.replace(
        config, video_text=dataclasses.asdict(video.config) if video else None,
        video_weight=video_weight if video else 0.0, hub_weight=hub_weight, hub_bank=hub_bank,
        # a prior and a one-video scale were chosen for the old terms: choose them again
        cell_prior=False, one_video_text_scale=1.0)
    model = FVMR(config).eval()
    fast_path = {k: v for k, v in base.state_dict().items()
                 if not k.startswith("video_text.") and k not in ("hub_queries", "proposal_prior")}
    missing, unexpected = model.load_state_dict(fast_path, strict=False)
    assert not unexpected and all(k.startswith("video_text.") or k == "hub_queries"
                                  for k in missing), (missing, unexpected)
    if video is not None:
        model.video_text.load_state_dict(video.state_dict())
    if hub_bank:
        texts = bank_sentences(data_dir, split, hub_bank, seed)
        model.hub_queries.copy_(bank_vectors(model, texts, int(extra.get("max_tokens", 32))))
    extra = {k: v for k, v in extra.items() if k not in ("cell_prior", "one_video_weight")}
    record = {"fvmr": str(fvmr_dir), "video_text": str(video_text_dir),
              "video_weight": video_weight, "hub_weight": hub_weight, "hub_bank": hub_bank,
              "bank_split": split, "seed": seed}
    if video is not None:  # what the video-text model was trained on (fold checks read it)
        record.update(video_text_data=video_extra.get("data"),
                      video_text_fold=video_extra.get("train_config", {}).get("fold"))
    return model.save_pretrained(out_dir, extra={**extra, "composed": record})


def check_video_text(video: VideoText, video_dir: str | Path, extra: dict, config) -> None:
    """Raise InputError unless the video-text model (its stored settings ``extra``) reads
    FVMR's clips (same N and width)."""
    n_clips = extra.get("train_config", {}).get("n_clips", config.n_clips)
    if n_clips != config.n_clips or video.config.feature_dim != config.feature_dim:
        raise InputError(f"{video_dir}: trained on {n_clips} clips of width "
                         f"{video.config.feature_dim}; the FVMR model reads {config.n_clips} "
                         f"clips of width {config.feature_dim}")


@torch.inference_mode()
def bank_vectors(model: FVMR, texts: list[str], max_tokens: int) -> torch.Tensor:
    """(S, width) query vectors of the bank sentences, without the hub column."""
    tokens = TokenEncoder(max_length=max_tokens)
    parts = []
    for start in range(0, len(texts), 256):
        batch = tokens.encode(texts[start:start + 256])
        parts.append(model.encode_queries(batch.embeddings, batch.mask, hub_column=False))
    return torch.cat(parts)
