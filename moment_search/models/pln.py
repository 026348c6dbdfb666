"""PLN: "Progressive Localization Networks for Language-based Moment Localization" (Zheng et al.).

A multi-stage, coarse-to-fine 2D-TAN (paper Sec. III, Fig. 2). Stage t cuts the video into N^t
clips (N^1 < N^2 < ...), builds the 2D map of max-pooled moments, fuses it with the sentence and
predicts a relevance map P^t over its own proposals. The stages are bridged by

* conditional feature manipulation (CFM, Eq. 4-5): the clip features of stage t are rescaled
  under the guidance of the previous stage's last conv map H^{t-1};
* the upsampling connection (UC, Eq. 2): H^{t-1}, upsampled to N^t x N^t, joins the fused map
  by an element-wise max, G^t = max(F^t, upsample(H^{t-1})).

Per stage: clips (B, N^t, Dv) -> FC + ReLU -> [CFM] -> max-pool map M^t (B, C, N^t, N^t) ->
F^t = normalize(FC(M^t) * FC(f_s)) -> [UC max] -> G^t -> shared ConvNet (two 5x5 conv + ReLU) ->
H^t -> FC -> logits of P^t (B, N^t, N^t). Training (Eq. 6-8) is a BCE per stage on soft IoU
labels, weighted by lambda_t (see ``train/pln_trainer.py``). Inference (Sec. III-C): Strategy 1
ranks the last stage's map; Strategy 2 averages every stage's scores after upsampling the coarse
maps to the finest size; NMS follows (``search/localize.py``).

Ablations: ``use_cfm=False`` (w/o CFM), ``use_upsampling=False`` (w/o UC), both (independent
branches that share only the sentence encoder, the input FC and the ConvNet).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import torch
from torch import nn

from ..data.clips import pool_clips
from ..errors import InputError
from ..geometry.proposals import map_max_pool, proposal_index, proposal_mask
from .base import PretrainedMixin
from .pln_blocks import (
    ConditionalFeatureManipulation,
    MapConvNet,
    QueryFusion,
    SentenceEncoder,
    UpsamplingConnection,
    upsample_map,
)


@dataclass
class PLNConfig:
    """PLN sizes and switches. The paper uses d = 512 everywhere and N^t = 16-64 on Charades-STA
    (VGG/I3D features at several per second); with 1-fps CLIP features a Charades video (~30 s)
    has ~30 feature rows, so the default stages are 8 and 16 clips, and d is 64 so that an epoch
    over the 2.3k training queries of the Charades-STA CLIP split takes well under a minute on a
    2-core CPU (the 5x5 ConvNet dominates and grows with d^2 (N^t)^2)."""

    feature_dim: int = 512  # width of the input clip features (CLIP ViT-B/32)
    token_dim: int = 384  # width of the frozen MiniLM token embeddings
    stage_clips: tuple[int, ...] = (8, 16)  # N^t per stage, coarse to fine (paper: 16, 64)
    hidden_dim: int = 64  # d^v = d^s = d^u: unit FC, LSTM and fusion widths (paper: 512)
    lstm_layers: int = 3  # sentence LSTM depth (paper)
    conv_kernel: int = 5  # ConvNet kernel (paper: 5x5)
    conv_layers: int = 2  # ConvNet depth (paper: 2)
    upsample_kernel: int = 3  # convolutions of each upsampling block (paper: 3x3)
    use_cfm: bool = True  # False: the "w/o CFM" ablation
    use_upsampling: bool = True  # False: the "w/o UC" ablation
    dropout: float = 0.0  # after the input FC and between LSTM layers (paper: none)
    # Multiplies the input clip features (not in the paper): sqrt(512) gives L2-normalised CLIP
    # features unit RMS, so the input FC sees more than its bias at its default init.
    clip_scale: float = 1.0

    def __post_init__(self) -> None:
        self.stage_clips = tuple(int(n) for n in self.stage_clips)
        if not self.stage_clips or min(self.stage_clips) < 1:
            raise InputError(f"stage_clips must be positive clip counts, got {self.stage_clips}")
        for coarse, fine in pairwise(self.stage_clips):
            ratio, rest = divmod(fine, coarse)
            if rest or ratio & (ratio - 1):
                raise InputError(
                    f"stage_clips {self.stage_clips}: each N^t must be N^(t-1) times a power of "
                    f"two (the upsampling connection doubles the map per block), got {coarse} "
                    f"-> {fine}")


@dataclass
class PLNOutput:
    """Named outputs of :meth:`PLN.forward`, one entry per stage (coarse to fine)."""

    logits: list[torch.Tensor]  # (B, N^t, N^t) relevance logits: P^t = sigmoid(logits), Eq. 3
    masks: list[torch.Tensor]  # (N^t, N^t) bool, True on the stage's proposal cells


def pool_stage_clips(features: np.ndarray, stage_clips: Sequence[int], duration: float,
                     feature_rate: float | None = None) -> list[torch.Tensor]:
    """A video's clip features at every stage: mean pooling over N^t equal spans (Sec. III-B).

    Args:
        features: (T, Dv) feature rows of one video.
        stage_clips: N^t per stage.
        duration: video length in seconds.
        feature_rate: features per second, or None when the T rows span the duration.

    Returns:
        one float32 tensor (N^t, Dv) per stage.

    Raises:
        ValueError: for empty features (see :func:`moment_search.data.clips.pool_clips`).
    """
    return [torch.from_numpy(pool_clips(features, n, duration, feature_rate)) for n in stage_clips]


def average_stage_scores(logits: Sequence[torch.Tensor], masks: Sequence[torch.Tensor]
                         ) -> torch.Tensor:
    """Strategy 2: each stage's sigmoid scores, upsampled to the finest map, averaged.

    A fine moment (a, b) takes from a coarser stage the score of the smallest coarse moment that
    contains it (nearest upsampling). The average runs over the stages where that moment is a
    proposal ("if a candidate moment is associated with multiple score maps, we average their
    corresponding scores"); on dense maps that is every stage.

    Args:
        logits: per stage (B, N^t, N^t) logits, the last stage the finest.
        masks: per stage (N^t, N^t) bool proposal masks.

    Returns:
        (B, N^T, N^T) averaged scores in [0, 1] (0 off the finest mask).
    """
    finest = logits[-1].shape[-1]
    total = torch.zeros_like(logits[-1])  # (B, N^T, N^T)
    count = torch.zeros_like(logits[-1][0])  # (N^T, N^T)
    for stage_logits, mask in zip(logits, masks, strict=True):
        factor = finest // stage_logits.shape[-1]
        valid = upsample_map(mask, factor).to(total.dtype)  # (N^T, N^T)
        total = total + upsample_map(torch.sigmoid(stage_logits), factor) * valid
        count = count + valid
    return total / count.clamp(min=1) * masks[-1].to(total.dtype)


class PLN(PretrainedMixin, nn.Module):
    """The PLN model (see the module docstring)."""

    model_type = "pln"
    config_class = PLNConfig

    def __init__(self, config: PLNConfig):
        super().__init__()
        self.config = c = config
        n_stages = len(c.stage_clips)
        # "FC layer with a ReLU" on the unit features (Sec. III-A), shared by the stages. The
        # paper applies it before mean pooling into clips; here the clips arrive pooled, which
        # at 1 fps and >= 2 rows per clip changes little (the FC is linear; only ReLU moves).
        self.clip_fc = nn.Sequential(nn.Linear(c.feature_dim, c.hidden_dim), nn.ReLU(),
                                     nn.Dropout(c.dropout))
        self.sentence = SentenceEncoder(c.token_dim, c.hidden_dim, c.lstm_layers, c.dropout)
        # Each stage is its own localization branch g^t (per-stage fusion FCs, W^t of Eq. 3,
        # W_r^t of Eq. 4); only the ConvNet is said to be shared ("The parameters of the
        # convolution networks (ConvNet) in all stages are shared").
        self.fusions = nn.ModuleList(QueryFusion(c.hidden_dim) for _ in range(n_stages))
        self.convnet = MapConvNet(c.hidden_dim, c.conv_kernel, c.conv_layers)
        self.predictors = nn.ModuleList(nn.Conv2d(c.hidden_dim, 1, 1) for _ in range(n_stages))
        self.cfms = nn.ModuleList(ConditionalFeatureManipulation(c.hidden_dim)
                                  for _ in range(n_stages - 1) if c.use_cfm)
        self.upsamplers = nn.ModuleList(
            UpsamplingConnection(c.hidden_dim, fine // coarse, c.upsample_kernel)
            for coarse, fine in pairwise(c.stage_clips) if c.use_upsampling)
        for t, n in enumerate(c.stage_clips):
            self.register_buffer(f"mask{t}", torch.from_numpy(proposal_mask(n)), persistent=False)
        index = torch.from_numpy(proposal_index(c.stage_clips[-1]))
        self.register_buffer("final_cells", index[:, 0] * c.stage_clips[-1] + index[:, 1],
                             persistent=False)

    @property
    def n_stages(self) -> int:
        """T, the number of stages."""
        return len(self.config.stage_clips)

    @property
    def final_clips(self) -> int:
        """N^T, the clip count of the last (finest) stage: the proposals that are scored."""
        return self.config.stage_clips[-1]

    @property
    def n_proposals(self) -> int:
        """P, the number of proposals of the finest map (``proposal_index(N^T)``)."""
        return int(self.final_cells.numel())

    @property
    def masks(self) -> list[torch.Tensor]:
        """Per stage, the (N^t, N^t) bool proposal mask."""
        return [getattr(self, f"mask{t}") for t in range(self.n_stages)]

    def check_inputs(self, clips_per_stage: Sequence[torch.Tensor]) -> None:
        """Raise ValueError unless there is one (B, N^t, Dv) tensor per stage, all of one B."""
        if len(clips_per_stage) != self.n_stages:
            raise ValueError(f"PLN has {self.n_stages} stages {self.config.stage_clips}, got "
                             f"{len(clips_per_stage)} clip tensors")
        batch = clips_per_stage[0].shape[0] if clips_per_stage[0].ndim == 3 else None
        for t, (clips, n) in enumerate(zip(clips_per_stage, self.config.stage_clips, strict=True)):
            if tuple(clips.shape) != (batch, n, self.config.feature_dim):
                raise ValueError(f"stage {t + 1}: clips must have shape (B={batch}, {n}, "
                                 f"{self.config.feature_dim}), got {tuple(clips.shape)}")

    def stage(self, t: int, clips: torch.Tensor, query: torch.Tensor,
              previous: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """One localization branch g^t (Eq. 1): returns H^t (B, C, N, N) and logits (B, N, N).

        Args:
            t: stage index, 0-based.
            clips: (B, N^t, Dv) clip features of this stage.
            query: (B, C) sentence features f_s.
            previous: H^{t-1} (B, C, N^{t-1}, N^{t-1}); None for the first stage.
        """
        weight = self.masks[t].to(clips.dtype)  # (N, N)
        units = self.clip_fc(clips * self.config.clip_scale)  # (B, N, C)
        if previous is not None and self.config.use_cfm:
            units = self.cfms[t - 1](units, previous, self.masks[t - 1])  # C-bar^t, Eq. 4-5
        fused = self.fusions[t](map_max_pool(units), query, weight)  # (B, C, N, N): F^t
        if previous is not None and self.config.use_upsampling:
            fused = torch.maximum(fused, self.upsamplers[t - 1](previous)) * weight  # G^t, Eq. 2
        hidden = self.convnet(fused, weight)  # (B, C, N, N): H^t
        return hidden, self.predictors[t](hidden).squeeze(1)  # (B, N, N)

    def forward(self, clips_per_stage: Sequence[torch.Tensor], tokens: torch.Tensor,
                token_mask: torch.Tensor) -> PLNOutput:
        """Predict every stage's relevance map for each video-query pair.

        Args:
            clips_per_stage: per stage, (B, N^t, Dv) clip features (see :func:`pool_stage_clips`).
            tokens: (B, L, Dt) token embeddings; token_mask: (B, L) bool, True on real tokens.

        Returns:
            :class:`PLNOutput` with per-stage logits (B, N^t, N^t) and masks (N^t, N^t).

        Raises:
            ValueError: on a wrong number of stages or a clip tensor of the wrong shape.
        """
        return self.localize(clips_per_stage, self.encode_query(tokens, token_mask))

    def encode_query(self, tokens: torch.Tensor, token_mask: torch.Tensor) -> torch.Tensor:
        """The sentence features f_s (B, C) from (B, L, Dt) token embeddings and their mask: the
        text-only part, computed once per query however many videos it is matched against."""
        return self.sentence(tokens, token_mask)

    def localize(self, clips_per_stage: Sequence[torch.Tensor], query: torch.Tensor
                 ) -> PLNOutput:
        """Every stage's relevance map for (B, C) sentence features f_s (see :meth:`forward`)."""
        self.check_inputs(clips_per_stage)
        logits, previous = [], None
        for t, clips in enumerate(clips_per_stage):
            previous, stage_logits = self.stage(t, clips, query, previous)
            logits.append(stage_logits)
        return PLNOutput(logits=logits, masks=self.masks)

    def stage_scores(self, output: PLNOutput, t: int) -> torch.Tensor:
        """Strategy 1 on stage ``t``: sigmoid scores (B, P_t) in ``proposal_index(N^t)`` order."""
        return torch.sigmoid(output.logits[t][:, output.masks[t]])

    def score_proposals(self, clips_per_stage: Sequence[torch.Tensor], tokens: torch.Tensor,
                        token_mask: torch.Tensor, strategy: int = 1) -> torch.Tensor:
        """Relevance of every proposal of the finest map, for ranking and NMS.

        Args:
            clips_per_stage, tokens, token_mask: as :meth:`forward`.
            strategy: 1, the last stage's scores (the paper's choice); 2, the average over the
                stages after upsampling the coarse maps (:func:`average_stage_scores`).

        Returns:
            (B, P) scores in [0, 1], in ``proposal_index(N^T)`` order (N^T = ``final_clips``).

        Raises:
            ValueError: for another strategy, or bad inputs (see :meth:`forward`).
        """
        return self.score_encoded(clips_per_stage, self.encode_query(tokens, token_mask),
                                  strategy)

    def score_encoded(self, clips_per_stage: Sequence[torch.Tensor], query: torch.Tensor,
                      strategy: int = 1) -> torch.Tensor:
        """:meth:`score_proposals` for sentence features f_s (B, C) already encoded."""
        if strategy not in (1, 2):
            raise InputError(f"strategy must be 1 (last stage) or 2 (stage average), "
                             f"got {strategy!r}")
        output = self.localize(clips_per_stage, query)
        if strategy == 1:
            return self.stage_scores(output, self.n_stages - 1)
        return average_stage_scores(output.logits, output.masks).flatten(1)[:, self.final_cells]
