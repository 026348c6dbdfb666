"""LPNet's losses (paper Sec. 3.3-3.5), each a pure function of tensors.

* Eq. 7, the proposal IoU loss of the dynamic adjustor: per query, the proposal with the largest
  ground-truth IoU ("we directly use the ground-truth matching score to decide which proposal to
  adjust") pays 1 - tIoU(b_i, b); it is the only loss that reaches the proposal boxes;
* Eq. 10, matching regression: MSE between s_i = sigmoid(logit_i) and each proposal's IoU with
  the ground truth. This is also the paper's ranking objective: the interactive rating layer
  "turns [ranking] into an IoU regression problem", so there is no separate ranking loss;
* Eq. 11, the boundary-aware loss: KL divergences between the relaxed frame-level start/end
  labels Y and the predicted distributions P = softmax(L). The paper writes D_KL(P || Y); we
  compute KL(Y || P) = sum Y log(Y / P), as the official ``kl_div`` and the relaxed-label
  method it follows (Opazo et al.) do: it is the fit of P to soft labels, and stays finite where
  Y is 0. The official loop covers only the first query of each batch (``for i in range(1)``),
  a slip; following the paper, every query of the batch counts here;
* Eq. 12: L = L_KL + lambda x L_reg (lambda = 100 in the paper).

Windows are fractions of the video ([start, end] in [0, 1]); a query with several ground-truth
windows is matched to the best one. Per-query weights w_b (``--extra`` pseudo-queries weigh
less) give weighted means over the batch, so all weights 1 give the plain losses.
"""

from __future__ import annotations

import torch

RELAXED_CENTRE = 0.5  # mass at the boundary clip (official soft label)
RELAXED_NEIGHBOUR = 0.25  # at each neighbour; renormalised at the video's ends


def weighted_mean(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """sum(values x weights) / sum(weights) over (B,); 0 when no weight is positive."""
    total = weights.sum()
    if total <= 0:
        return values.sum() * 0
    return (values * weights).sum() / total


def span_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Temporal IoU of broadcastable (..., 2) [start, end] spans -> (...); 0 for no overlap
    (and for two empty spans), differentiable in both."""
    inter = (torch.minimum(a[..., 1], b[..., 1]) - torch.maximum(a[..., 0], b[..., 0])).clamp(0)
    union = torch.maximum(a[..., 1], b[..., 1]) - torch.minimum(a[..., 0], b[..., 0])
    return inter / union.clamp(min=1e-8)


def proposal_window_iou(spans: torch.Tensor, windows: torch.Tensor, window_mask: torch.Tensor
                        ) -> torch.Tensor:
    """s_IoU of Eq. 10: each proposal's best IoU over a query's windows.

    Args:
        spans: (k, 2) proposals; windows: (B, W, 2); window_mask: (B, W) bool.

    Returns:
        (B, k) IoUs in [0, 1].
    """
    iou = span_iou(spans[None, :, None], windows[:, None])  # (B, k, W)
    return iou.masked_fill(~window_mask[:, None], 0.0).amax(-1)


def proposal_iou_loss(spans: torch.Tensor, windows: torch.Tensor, window_mask: torch.Tensor,
                      weights: torch.Tensor) -> torch.Tensor:
    """Eq. 7: per query, 1 - tIoU of the proposal that best overlaps its ground truth (the
    choice is made on detached IoUs; the gradient of the chosen IoU moves that proposal).

    Args:
        spans: (k, 2) proposals (with gradients); windows: (B, W, 2); window_mask: (B, W);
        weights: (B,).
    """
    iou = span_iou(spans[None, :, None], windows[:, None]).masked_fill(
        ~window_mask[:, None], -1.0)  # (B, k, W)
    flat = iou.flatten(1)  # (B, k W)
    best = flat.detach().argmax(1)  # (B,)
    chosen = flat.gather(1, best[:, None]).squeeze(1).clamp(min=0)  # (B,)
    return weighted_mean(1 - chosen, weights)


def matching_regression_loss(logits: torch.Tensor, targets: torch.Tensor,
                             weights: torch.Tensor) -> torch.Tensor:
    """Eq. 10: mean over proposals of (sigmoid(logits) - s_IoU)^2, weighted over queries.

    Args:
        logits: (B, k); targets: (B, k) IoUs; weights: (B,).
    """
    per_query = ((torch.sigmoid(logits) - targets) ** 2).mean(1)  # (B,)
    return weighted_mean(per_query, weights)


def relaxed_boundary_labels(index: int, n_clips: int) -> torch.Tensor:
    """Y of Eq. 11 for one boundary: 0.5 at clip ``index``, 0.25 at each neighbour (the
    official soft label), renormalised to sum 1 where a neighbour falls off the video.

    Raises:
        ValueError: an index outside [0, n_clips).
    """
    if not 0 <= index < n_clips:
        raise ValueError(f"boundary clip {index} is outside [0, {n_clips})")
    labels = torch.zeros(n_clips)
    labels[index] = RELAXED_CENTRE
    for neighbour in (index - 1, index + 1):
        if 0 <= neighbour < n_clips:
            labels[neighbour] = RELAXED_NEIGHBOUR
    return labels / labels.sum()


def boundary_clips(window: tuple[float, float], n_clips: int) -> tuple[int, int]:
    """The clips holding a window's start and end (fractions of the video) out of
    ``n_clips``; the end clip is never before the start clip."""
    start = min(int(window[0] * n_clips), n_clips - 1)
    end = min(max(int(-(-window[1] * n_clips // 1)) - 1, start), n_clips - 1)
    return start, end


def kl_to_labels(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """KL(Y || softmax(logits)) per row: (B, T) each -> (B,) (0 log 0 taken as 0)."""
    log_p = torch.log_softmax(logits, -1)
    safe = torch.where(labels > 0, labels, torch.ones_like(labels))
    return (labels * (torch.log(safe) - log_p)).sum(-1)


def boundary_kl_loss(start_logits: torch.Tensor, end_logits: torch.Tensor,
                     start_labels: torch.Tensor, end_labels: torch.Tensor,
                     weights: torch.Tensor) -> torch.Tensor:
    """Eq. 11 over every query of the batch (the official loop stops after the first).

    Args:
        start_logits, end_logits: (B, T) L^s, L^e; start_labels, end_labels: (B, T) Y_s, Y_e;
        weights: (B,).
    """
    per_query = kl_to_labels(start_logits, start_labels) + kl_to_labels(end_logits, end_labels)
    return weighted_mean(per_query, weights)
