"""Train the video-level relevance model (``models.video_text``) contrastively across videos.

Each step takes a batch of distinct training videos and one sentence per video, and applies the
symmetric InfoNCE loss over the batch's text-video logits (CLIP's objective). A video's sentence is
drawn from one of its sources, picked uniformly among those it has: its Charades-STA sentences,
its description and script sentences (``--descriptions``, on by default), its action
pseudo-queries (``--extra charades-actions``; the ``:WEIGHT`` of ``--extra`` does not apply here:
a source is drawn uniformly among those a video has). Each epoch visits every video
``samples_per_video`` times.
Validation ranks the validation videos for every validation sentence (video retrieval R@1/5/10).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from ..data.clips import pool_clips
from ..data.corpus import Corpus
from ..data.features import FeatureStore
from ..data.pseudo_queries import video_texts
from ..data.readers.charades_csv import read_charades_csv
from ..geometry.proposals import proposal_index, proposal_spans
from ..geometry.spans import temporal_iou
from ..metrics import video_retrieval_metrics
from ..models.video_text import VideoText, VideoTextConfig
from ..text.tokens import TokenEncoder
from .batching import MAX_TOKENS
from .extras import CSV_NAME, default_charades_dir, parse_extra, with_extras
from .folds import parse_fold, training_corpora
from .loop import EpochTrainer, RecipeConfig, seed_everything


@dataclass
class VideoTextTrainConfig(RecipeConfig):
    """Optimisation settings of the video-level model, beside the shared :class:`RecipeConfig`
    (``extras``: e.g. ``("charades-actions",)``, action phrases as texts)."""

    select_metric: str = "video_R@1+video_R@10"
    epochs: int = 30
    batch_videos: int = 64  # videos (= sentences) per InfoNCE batch
    samples_per_video: int = 4  # sentences drawn per video per epoch
    lr: float = 1e-3
    weight_decay: float = 0.01
    n_clips: int = 16  # clips pooled per video (FVMR's N, so the same input serves both)
    descriptions: bool = True  # use the videos' description and script sentences


class TextSource(NamedTuple):
    """One kind of text about a video: pooled sentences and the clip span each describes."""

    texts: torch.Tensor  # (S, Dt) mean-pooled MiniLM token embeddings
    spans: torch.Tensor  # (S, 2) int clip span [i, j] (the whole video for descriptions)


def info_nce(logits: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE over a (B, B) text-video logit matrix whose diagonal pairs match."""
    target = torch.arange(logits.shape[0], device=logits.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


class VideoTextTrainer(EpochTrainer):
    """Trains :class:`VideoText` on the training videos (see the module docstring)."""

    model_class = VideoText

    def __init__(self, data_dir: str | Path, out_dir: str | Path, model_config: VideoTextConfig,
                 train_config: VideoTextTrainConfig, feature_rate: float | None = None,
                 charades_dir: str | Path | None = None, max_tokens: int = MAX_TOKENS,
                 train_split: str = "train", val_split: str = "val"):
        self.out = Path(out_dir)
        self.config = train_config
        self.settings = {"data": str(data_dir), "train_split": train_split,
                         "feature_rate": feature_rate, "max_tokens": max_tokens,
                         "train_config": asdict(train_config)}
        if train_config.threads:
            torch.set_num_threads(train_config.threads)
        seed_everything(train_config.seed)
        charades = Path(charades_dir or default_charades_dir(data_dir))
        self.encoder = TokenEncoder(max_length=max_tokens)
        train, val, store = training_corpora(data_dir, train_split, val_split, feature_rate,
                                             parse_fold(train_config.fold))
        self.video_ids = list(train.videos)
        self.clips = self._clips(train, store)
        self.sources = self._sources(train, charades)
        self.val_clips = self._clips(val, store)
        queries = [q for q in val.queries if q.windows]
        self.val_text = self._pooled([q.text for q in queries])
        position = {vid: i for i, vid in enumerate(val.videos)}
        self.val_truth = np.array([position[q.video_id] for q in queries])
        self.start(VideoText(model_config))

    def _clips(self, corpus: Corpus, store: FeatureStore) -> torch.Tensor:
        """(V, N, Dv) pooled clips of every video, in corpus order."""
        n = self.config.n_clips
        return torch.from_numpy(np.stack([
            pool_clips(store.load(v.video_id), n, v.duration, v.feature_rate) for v in corpus]))

    def _sources(self, corpus: Corpus, charades: Path) -> list[list[TextSource]]:
        """Per video, its text sources: pooled sentences and the clip span each describes."""
        specs = [parse_extra(text) for text in self.config.extras]
        with_actions, _ = with_extras(corpus, specs, charades)
        whole = (0, self.config.n_clips - 1)
        by_source: dict[str, dict[str, list]] = {"sta": {}, "actions": {}, "described": {}}
        for query in with_actions.queries:
            kind = "actions" if str(query.qid).startswith("action-") else "sta"
            span = self._span(query.windows, corpus.video(query.video_id).duration)
            by_source[kind].setdefault(query.video_id, []).append((query.text, span))
        if self.config.descriptions:
            described = video_texts(corpus.videos, read_charades_csv(charades / CSV_NAME))
            by_source["described"] = {vid: [(t, whole) for t in texts]
                                      for vid, texts in described.items()}
        texts = sorted({t for source in by_source.values() for items in source.values()
                        for t, _ in items})
        pooled = dict(zip(texts, self._pooled(texts), strict=True))
        return [[TextSource(torch.stack([pooled[t] for t, _ in source[vid]]),
                            torch.tensor([span for _, span in source[vid]]))
                 for source in by_source.values() if source.get(vid)]
                for vid in self.video_ids]

    def _span(self, windows, duration: float) -> tuple[int, int]:
        """The clip span (i, j) of the proposal that best overlaps the windows."""
        spans = proposal_spans(self.config.n_clips, duration)
        best = int(temporal_iou(spans, np.asarray(windows)).max(1).argmax())
        i, j = proposal_index(self.config.n_clips)[best]
        return int(i), int(j)

    @torch.inference_mode()
    def _pooled(self, texts: list[str], chunk: int = 256) -> torch.Tensor:
        """(S, Dt) mean-pooled MiniLM token embeddings of ``texts``."""
        parts = []
        for start in range(0, len(texts), chunk):
            batch = self.encoder.encode(texts[start:start + chunk])
            parts.append(VideoText.pool_tokens(batch.embeddings, batch.mask).cpu())
        return torch.cat(parts) if parts else torch.zeros(0, self.encoder.dim)

    def epoch_batches(self, epoch: int) -> list[tuple[torch.Tensor, ...]]:
        """Batches of (clips (B, N, Dv), pooled sentences (B, Dt), spans (B, 2)), one sentence
        per video; spans are the clips each sentence describes (used at ``level="moment"``)."""
        rng = np.random.default_rng(self.config.seed * 1000 + epoch)
        batches = []
        for _ in range(self.config.samples_per_video):
            order = rng.permutation(len(self.video_ids))
            for start in range(0, len(order), self.config.batch_videos):
                rows = order[start:start + self.config.batch_videos]
                if len(rows) < 2:
                    continue
                drawn = [self._draw(rng, int(row)) for row in rows]
                batches.append((self.clips[rows], torch.stack([t for t, _ in drawn]),
                                torch.stack([span for _, span in drawn])))
        return batches

    def _draw(self, rng: np.random.Generator, row: int) -> tuple[torch.Tensor, torch.Tensor]:
        source = self.sources[row][rng.integers(len(self.sources[row]))]
        pick = rng.integers(len(source.texts))
        return source.texts[pick], source.spans[pick]

    def loss_terms(self, batch, epoch: int) -> dict[str, torch.Tensor]:
        """Symmetric InfoNCE of one batch."""
        clips, texts, spans = batch
        moment = self.model.config.level == "moment"
        loss = info_nce(self.model(clips, texts, spans if moment else None)["logits"])
        return {"info_nce": loss, "total": loss}

    @torch.inference_mode()
    def validate(self) -> dict[str, float]:
        """Video retrieval over the validation videos for every validation sentence (a video
        scores its best proposal at ``level="moment"``)."""
        model = self.eval_model.eval()
        texts = model.encode_sentences(self.val_text)  # (Q, E)
        if model.config.level == "moment":
            proposals = model.encode_proposals(self.val_clips)  # (V, P, E)
            logits = torch.einsum("qe,vpe->qvp", texts, proposals).amax(-1)
        else:
            logits = texts @ model.encode_videos(self.val_clips).T
        return video_retrieval_metrics(logits.numpy(), self.val_truth)
