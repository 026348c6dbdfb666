"""FVMR's losses as pure functions of tensors (paper Eq. 8-10), plus the cross-video term.

All take logits; labels are soft IoU labels in [0, 1]. Shapes: B queries, P proposals.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_bce(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None
             ) -> torch.Tensor:
    """Eq. 8: binary cross-entropy of sigmoid(logits) against soft labels, mean over B and P.

    Args:
        logits: (B, P) proposal scores before the sigmoid.
        labels: (B, P) soft IoU labels in [0, 1].
        weights: (B,) per-query weights (None: all 1); the mean over B is weighted by them.
    """
    if weights is None:
        return F.binary_cross_entropy_with_logits(logits, labels)
    per_query = F.binary_cross_entropy_with_logits(logits, labels, reduction="none").mean(-1)
    return (per_query * weights).sum() / weights.sum().clamp(min=1e-12)


def distillation(student: torch.Tensor, teacher: torch.Tensor, temperature: float = 1.0,
                 weights: torch.Tensor | None = None) -> torch.Tensor:
    """Eq. 9: L_dis(p, q) = L_ce(softmax(p/T), softmax(q/T)), q detached.

    Read literally, as its authors most likely implemented it: their L_ce of Eq. 8 (binary
    cross-entropy averaged over the N proposals) applied to the two softmax distributions over
    proposals, the teacher's as the target. The 1/N average keeps its gradient on the scale of
    the BCE terms; an un-averaged soft-target cross-entropy, tried first, overwhelmed them at
    lambda = 3 and collapsed p to the position prior on Charades-STA.

    Args:
        student: (B, P) fast-path logits p.
        teacher: (B, P) teacher logits q (gradient is not propagated into it).
        temperature: T.
        weights: (B,) per-query weights (None: all 1).
    """
    target = torch.softmax(teacher.detach() / temperature, dim=-1)
    student_probs = torch.softmax(student / temperature, dim=-1).clamp(1e-7, 1 - 1e-7)
    if weights is None:
        return F.binary_cross_entropy(student_probs, target)
    per_query = F.binary_cross_entropy(student_probs, target, reduction="none").mean(-1)
    return (per_query * weights).sum() / weights.sum().clamp(min=1e-12)


def cross_video(moments: torch.Tensor, queries: torch.Tensor, video_groups: torch.Tensor
                ) -> torch.Tensor:
    """Other videos' best proposals as negatives, so scores of different videos compare.

    FVMR's BCE only ever sees a query with its own video. For corpus search, a query's score for
    the best-matching proposal of an unrelated video must also be low: each query is scored
    against every proposal of the other videos in the batch, the highest score per video (the
    hardest negative) gets label 0 under the same sigmoid BCE as Eq. 8, so the term is on the
    scale of the fast-path loss. Other queries of the same video are not negatives. (An InfoNCE
    form with temperature 0.1, tried first, dominated the BCE terms and wrecked single-video
    ranking on Charades-STA.)

    Args:
        moments: (B, P, D) moment embeddings of each query's video.
        queries: (B, D) query embeddings.
        video_groups: (B,) int, equal for queries of the same video.
    """
    scores = torch.einsum("qd,vpd->qvp", queries, moments)  # (B queries, B videos, P)
    hardest = scores.max(-1).values  # (B, B)
    other = video_groups[:, None] != video_groups[None, :]  # (B, B)
    if not other.any():
        return scores.new_zeros(())
    return F.binary_cross_entropy_with_logits(hardest[other], torch.zeros_like(hardest[other]))


def fvmr_loss(p: torch.Tensor, q: torch.Tensor | None, labels: torch.Tensor,
              distill_weight: float, temperature: float, weights: torch.Tensor | None = None
              ) -> dict[str, torch.Tensor]:
    """Eq. 10: BCE(p, y) + BCE(q, y) + lambda * L_dis(p, q); each term also returned by name.

    ``distill_weight = 0`` (warm-up, or the w/o SD ablation) drops the distillation term; a missing
    teacher (``q is None``) drops both teacher terms. ``weights`` (B,) weighs each query's terms
    (extra pseudo-queries weigh less than real sentences).
    """
    terms = {"bce_p": soft_bce(p, labels, weights)}
    if q is not None:
        terms["bce_q"] = soft_bce(q, labels, weights)
        if distill_weight > 0:
            terms["distill"] = distill_weight * distillation(p, q, temperature, weights)
    terms["total"] = sum(terms.values())
    return terms
