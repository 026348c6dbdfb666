"""DRN: "Dense Regression Network for Video Grounding" (Zeng et al., CVPR 2020).

Pipeline (paper Fig. 2; details the paper leaves to its supplement are settled by the official
code, github.com/Alvin-Zeng/DRN, and named where they are used):

* query (Sec. 3.2, Eq. 2-3): a one-layer BiLSTM over the frozen MiniLM token embeddings (the
  project's offline text side; the paper's GloVe vectors are not available here), g = [h_1; h_N],
  and one textual attention per pyramid level (W_1, W_3 shared, W_2^(i) per level) -> q_i;
* video: features mean-pooled to ``n_segments`` = 32 equal segments (the official Charades
  setup), a linear layer (official ``prop_fc``);
* multi-level fusion: level i multiplies its input M_i by q_i (projected to M_i's width) and
  applies a Conv1d (kernel 3, stride 1, 2, 2: strides 1, 2, 4 overall) + BN + ReLU; level 1
  concatenates the temporal location embedding l_t = [(t - 0.5)/T, (t + 0.5)/T, 1/T] (through
  a linear layer, as the official code does) before its convolution -> C_1..C_3; an FPN
  (lateral 1x1, nearest top-down, 3x3 output) -> P_1..P_3;
* grounding module, shared across levels: the location regression head (Eq. 1: distances
  d_s, d_e = exp(scale_i * conv) > 0, per-level learnt scale as in FCOS), the semantic matching
  head (logit of m_t) and the IoU regression head (three layers over the concatenated first
  conv layers of the other two heads, Sec. 3.5) -> u_t;
* inference (official post-processing): boxes whose matching score m_t passes
  ``score_threshold`` (at least the best box is always kept, instead of the official fallback
  to the whole video), the ``pre_nms_top_k`` best by m_t x u_t; NMS happens downstream.

Location t of level i (stride s_i) sits at (t + 0.5) x s_i segments (official
``compute_locations``); it is trained on the ground truth that contains it when its larger
distance falls in the level's regression range (``range_low``/``range_high``, in segments:
[-1, 6], [5.6, 11], [11, inf) as the official code, whose unit is 1/32 of the video).
Targets and losses are in ``train/drn_data.py`` and ``train/drn_losses.py``.

Tokens are padded and masked (the BiLSTM is packed, the attention never reads padding); videos
are never padded. A video with fewer feature rows than segments is stretched (rows repeated,
``data.clips.pool_clips``), a documented fallback, not an error; a video with no rows and a
query with no tokens are ValueErrors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.clips import pool_clips
from ..errors import InputError
from .base import PretrainedMixin
from .layers import run_packed

N_LEVELS = 3  # "L is set to 3 in our paper"


@dataclass
class DRNConfig:
    """DRN sizes and switches (paper Sec. 3-4 / official Charades config unless noted).

    Widths are a quarter of the official ones (LSTM 512 per direction, backbone 256/512/1024,
    FPN 512): the Charades-STA CLIP split has 2.3k training sentences (the paper's 12.4k) and a
    run of the three training stages must fit in ~35 minutes on one CPU thread.
    """

    feature_dim: int = 512  # width of the input clip features (CLIP ViT-B/32)
    token_dim: int = 384  # width of the frozen MiniLM token embeddings
    lstm_dim: int = 128  # BiLSTM units per direction (paper: 512)
    n_segments: int = 32  # T: video segments (official Charades: 32)
    channels: int = 64  # width of C_1; C_2, C_3 are 2x and 4x (official: 256)
    fpn_dim: int = 128  # width of P_i and of the heads (official: 512)
    position_dim: int = 64  # width of the location embedding after its linear layer (off.: 256)
    range_low: tuple[float, ...] = (-1.0, 5.6, 11.0)  # regression ranges per level (official)
    range_high: tuple[float, ...] = (6.0, 11.0, 1e8)  # (in segments; 1e8: the official INF)
    prior_prob: float = 0.01  # initial m_t (official fcos_prior_prob, as FCOS)
    score_threshold: float = 0.05  # m_t needed to be a candidate (official fcos_inference_thr)
    pre_nms_top_k: int = 32  # candidates kept per video (official fcos_pre_nms_top_n)
    use_iou_score: bool = True  # final score m_t x u_t; False: m_t alone (stage 1, ablation)
    dropout: float = 0.0  # after the video's linear layer (not in the paper)
    # Multiplies the input clip features (not in the paper): sqrt(512) gives L2-normalised CLIP
    # features unit RMS, so the first layers see more than their biases at init.
    clip_scale: float = 1.0

    def __post_init__(self) -> None:
        self.range_low = tuple(float(x) for x in self.range_low)
        self.range_high = tuple(float(x) for x in self.range_high)
        if len(self.range_low) != N_LEVELS or len(self.range_high) != N_LEVELS:
            raise InputError(f"range_low/range_high need {N_LEVELS} values (one per level)")
        if self.n_segments < 4:
            raise InputError(f"n_segments must be >= 4 (three levels), got {self.n_segments}")
        if self.fpn_dim % 2:
            raise InputError(f"fpn_dim must be even (the IoU head halves it), got {self.fpn_dim}")


def level_lengths(n_segments: int) -> tuple[int, ...]:
    """T_i of each level: T, ceil(T/2), ceil(T/4) (kernel-3, padding-1 convs of stride 2)."""
    lengths = [n_segments]
    for _ in range(N_LEVELS - 1):
        lengths.append((lengths[-1] - 1) // 2 + 1)
    return tuple(lengths)


def location_layout(n_segments: int) -> tuple[np.ndarray, np.ndarray]:
    """Every location of the pyramid, level by level (official ``compute_locations``).

    Returns:
        float64 (A,) centres in segments, (t + 0.5) x s_i with s_i = 1, 2, 4, and int64 (A,)
        level index of each location.
    """
    centres, levels = [], []
    for level, length in enumerate(level_lengths(n_segments)):
        stride = 2 ** level
        centres.append(np.arange(length) * stride + stride / 2)
        levels.append(np.full(length, level))
    return np.concatenate(centres).astype(np.float64), np.concatenate(levels).astype(np.int64)


def location_embedding(n_segments: int) -> torch.Tensor:
    """l_t = [(t - 0.5)/T, (t + 0.5)/T, 1/T] for t = 1..T (Sec. 3.2): (T, 3) float32."""
    t = torch.arange(1, n_segments + 1, dtype=torch.float32)
    return torch.stack([(t - 0.5) / n_segments, (t + 0.5) / n_segments,
                        torch.full_like(t, 1.0 / n_segments)], 1)


def decode_boxes(centres: torch.Tensor, distances: torch.Tensor, n_segments: int
                 ) -> torch.Tensor:
    """b_t = (t - d_s, t + d_e) (Eq. 1) clamped into the video: (B, A, 2) in segments."""
    start = (centres - distances[..., 0]).clamp(0, n_segments)
    end = (centres + distances[..., 1]).clamp(0, n_segments)
    return torch.stack([start, end], -1)


def pool_video_segments(features: np.ndarray, n_segments: int, duration: float,
                        feature_rate: float | None = None) -> torch.Tensor:
    """(T, Dv) feature rows -> (n_segments, Dv) float32 segments over equal time spans.

    Raises:
        ValueError: for an empty feature array (see ``data.clips.pool_clips``).
    """
    return torch.from_numpy(pool_clips(features, n_segments, duration, feature_rate))


def select_candidates(matching: torch.Tensor, scores: torch.Tensor, threshold: float,
                      top_k: int) -> torch.Tensor:
    """Indices of one video's candidate boxes (official post-processing): m_t > threshold,
    the ``top_k`` best by final score, best first; the best box when none passes.

    Args:
        matching: (A,) m_t; scores: (A,) final scores.
    """
    passed = (matching > threshold).nonzero().flatten()
    if passed.numel() == 0:
        return scores.argmax().reshape(1)
    order = scores[passed].argsort(descending=True)[:top_k]
    return passed[order]


def moments_in_seconds(boxes: torch.Tensor, scores: torch.Tensor, duration: float,
                       n_segments: int) -> np.ndarray:
    """(K, 2) boxes in segments and (K,) scores -> (K, 3) float64 ``[start_s, end_s, score]``."""
    seconds = boxes.detach().float().cpu().double().numpy() * (duration / n_segments)
    return np.concatenate([seconds, scores.detach().float().cpu().double().numpy()[:, None]], 1)


def conv_block(in_dim: int, out_dim: int, kernel: int, stride: int = 1) -> nn.Sequential:
    """Conv1d + BatchNorm + ReLU (the official ``conv_with_kaiming_uniform(use_bn, use_relu)``)."""
    conv = nn.Conv1d(in_dim, out_dim, kernel, stride, padding=kernel // 2)
    nn.init.kaiming_uniform_(conv.weight, a=1)
    nn.init.zeros_(conv.bias)
    return nn.Sequential(conv, nn.BatchNorm1d(out_dim), nn.ReLU())


@dataclass
class EncodedQuery:
    """The text-only part of DRN: per level, q_i projected to the width of M_i."""

    levels: tuple[torch.Tensor, ...]  # (B, Dv), (B, c), (B, 2c)

    def expand(self, batch: int) -> EncodedQuery:
        """One query repeated for ``batch`` videos."""
        return EncodedQuery(tuple(q.expand(batch, -1) for q in self.levels))


@dataclass
class DRNOutput:
    """Named outputs of :meth:`DRN.forward`, locations in :func:`location_layout` order."""

    logits: torch.Tensor  # (B, A) semantic matching logits: m_t = sigmoid(logits)
    distances: torch.Tensor  # (B, A, 2) (d_s, d_e) > 0, in segments
    iou_logits: torch.Tensor  # (B, A) IoU regression logits: u_t = sigmoid(iou_logits)


class QueryEncoder(nn.Module):
    """BiLSTM (Eq. 2) and the per-level textual attention (Eq. 3)."""

    def __init__(self, token_dim: int, lstm_dim: int):
        super().__init__()
        h = lstm_dim
        self.lstm = nn.LSTM(token_dim, h, batch_first=True, bidirectional=True)
        self.w3 = nn.Linear(4 * h, h)  # shared, on g = [h_1; h_N]
        self.w2 = nn.ModuleList(nn.Linear(h, 2 * h) for _ in range(N_LEVELS))  # per level
        self.w1 = nn.Linear(2 * h, 1)  # shared

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
        """(B, L, Dt) tokens and (B, L) mask -> q_i, N_LEVELS tensors of shape (B, 2h)."""
        words = run_packed(self.lstm, tokens, mask)  # (B, L, 2h): h_n
        last = mask.sum(1) - 1  # (B,)
        g = torch.cat([words[:, 0], words[torch.arange(len(last)), last]], -1)  # (B, 4h), Eq. 2
        guide = F.relu(self.w3(g))  # (B, h)
        out = []
        for w2 in self.w2:
            logits = self.w1(words * w2(guide)[:, None]).squeeze(-1)  # (B, L)
            alpha = logits.masked_fill(~mask, float("-inf")).softmax(-1)  # Eq. 3
            out.append(torch.bmm(alpha[:, None], words).squeeze(1))  # (B, 2h): q_i
        return out


class GroundingHeads(nn.Module):
    """The three heads (Sec. 3.3-3.5), shared by every level (official ``FCOSHead``)."""

    def __init__(self, dim: int, prior_prob: float):
        super().__init__()
        self.match_tower = conv_block(dim, dim, 3)  # first conv of the matching head
        self.loc_tower = conv_block(dim, dim, 3)  # first conv of the location head
        self.match = nn.Conv1d(dim, 1, 3, padding=1)
        self.loc = nn.Conv1d(dim, 2, 3, padding=1)
        self.iou = nn.Sequential(conv_block(2 * dim, dim, 1), conv_block(dim, dim // 2, 3),
                                 nn.Conv1d(dim // 2, 1, 1))  # the three-layer IoU head
        self.scales = nn.Parameter(torch.ones(N_LEVELS))  # FCOS's per-level Scale
        for module in self.modules():
            if isinstance(module, nn.Conv1d):  # official init: N(0, 0.01), bias 0
                nn.init.normal_(module.weight, std=0.01)
                nn.init.zeros_(module.bias)
        nn.init.constant_(self.match.bias, -math.log((1 - prior_prob) / prior_prob))

    def forward(self, feature: torch.Tensor, level: int
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, C, T_i) -> logits (B, T_i), distances (B, T_i, 2), IoU logits (B, T_i)."""
        match, loc = self.match_tower(feature), self.loc_tower(feature)
        distances = torch.exp(self.scales[level] * self.loc(loc))  # (B, 2, T_i), Eq. 1
        iou = self.iou(torch.cat([match, loc], 1))  # (B, 1, T_i)
        return self.match(match).squeeze(1), distances.transpose(1, 2), iou.squeeze(1)


class DRN(PretrainedMixin, nn.Module):
    """The DRN model (see the module docstring)."""

    model_type = "drn"
    config_class = DRNConfig

    def __init__(self, config: DRNConfig):
        super().__init__()
        self.config = c = config
        widths = (c.feature_dim, c.channels, 2 * c.channels, 4 * c.channels)  # M_1 .. C_3
        self.query = QueryEncoder(c.token_dim, c.lstm_dim)
        self.query_proj = nn.ModuleList(nn.Linear(2 * c.lstm_dim, w) for w in widths[:N_LEVELS])
        self.video_fc = nn.Sequential(nn.Linear(c.feature_dim, c.feature_dim),
                                      nn.Dropout(c.dropout))
        self.position = nn.Linear(3, c.position_dim)
        self.fusion = nn.ModuleList([conv_block(c.feature_dim + c.position_dim, widths[1], 3),
                                     conv_block(widths[1], widths[2], 3, 2),
                                     conv_block(widths[2], widths[3], 3, 2)])
        self.lateral = nn.ModuleList(conv_block(w, c.fpn_dim, 1) for w in widths[1:])
        self.smooth = nn.ModuleList(conv_block(c.fpn_dim, c.fpn_dim, 3) for _ in widths[1:])
        self.heads = GroundingHeads(c.fpn_dim, c.prior_prob)
        centres, levels = location_layout(c.n_segments)
        self.register_buffer("centres", torch.from_numpy(centres).float(), persistent=False)
        self.register_buffer("levels", torch.from_numpy(levels), persistent=False)
        self.register_buffer("positions", location_embedding(c.n_segments), persistent=False)

    @property
    def n_locations(self) -> int:
        """A, the number of locations (boxes) per video over the three levels."""
        return int(self.centres.shape[0])

    def encode_query(self, tokens: torch.Tensor, token_mask: torch.Tensor) -> EncodedQuery:
        """q_i (Eq. 2-3), projected per level, from (B, L, Dt) tokens and a (B, L) bool mask;
        computed once per query however many videos it meets.

        Raises:
            ValueError: mismatched shapes or a query with no tokens.
        """
        if token_mask.ndim != 2 or tokens.shape[:2] != token_mask.shape:
            raise ValueError(f"tokens {tuple(tokens.shape)} and mask {tuple(token_mask.shape)} "
                             f"must be (B, L, Dt) and (B, L)")
        empty = (token_mask.sum(1) == 0).nonzero().flatten().tolist()
        if empty:
            raise ValueError(f"DRN needs at least one token per query; query {empty[0]} has none")
        levels = self.query(tokens, token_mask)
        return EncodedQuery(tuple(proj(q) for proj, q in zip(self.query_proj, levels,
                                                             strict=True)))

    def pyramid(self, segments: torch.Tensor, query: EncodedQuery) -> list[torch.Tensor]:
        """Multi-level fusion + FPN: (B, T, Dv) segments -> P_1..P_3, (B, fpn_dim, T_i)."""
        c = self.config
        if segments.ndim != 3 or segments.shape[1:] != (c.n_segments, c.feature_dim):
            raise ValueError(f"video segments must have shape (B, {c.n_segments}, "
                             f"{c.feature_dim}) (see pool_video_segments), "
                             f"got {tuple(segments.shape)}")
        x = self.video_fc(segments * c.clip_scale).transpose(1, 2)  # (B, Dv, T): M_1
        position = self.position(self.positions).t()[None].expand(len(x), -1, -1)  # (B, P, T)
        fused = []
        for level, conv in enumerate(self.fusion):
            x = x * query.levels[level][:, :, None]  # M_i (.) D_i
            if level == 0:
                x = torch.cat([x, position], 1)  # location embedding -> C_1
            x = conv(x)
            fused.append(x)  # C_i
        inner = self.lateral[-1](fused[-1])
        out = [self.smooth[-1](inner)]
        for level in range(N_LEVELS - 2, -1, -1):  # top-down (FPN)
            lateral = self.lateral[level](fused[level])
            inner = lateral + F.interpolate(inner, size=lateral.shape[-1], mode="nearest")
            out.insert(0, self.smooth[level](inner))
        return out

    def localize(self, segments: torch.Tensor, query: EncodedQuery) -> DRNOutput:
        """The three heads at every location for (B, T, Dv) segments and an encoded query."""
        outputs = [self.heads(p, level) for level, p in enumerate(self.pyramid(segments, query))]
        logits, distances, ious = (torch.cat(parts, 1) for parts in zip(*outputs, strict=True))
        return DRNOutput(logits=logits, distances=distances, iou_logits=ious)

    def forward(self, segments: torch.Tensor, tokens: torch.Tensor, token_mask: torch.Tensor
                ) -> DRNOutput:
        """Every location's matching logit, distances and IoU logit for each video-query pair.

        Args:
            segments: (B, n_segments, Dv) video segments (see :func:`pool_video_segments`).
            tokens: (B, L, Dt) token embeddings; token_mask: (B, L) bool, True on real tokens.

        Returns:
            :class:`DRNOutput`, A = :attr:`n_locations` per pair.

        Raises:
            ValueError: segments of the wrong shape, an empty query.
        """
        return self.localize(segments, self.encode_query(tokens, token_mask))

    def score_encoded(self, segments: torch.Tensor, query: EncodedQuery
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """m_t (B, A), the final score (B, A) (m_t x u_t, or m_t without the IoU head) and the
        boxes (B, A, 2) in segments."""
        out = self.localize(segments, query)
        matching = torch.sigmoid(out.logits)
        scores = matching * torch.sigmoid(out.iou_logits) if self.config.use_iou_score \
            else matching
        return matching, scores, decode_boxes(self.centres, out.distances,
                                              self.config.n_segments)

    def candidates(self, matching: torch.Tensor, scores: torch.Tensor, boxes: torch.Tensor,
                   duration: float) -> np.ndarray:
        """One video's candidates (:func:`select_candidates`) as (K, 3) ``[start_s, end_s,
        score]``, best first."""
        keep = select_candidates(matching, scores, self.config.score_threshold,
                                 self.config.pre_nms_top_k)
        return moments_in_seconds(boxes[keep], scores[keep], duration, self.config.n_segments)
