import math

import pytest
import torch

from moment_search.train.drn_losses import (
    box_iou,
    focal_loss,
    iou_head_loss,
    location_loss,
    matching_loss,
    unitbox_iou_loss,
)


def test_focal_loss_by_hand():
    logits = torch.tensor([0.0, math.log(3.0)])  # p = 0.5, 0.75
    pos = focal_loss(logits, torch.ones(2))
    neg = focal_loss(logits, torch.zeros(2))
    torch.testing.assert_close(pos, torch.tensor([0.25 * 0.25 * math.log(2),
                                                  0.25 * 0.0625 * -math.log(0.75)]))
    torch.testing.assert_close(neg, torch.tensor([0.75 * 0.25 * math.log(2),
                                                  0.75 * 0.5625 * -math.log(0.25)]))


def test_unitbox_by_hand():
    # pred (1, 2), target (2, 2): intersection 1 + 2 = 3, union 3 + 4 - 3 = 4
    loss = unitbox_iou_loss(torch.tensor([[1.0, 2.0]]), torch.tensor([[2.0, 2.0]]))
    torch.testing.assert_close(loss, torch.tensor([-math.log(0.75)]))
    assert unitbox_iou_loss(torch.tensor([2.0, 3.0]), torch.tensor([2.0, 3.0])).abs() < 1e-6


def test_matching_loss_normalised_by_positives_plus_batch():
    logits = torch.tensor([[0.0, 1.0, -1.0], [2.0, 0.0, 0.0]])
    labels = torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0]])
    total = focal_loss(logits, labels).sum()
    torch.testing.assert_close(matching_loss(logits, labels, torch.ones(2)), total / (3 + 2))
    # query 1 at weight 0.5: its sum and its count (2 positives + 1) count half
    weighted = matching_loss(logits, labels, torch.tensor([1.0, 0.5]))
    rows = focal_loss(logits, labels).sum(1)
    torch.testing.assert_close(weighted, (rows[0] + 0.5 * rows[1]) / (2 + 0.5 * 3))


def test_location_loss_only_on_positives():
    distances = torch.tensor([[[1.0, 2.0], [5.0, 5.0]]])
    targets = torch.tensor([[[2.0, 2.0], [0.0, 0.0]]])
    labels = torch.tensor([[1.0, 0.0]])
    torch.testing.assert_close(location_loss(distances, targets, labels, torch.ones(1)),
                               torch.tensor(-math.log(0.75)))
    assert location_loss(distances, targets, torch.zeros(1, 2), torch.ones(1)) == 0


def test_box_iou_and_iou_head_loss_by_hand():
    boxes = torch.tensor([[[0.0, 4.0], [2.0, 6.0], [8.0, 9.0]]])
    windows = torch.tensor([[[2.0, 6.0], [100.0, 101.0]]])
    mask = torch.tensor([[True, False]])  # the second window is padding
    iou = box_iou(boxes, windows, mask)
    torch.testing.assert_close(iou, torch.tensor([[2 / 6, 1.0, 0.0]]))
    logits = torch.tensor([[0.0, 0.0, 5.0]], requires_grad=True)  # u = 0.5, 0.5, ~1
    loss = iou_head_loss(logits, boxes, windows, mask, torch.ones(1))
    # the third box does not overlap: not a training sample of the IoU head
    expected = (0.5 * (0.5 - 2 / 6) ** 2 + 0.5 * 0.5 ** 2) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    loss.backward()
    assert logits.grad[0, 2] == 0
