"""DRN's losses (paper Sec. 3.6), each a pure function of tensors.

* Eq. 5, location regression: the IoU loss of UnitBox [41] (-log IoU of the predicted and target
  distances at one location), averaged over the positive locations (official ``IOULoss``);
* Eq. 6, semantic matching: the sigmoid focal loss [28] (alpha 0.25, gamma 2) over every
  location, divided by N_pos + B (the official code adds the batch size B so that a batch without
  positives does not divide by zero; the paper writes 1/N_pos);
* Eq. 7, IoU regression: Smooth-L1 between u_t = sigmoid(IoU logit) and the IoU of the predicted
  box with the ground truth, averaged over the boxes that overlap the ground truth (IoU > 0).
  The paper sums over every location; the official code keeps only boxes with IoU > 0.9 (a line
  marked TODO), which never shows the head a poor box. We take "the predictions that overlap the
  ground truth": the head then sees good and poor boxes alike, which is what ranking needs.

Not in the paper, off by default and on in the shipped recipe (``cross_video_weight``): a
cross-video term, the focal loss of Eq. 6 with every location labelled negative, for each query
paired with the segments of another video of the batch (:func:`other_video`), in the same
forward pass as the real pairs (so that BatchNorm normalises both together). DRN only ever sees
a query with its own video, so nothing makes m_t of a video that does not show the sentence low,
which is what a cascade over many videos ranks by. The term is normalised like Eq. 6 (by the
real pairs' N_pos + B), so it weighs one unrelated video as much as the query's own negatives.

Per-query weights w_b (``--extra`` pseudo-queries weigh less) count every location of query b
w_b times in each sum and each count, so all weights 1 give the unweighted losses.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

FOCAL_ALPHA = 0.25  # official fcos_loss_alpha
FOCAL_GAMMA = 2.0  # official fcos_loss_gamma


def focal_loss(logits: torch.Tensor, labels: torch.Tensor, alpha: float = FOCAL_ALPHA,
               gamma: float = FOCAL_GAMMA) -> torch.Tensor:
    """Element-wise sigmoid focal loss: -alpha (1-p)^g log p on positives, -(1-alpha) p^g
    log(1-p) on negatives, p = sigmoid(logits); labels in {0, 1}, any shape."""
    p = torch.sigmoid(logits)
    bce = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
    weight = torch.where(labels > 0, alpha * (1 - p) ** gamma, (1 - alpha) * p ** gamma)
    return weight * bce


def unitbox_iou_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """-log IoU of two boxes given as distances (d_s, d_e) > 0 from the same location:
    (..., 2) each -> (...). IoU = (min(d_s) + min(d_e)) / (sum of both lengths - that)."""
    inter = torch.minimum(pred, target).sum(-1)
    union = pred.sum(-1) + target.sum(-1) - inter
    return -torch.log((inter + 1e-8) / (union + 1e-8))


def box_iou(boxes: torch.Tensor, windows: torch.Tensor, window_mask: torch.Tensor
            ) -> torch.Tensor:
    """Best temporal IoU of each box with the query's windows.

    Args:
        boxes: (B, A, 2) ``[start, end]``; windows: (B, W, 2); window_mask: (B, W) bool.

    Returns:
        (B, A) IoU in [0, 1] (0 against no window).
    """
    start = torch.maximum(boxes[:, :, None, 0], windows[:, None, :, 0])
    end = torch.minimum(boxes[:, :, None, 1], windows[:, None, :, 1])
    inter = (end - start).clamp(min=0)  # (B, A, W)
    union = ((boxes[..., 1] - boxes[..., 0])[:, :, None]
             + (windows[..., 1] - windows[..., 0])[:, None] - inter)
    iou = inter / union.clamp(min=1e-6)
    return iou.masked_fill(~window_mask[:, None], 0.0).amax(-1)


def _weighted_mean(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """sum(values * weights) / sum(weights); 0 when no weight is positive."""
    total = weights.sum()
    if total <= 0:
        return values.new_zeros(())
    return (values * weights).sum() / total


def matching_loss(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor
                  ) -> torch.Tensor:
    """Eq. 6: focal loss summed over (B, A) locations / (N_pos + B), weighted by (B,) w_b."""
    return eq6_normalised(focal_loss(logits, labels), labels, weights)


def eq6_normalised(per_location: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor
                   ) -> torch.Tensor:
    """(B, A) per-location losses summed, weighted by (B,) w_b, over Eq. 6's normaliser of the
    real pairs' (B, A) labels: sum_b w_b (N_pos,b + 1)."""
    norm = (weights * (labels.sum(1) + 1)).sum()
    return (per_location.sum(1) * weights).sum() / norm.clamp(min=1e-6)


def other_video(videos: list[int]) -> list[int]:
    """For each example, the next one (cyclically) of a different video; -1 where every
    example of the batch shows the same video as it (then all are -1)."""
    count = len(videos)
    partner = []
    for i in range(count):
        others = [(i + step) % count for step in range(1, count)]
        partner.append(next((j for j in others if videos[j] != videos[i]), -1))
    return partner


def cross_video_loss(negative_logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor
                     ) -> torch.Tensor:
    """The cross-video term: focal loss with label 0 over the (B, A) logits of each query
    against another video, weighted by its w_b and divided by Eq. 6's normaliser of the real
    pairs (N_pos + B)."""
    return eq6_normalised(focal_loss(negative_logits, torch.zeros_like(negative_logits)),
                          labels, weights)


def location_loss(distances: torch.Tensor, targets: torch.Tensor, labels: torch.Tensor,
                  weights: torch.Tensor) -> torch.Tensor:
    """Eq. 5: the UnitBox IoU loss of (B, A, 2) distances, mean over positive locations."""
    per_location = unitbox_iou_loss(distances, targets.clamp(min=1e-6))  # (B, A)
    return _weighted_mean(per_location, labels * weights[:, None])


def iou_head_loss(iou_logits: torch.Tensor, boxes: torch.Tensor, windows: torch.Tensor,
                  window_mask: torch.Tensor, weights: torch.Tensor, min_overlap: float = 0.0
                  ) -> torch.Tensor:
    """Eq. 7: Smooth-L1(u_t, IoU(b_t, ground truth)) over boxes with IoU > ``min_overlap``.

    Args:
        iou_logits: (B, A); boxes: (B, A, 2) predicted boxes (their IoU is a target: detached).
        windows, window_mask: (B, W, 2) ground truth in the boxes' units, (B, W) bool.
        weights: (B,) per-query weights.
    """
    target = box_iou(boxes.detach(), windows, window_mask)  # (B, A)
    per_location = F.smooth_l1_loss(torch.sigmoid(iou_logits), target, reduction="none")
    chosen = (target > min_overlap).to(target.dtype)
    return _weighted_mean(per_location, chosen * weights[:, None])
