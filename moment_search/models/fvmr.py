"""FVMR: the moment-query common space of "Fast Video Moment Retrieval" (Gao & Xu, ICCV 2021).

Four parts (paper Sec. 3):

* video encoder: clip features -> FC -> 2D map (max pooling over clips i..j) -> conv k=5 -> BN ->
  tanh -> conv k=3 -> BN -> tanh, giving one feature m_i per 2D-TAN proposal;
* text encoder: frozen MiniLM token embeddings (instead of the paper's GloVe) -> 2-layer BiLSTM,
  sentence feature s = w_1 + w_L;
* fine-grained semantic extractor (the teacher): GRU node embeddings of the semantic role tree and
  the hierarchical semantic-guided attention of Eq. 3-5, giving u;
* the common space: p_i = phi_m(m_i) . phi_s(s) (Eq. 6, the fast path) and
  q_i = phi_fuse(phi_m(m_i) * phi_u(u)) (Eq. 7, the teacher).

At search time only ``encode_moments`` (once per video, by the indexer) and ``encode_queries``
(per query) run; the teacher is a training-time device.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
from torch import nn

from ..geometry.proposals import map_max_pool, proposal_index, proposal_mask
from .base import PretrainedMixin
from .layers import MLP, GatedConv2d, MapConvStack, last_valid, masked_mean, run_packed
from .video_text import VideoText, VideoTextConfig

NEG = -1e9  # a finite "minus infinity": fully masked rows give a uniform softmax, not NaN
WIDTH_MULTIPLE = 8  # search vectors with corpus terms are zero-padded to a multiple of this,
# so that product quantization (IVF-PQ: D / 4 sub-quantizers) divides them


@dataclass
class FVMRConfig:
    """FVMR sizes. The paper uses 512 everywhere on C3D/I3D/VGG; the defaults are a quarter of
    that so that training on the 2.3k queries of the Charades-STA CLIP split takes minutes on a
    2-core CPU (the 5x5 map convolution dominates and grows with the square of the width)."""

    feature_dim: int = 512  # width of the input clip features (CLIP ViT-B/32)
    token_dim: int = 384  # width of the frozen MiniLM token embeddings
    n_clips: int = 16  # 2D-map size N (2D-TAN uses 16 on Charades-STA)
    hidden_dim: int = 128  # D_v = D_s = D_f, the encoders' widths (paper: 512)
    space_dim: int = 128  # D, the common space
    map_kernels: tuple[int, ...] = (5, 3)  # conv kernels over the 2D map (paper)
    fuse_kernels: tuple[int, int] = (3, 9)  # phi_fuse: conv, then gated conv (paper)
    lstm_layers: int = 2  # BiLSTM depth (paper, Fig. 3b)
    dropout: float = 0.1
    clip_norm: bool = False  # LayerNorm on the input clip features (not in the paper)
    # Multiplies the input clip features (not in the paper). CLIP features are L2-normalised, so
    # their entries are ~1/sqrt(512) and the first layer's default init sees almost nothing but
    # its bias; sqrt(feature_dim) gives them unit RMS. 1.0 keeps them as they are.
    clip_scale: float = 1.0
    # Corpus terms (not in the paper; see ``train.compose``): the search vectors become
    # [phi_m(m_i), sqrt(beta) v, -gamma b_v + pi_i] and [phi_s(s), sqrt(beta) t, 1], so one
    # inner product is p + beta * s_v - gamma * b_v + pi_i (pi: ``cell_prior`` below). Training
    # (``forward``) never uses them.
    video_text: dict | None = None  # VideoTextConfig fields of the attached video model, or None
    video_weight: float = 0.0  # beta, the weight of the video-level score s_v = t . v
    hub_weight: float = 0.0  # gamma, the weight of the per-video hub correction b_v
    hub_bank: int = 0  # sentences in the bank b_v is measured on (0: no correction)
    # A per-proposal score prior pi (one value per 2D-map cell, ``train.cell_prior``), added in
    # the same constant column as the hub correction: [..., -gamma b_v + pi_i] . [..., 1]. It
    # undoes the fast path's corpus-level preference for some cells (moments starting at 0:00,
    # long moments), which per-video training never sees. Not in the paper.
    cell_prior: bool = False
    # Multiplies the query's video-text columns (sqrt(beta) t) in a search within one video,
    # where beta's job, ranking videos against each other, is gone (``embed.one_video``; chosen
    # on train folds by ``benchmark one-video-weight``; 1.0: as across videos). Not in the paper.
    one_video_text_scale: float = 1.0

    def __post_init__(self) -> None:
        scale = self.one_video_text_scale
        if not (math.isfinite(scale) and scale >= 0):
            raise ValueError(f"one_video_text_scale must be a finite number >= 0, got {scale!r}")


@dataclass
class RoleTreeTensors:
    """A batch of semantic role trees as token-pooling weights (see ``train.batches``).

    Attributes:
        verb_weights: (B, V, L) weights over tokens of each verb node (rows of absent nodes are 0).
        verb_mask: (B, V) bool, True where the verb node exists.
        noun_weights: (B, K, L) weights over tokens of each noun node.
        noun_mask: (B, K) bool.
        edges: (B, V, K) bool, True where noun k hangs under verb v.
    """

    verb_weights: torch.Tensor
    verb_mask: torch.Tensor
    noun_weights: torch.Tensor
    noun_mask: torch.Tensor
    edges: torch.Tensor


@dataclass
class FVMROutput:
    """Named outputs of :meth:`FVMR.forward`: logits over proposals and the embeddings."""

    p: torch.Tensor  # (B, P) fast-path logits, Eq. 6
    q: torch.Tensor | None  # (B, P) teacher logits, Eq. 7 (None without a role tree)
    moments: torch.Tensor  # (B, P, D) phi_m(m_i)
    queries: torch.Tensor  # (B, D) phi_s(s)


class SemanticExtractor(nn.Module):
    """Hierarchical semantic-guided attention over the role tree (paper Eq. 3-5) -> u.

    Node embeddings come from a BiGRU over the tokens, as HGR (the paper's [11]) does: the global
    node is the mean over all tokens, a verb/noun node the mean over its word's sub-word tokens.
    The paper writes one set of W_alpha, W_top, W_low for both levels; they are shared here.
    """

    def __init__(self, token_dim: int, dim: int):
        super().__init__()
        self.gru = nn.GRU(token_dim, dim // 2, batch_first=True, bidirectional=True)
        self.w_top = nn.Linear(dim, dim, bias=False)
        self.w_low = nn.Linear(dim, dim, bias=False)
        self.w_alpha = nn.Linear(2 * dim, 1, bias=False)

    def importance(self, top: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        """Eq. 3: alpha_k = W_alpha tanh(W_top top || W_low low_k); (B, D), (B, K, D) -> (B, K)."""
        guide = self.w_top(top)[:, None].expand(-1, low.shape[1], -1)  # (B, K, D)
        return self.w_alpha(torch.tanh(torch.cat([guide, self.w_low(low)], -1))).squeeze(-1)

    def forward(self, tokens: torch.Tensor, token_mask: torch.Tensor,
                tree: RoleTreeTensors) -> torch.Tensor:
        """(B, L, Dt) tokens, (B, L) mask and the trees -> u, (B, D)."""
        words = run_packed(self.gru, tokens, token_mask)  # (B, L, D)
        g_s = masked_mean(words, token_mask.to(words.dtype)[:, None])[:, 0]  # (B, D)
        g_v = masked_mean(words, tree.verb_weights)  # (B, V, D)
        g_n = masked_mean(words, tree.noun_weights)  # (B, K, D)
        alpha_v = self.importance(g_s, g_v).masked_fill(~tree.verb_mask, NEG)  # (B, V)
        g_v_hat = (torch.softmax(alpha_v, -1)[..., None] * g_v).sum(1)  # (B, D), Eq. 3
        alpha_n = self.importance(g_v_hat, g_n)  # (B, K)
        phrases = self.phrases(alpha_v, alpha_n, g_v, g_n, tree)  # (B, V, D), Eq. 4
        weight = tree.verb_mask.to(phrases.dtype)[..., None]  # (B, V, 1)
        mean_phrase = (phrases * weight).sum(1) / weight.sum(1).clamp(min=1)  # (B, D)
        return g_s * mean_phrase  # Eq. 5

    @staticmethod
    def phrases(alpha_v, alpha_n, g_v, g_n, tree: RoleTreeTensors) -> torch.Tensor:
        """Eq. 4: h_i = softmax over verb i and its nouns of their alphas, applied to the nodes."""
        n_verbs = g_v.shape[1]
        logits = torch.cat([alpha_v[..., None], alpha_n[:, None].expand(-1, n_verbs, -1)], -1)
        allowed = torch.cat([torch.ones_like(tree.verb_mask)[..., None],
                             tree.edges & tree.noun_mask[:, None]], -1)  # (B, V, 1 + K)
        b = torch.softmax(logits.masked_fill(~allowed, NEG), -1)  # (B, V, 1 + K)
        nodes = torch.cat([g_v[:, :, None], g_n[:, None].expand(-1, n_verbs, -1, -1)], 2)
        return (b[..., None] * nodes).sum(2)  # (B, V, D)


class FVMR(PretrainedMixin, nn.Module):
    """The FVMR model (see the module docstring)."""

    model_type = "fvmr"
    config_class = FVMRConfig

    def __init__(self, config: FVMRConfig):
        super().__init__()
        self.config = c = config
        # CLIP features are L2-normalised (entries ~0.04); a LayerNorm rescales them per clip
        self.clip_norm = nn.LayerNorm(c.feature_dim) if c.clip_norm else nn.Identity()
        self.clip_fc = nn.Sequential(nn.Linear(c.feature_dim, c.hidden_dim), nn.ReLU(),
                                     nn.Dropout(c.dropout))
        self.map_convs = MapConvStack(c.hidden_dim, c.map_kernels)
        self.lstm = nn.LSTM(c.token_dim, c.hidden_dim // 2, num_layers=c.lstm_layers,
                            batch_first=True, bidirectional=True,
                            dropout=c.dropout if c.lstm_layers > 1 else 0.0)
        self.semantic = SemanticExtractor(c.token_dim, c.hidden_dim)
        self.phi_m = MLP(c.hidden_dim, c.space_dim, c.space_dim, c.dropout)
        self.phi_s = MLP(c.hidden_dim, c.space_dim, c.space_dim, c.dropout)
        self.phi_u = MLP(c.hidden_dim, c.space_dim, c.space_dim, c.dropout)
        conv_k, gate_k = c.fuse_kernels
        # phi_fuse: "one convolutional and one gated convolutional layer" (paper, Sec. 4.1)
        self.fuse_conv = nn.Conv2d(c.space_dim, c.space_dim, conv_k, padding=conv_k // 2)
        self.fuse_gated = GatedConv2d(c.space_dim, 1, gate_k)
        index = torch.from_numpy(proposal_index(c.n_clips))
        self.register_buffer("cells", index[:, 0] * c.n_clips + index[:, 1], persistent=False)
        self.register_buffer("mask", torch.from_numpy(proposal_mask(c.n_clips)), persistent=False)
        self.video_text = VideoText(VideoTextConfig(**c.video_text)) if c.video_text else None
        width = c.space_dim + (self.video_text.config.embed_dim if self.video_text else 0)
        # query vectors of the bank sentences (set by train.compose), without the hub column
        self.register_buffer("hub_queries", torch.zeros(c.hub_bank, width),
                             persistent=bool(c.hub_bank))
        # pi, one per proposal in proposal order (set by train.cell_prior)
        self.register_buffer("proposal_prior", torch.zeros(self.n_proposals),
                             persistent=c.cell_prior)

    def reconfigured(self, **changes) -> FVMR:
        """A copy with ``changes`` to its config and the same weights (for settings that leave
        every weight's shape as it is, e.g. ``one_video_text_scale``)."""
        copy = FVMR(dataclasses.replace(self.config, **changes)).eval()
        copy.load_state_dict(self.state_dict())
        return copy.to(next(self.parameters()).device)

    @property
    def embedding_dim(self) -> int:
        """Width of the search vectors (``encode_moments`` / ``encode_queries``)."""
        return self._unpadded_dim + self._padding

    @property
    def _unpadded_dim(self) -> int:
        return int(self.hub_queries.shape[1]) + (1 if self.constant_column else 0)

    @property
    def constant_column(self) -> bool:
        """Whether the search vectors end in the constant column (query side 1) that carries the
        per-video hub correction and the per-proposal prior."""
        return bool(self.config.hub_bank or self.config.cell_prior)

    @property
    def constant_column_index(self) -> int | None:
        """Where that column sits in the search vectors (None: the model has none)."""
        return self._unpadded_dim - 1 if self.constant_column else None

    @property
    def video_text_columns(self) -> tuple[int, int] | None:
        """[start, stop) of the video-text columns sqrt(beta) t in the search vectors (None: the
        model has no video-text term)."""
        if self.video_text is None:
            return None
        return self.config.space_dim, self.config.space_dim + self.video_text.config.embed_dim

    @property
    def _padding(self) -> int:
        """Zero columns that round a width with corpus terms up to ``WIDTH_MULTIPLE``."""
        width = self._unpadded_dim
        return 0 if width == self.config.space_dim else -width % WIDTH_MULTIPLE

    def _padded(self, vectors: torch.Tensor) -> torch.Tensor:
        """``vectors`` with the zero columns of ``_padding`` appended (inner products unchanged)."""
        if not self._padding:
            return vectors
        return torch.nn.functional.pad(vectors, (0, self._padding))

    @property
    def n_proposals(self) -> int:
        """P, the number of 2D-map proposals per video."""
        return int(self.cells.numel())

    def moment_cells(self, clips: torch.Tensor) -> torch.Tensor:
        """Video encoder + phi_m on every map cell: (B, N, Dv) clips -> (B, N*N, D)."""
        hidden = self.clip_fc(self.clip_norm(clips * self.config.clip_scale))  # (B, N, H)
        map2d = self.map_convs(map_max_pool(hidden), self.mask)  # (B, H, N, N)
        return self.phi_m(map2d.flatten(2).transpose(1, 2))  # (B, N*N, D)

    def encode_moments(self, clips: torch.Tensor) -> torch.Tensor:
        """Search vectors of every proposal: (B, N, Dv) clips -> (B, P, embedding_dim).

        phi_m(m_i), followed by the corpus terms when the model has them (see the config).
        """
        moments = self.moment_cells(clips)[:, self.cells]  # (B, P, D)
        if self.video_text is not None:
            moments = torch.cat([moments, self.corpus_vectors(clips, moments.shape[1])], -1)
        if self.constant_column:
            moments = torch.cat([moments, self._constant_column(moments)], -1)
        return self._padded(moments)

    def _constant_column(self, moments: torch.Tensor) -> torch.Tensor:
        """(B, P, 1): -gamma b_v (hub correction) + pi_i (cell prior), each where the model has
        it."""
        column = moments.new_zeros(*moments.shape[:2], 1)
        if self.config.hub_bank:
            hub = (moments @ self.hub_queries.T).amax(1).mean(-1)  # (B,) b_v
            column = column - self.config.hub_weight * hub[:, None, None]
        if self.config.cell_prior:
            column = column + self.proposal_prior.to(moments.dtype)[None, :, None]
        return column

    def corpus_vectors(self, clips: torch.Tensor, n_proposals: int) -> torch.Tensor:
        """sqrt(beta) x the video model's vectors, one per proposal: (B, N, Dv) -> (B, P, E)."""
        weight = self.config.video_weight ** 0.5
        if self.video_text.config.level == "moment":
            return self.video_text.encode_proposals(clips) * weight  # same proposal order
        video = self.video_text.encode_videos(clips) * weight  # (B, E)
        return video[:, None].expand(-1, n_proposals, -1)

    def encode_queries(self, tokens: torch.Tensor, token_mask: torch.Tensor,
                       hub_column: bool = True) -> torch.Tensor:
        """Search vectors of sentences: (B, L, Dt), (B, L) -> (B, embedding_dim).

        phi_s(w_1 + w_L), followed by the corpus terms when the model has them; without
        ``hub_column`` the vectors stop before the constant column's 1 (hub correction and
        prior) and the zero padding (the bank's vectors, of ``hub_queries``' width).
        """
        queries = self.query_space(tokens, token_mask)  # (B, D)
        if self.video_text is not None:
            text = self.video_text.encode_texts(tokens, token_mask)
            queries = torch.cat([queries, text * self.config.video_weight ** 0.5], -1)
        if not hub_column:
            return queries
        if self.constant_column:
            queries = torch.cat([queries, queries.new_ones(queries.shape[0], 1)], -1)
        return self._padded(queries)

    def query_space(self, tokens: torch.Tensor, token_mask: torch.Tensor) -> torch.Tensor:
        """Common-space query embeddings phi_s(w_1 + w_L): (B, L, Dt), (B, L) -> (B, D)."""
        words = run_packed(self.lstm, tokens, token_mask)  # (B, L, H)
        return self.phi_s(words[:, 0] + last_valid(words, token_mask))

    def teacher_scores(self, cells: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Eq. 7 over the map: (B, N*N, D) phi_m cells and (B, Du) u -> (B, P) logits q."""
        n = self.config.n_clips
        fused = cells * self.phi_u(u)[:, None]  # (B, N*N, D)
        fused = fused.transpose(1, 2).reshape(fused.shape[0], -1, n, n)  # (B, D, N, N)
        fused = torch.relu(self.fuse_conv(fused)) * self.mask.to(fused.dtype)
        return self.fuse_gated(fused).flatten(1)[:, self.cells]  # (B, P)

    def forward(self, clips: torch.Tensor, tokens: torch.Tensor, token_mask: torch.Tensor,
                tree: RoleTreeTensors | None = None, query_video: torch.Tensor | None = None
                ) -> FVMROutput:
        """Score every proposal of each video against its query.

        Args:
            clips: (B, N, Dv) clip features, or (V, N, Dv) with ``query_video``.
            tokens: (B, L, Dt) token embeddings; token_mask: (B, L) bool.
            tree: role trees for the teacher; None skips it (inference, w/o SD ablation).
            query_video: (B,) row of ``clips`` each query belongs to (each video is encoded
                once); None: row b of ``clips`` belongs to query b.

        Returns:
            :class:`FVMROutput` with p (and q when ``tree`` is given).
        """
        cells = self.moment_cells(clips)  # (V, N*N, D)
        if query_video is not None:
            cells = cells[query_video]  # (B, N*N, D)
        moments = cells[:, self.cells]  # (B, P, D)
        queries = self.query_space(tokens, token_mask)  # (B, D)
        p = torch.einsum("bpd,bd->bp", moments, queries)  # Eq. 6
        q = None
        if tree is not None:
            q = self.teacher_scores(cells, self.semantic(tokens, token_mask, tree))
        return FVMROutput(p=p, q=q, moments=moments, queries=queries)
