import math

import pytest
import torch

from moment_search.train.lpnet_losses import (
    boundary_clips,
    boundary_kl_loss,
    kl_to_labels,
    matching_regression_loss,
    proposal_iou_loss,
    proposal_window_iou,
    relaxed_boundary_labels,
    span_iou,
    weighted_mean,
)


def test_span_iou_known_values():
    a = torch.tensor([[0.0, 0.5], [0.2, 0.4], [0.0, 0.1]])
    b = torch.tensor([[0.25, 0.75], [0.2, 0.4], [0.5, 0.9]])
    torch.testing.assert_close(span_iou(a, b), torch.tensor([0.25 / 0.75, 1.0, 0.0]))


def test_proposal_window_iou_takes_the_best_window():
    spans = torch.tensor([[0.0, 0.5], [0.5, 1.0]])
    windows = torch.tensor([[[0.0, 0.5], [0.6, 1.0]], [[0.0, 0.25], [9.0, 9.0]]])
    mask = torch.tensor([[True, True], [True, False]])
    torch.testing.assert_close(proposal_window_iou(spans, windows, mask),
                               torch.tensor([[1.0, 0.8], [0.5, 0.0]]))


def test_proposal_iou_loss_moves_only_the_best_proposal():
    spans = torch.tensor([[0.0, 0.5], [0.3, 0.7], [0.8, 1.0]], requires_grad=True)
    windows = torch.tensor([[[0.2, 0.6]], [[0.0, 0.4]]])
    mask = torch.ones(2, 1, dtype=torch.bool)
    loss = proposal_iou_loss(spans, windows, mask, torch.ones(2))
    value = float(loss.detach())
    # query 0: best is proposal 1, IoU 0.3/0.5 = 0.6; query 1: proposal 0, IoU 0.4/0.5 = 0.8
    assert value == pytest.approx(((1 - 0.6) + (1 - 0.8)) / 2)
    loss.backward()
    assert spans.grad[2].abs().sum() == 0 and spans.grad[:2].abs().sum() > 0
    # query 0 pulls proposal 1's start down toward 0.2 (the loss falls as start falls)
    assert spans.grad[1, 0] > 0
    weighted = proposal_iou_loss(spans, windows, mask, torch.tensor([1.0, 0.0]))
    assert float(weighted.detach()) == pytest.approx(0.4)


def test_matching_regression_known_value():
    logits = torch.tensor([[0.0, math.log(3.0)]])  # sigmoid: 0.5, 0.75
    targets = torch.tensor([[0.0, 1.0]])
    loss = matching_regression_loss(logits, targets, torch.ones(1))
    assert float(loss) == pytest.approx((0.25 + 0.0625) / 2)


def test_relaxed_labels_and_boundary_clips():
    torch.testing.assert_close(relaxed_boundary_labels(2, 5),
                               torch.tensor([0.0, 0.25, 0.5, 0.25, 0.0]))
    torch.testing.assert_close(relaxed_boundary_labels(0, 4),
                               torch.tensor([2 / 3, 1 / 3, 0.0, 0.0]))
    with pytest.raises(ValueError, match="outside"):
        relaxed_boundary_labels(4, 4)
    assert boundary_clips((0.25, 0.5), 8) == (2, 3)
    assert boundary_clips((0.3, 0.31), 8) == (2, 2)
    assert boundary_clips((0.9, 1.0), 8) == (7, 7)


def test_kl_known_values_and_every_query_counts():
    labels = torch.tensor([[0.25, 0.5, 0.25, 0.0]])
    # P equal to Y (0 where Y is 0 needs -inf; a large negative logit is close)
    logits = torch.log(torch.tensor([[0.25, 0.5, 0.25, 1e-12]]))
    assert float(kl_to_labels(logits, labels)) == pytest.approx(0.0, abs=1e-6)
    uniform = torch.zeros(1, 4)
    expected = 0.5 * math.log(0.25 / 0.25) * 0 + (2 * 0.25 * math.log(1.0) + 0.5 * math.log(2.0))
    assert float(kl_to_labels(uniform, labels)) == pytest.approx(expected)
    # two queries: the second (a perfect fit) is not skipped as in the official loop
    start = torch.cat([uniform, logits])
    both = boundary_kl_loss(start, start, labels.repeat(2, 1), labels.repeat(2, 1),
                            torch.ones(2))
    assert float(both) == pytest.approx(2 * expected / 2, rel=1e-5)
    assert float(weighted_mean(torch.tensor([1.0, 3.0]), torch.tensor([0.0, 0.0]))) == 0.0
