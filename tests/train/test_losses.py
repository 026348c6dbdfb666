import math

import torch

from moment_search.train.losses import cross_video, distillation, fvmr_loss, soft_bce


def test_soft_bce_hand_value():
    logits = torch.tensor([[0.0, 0.0]])
    labels = torch.tensor([[1.0, 0.5]])
    assert math.isclose(float(soft_bce(logits, labels)), math.log(2), rel_tol=1e-6)


def test_distillation_is_bce_of_softmaxes_and_detaches_teacher():
    student = torch.tensor([[1.0, 0.0]], requires_grad=True)
    teacher = torch.tensor([[0.0, 0.0]], requires_grad=True)
    loss = distillation(student, teacher)
    p1 = math.e / (math.e + 1)
    # target (0.5, 0.5): mean over proposals of -[0.5 log p + 0.5 log(1 - p)]
    expected = -0.5 * (0.5 * math.log(p1) + 0.5 * math.log(1 - p1)
                       + 0.5 * math.log(1 - p1) + 0.5 * math.log(p1))
    assert math.isclose(float(loss.detach()), expected, rel_tol=1e-5)
    loss.backward()
    assert teacher.grad is None and student.grad is not None


def test_distillation_minimised_when_student_matches():
    teacher = torch.tensor([[2.0, 0.0, -1.0]])
    same = distillation(teacher.clone(), teacher)
    other = distillation(torch.tensor([[0.0, 2.0, -1.0]]), teacher)
    assert same < other


def test_cross_video_penalises_other_videos_best_proposal():
    queries = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # video 0 matches query 0 only; video 1 matches query 1 only
    good = torch.tensor([[[5.0, 0.0], [0.0, 0.0]], [[0.0, 5.0], [0.0, 0.0]]])
    bad = good.flip(0)  # each video now matches the other query
    groups = torch.tensor([0, 1])
    assert cross_video(good, queries, groups) < cross_video(bad, queries, groups)
    # hand value: the hardest other-video score is 0 for both queries -> BCE(0, 0) = log 2
    assert math.isclose(float(cross_video(good, queries, groups)), math.log(2), rel_tol=1e-6)
    # queries of the same video are not negatives of each other
    assert float(cross_video(bad, queries, torch.tensor([0, 0]))) == 0.0


def test_fvmr_loss_terms():
    p, q = torch.zeros(2, 3), torch.ones(2, 3)
    labels = torch.zeros(2, 3)
    warm = fvmr_loss(p, q, labels, 0.0, 1.0)
    assert set(warm) == {"bce_p", "bce_q", "total"}
    full = fvmr_loss(p, q, labels, 3.0, 1.0)
    uniform = -(1 / 3 * math.log(1 / 3) + 2 / 3 * math.log(2 / 3))
    assert math.isclose(float(full["distill"]), 3.0 * uniform, rel_tol=1e-5)
    assert set(fvmr_loss(p, None, labels, 3.0, 1.0)) == {"bce_p", "total"}


def test_weighted_losses_match_the_plain_ones_at_weight_one_and_weigh_queries():
    import torch

    from moment_search.train.losses import distillation, fvmr_loss, soft_bce

    torch.manual_seed(0)
    p, q, y = torch.randn(4, 6), torch.randn(4, 6), torch.rand(4, 6)
    ones = torch.ones(4)
    torch.testing.assert_close(soft_bce(p, y, ones), soft_bce(p, y))
    torch.testing.assert_close(distillation(p, q, 1.0, ones), distillation(p, q, 1.0))
    only_first = torch.tensor([1.0, 0.0, 0.0, 0.0])
    torch.testing.assert_close(soft_bce(p, y, only_first), soft_bce(p[:1], y[:1]))
    half = fvmr_loss(p, q, y, 3.0, 1.0, torch.tensor([1.0, 0.5, 0.5, 1.0]))
    assert set(half) == {"bce_p", "bce_q", "distill", "total"}
