import numpy as np
import pytest
import torch
import torch.nn.functional as F

from moment_search.data.corpus_dir import open_corpus
from moment_search.models.fian import FIAN, FIANConfig
from moment_search.train.fian_data import anchor_targets, build_fian_examples, collate_fian
from moment_search.train.fian_trainer import FIANTrainConfig, FIANTrainer, fian_loss
from tests.train.localizer_checks import (
    FakeEncoder,
    check_extra_pairs_weighted,
    check_fit_and_resume,
)

MODEL = FIANConfig(feature_dim=8, hidden_dim=8, heads=2, n_steps=16, kernels=(4, 6),
                   max_tokens=32, dropout=0.0)


def test_anchor_targets_by_hand():
    # 16 s video on 8 steps (2 s each); ground truth [4, 10] s = steps [2, 5]
    anchors = np.array([[0, 4], [2, 6], [4, 8]])
    iou, offsets = anchor_targets([(4.0, 10.0)], duration=16.0, anchors=anchors, n_steps=8)
    np.testing.assert_allclose(iou, [2 / 5, 3 / 4, 1 / 6], rtol=1e-6)
    np.testing.assert_allclose(offsets, [[2, 1], [0, -1], [-2, -3]])
    # two windows: each anchor is matched with its best one
    iou2, offsets2 = anchor_targets([(4.0, 10.0), (8.0, 16.0)], 16.0, anchors, 8)
    np.testing.assert_allclose(iou2, [2 / 5, 3 / 4, 1.0], rtol=1e-6)
    np.testing.assert_allclose(offsets2[2], [0, 0])
    with pytest.raises(ValueError, match="at least one"):
        anchor_targets([], 16.0, anchors, 8)


def test_loss_by_hand():
    logits = torch.tensor([[0.5, -1.0, 2.0], [0.0, 1.0, -0.5]])
    iou = torch.tensor([[0.8, 0.2, 0.6], [0.1, 0.9, 0.3]])
    offsets = torch.tensor([[[0.5, 0.0], [1.0, 1.0], [3.0, -1.0]],
                            [[0.0, 0.0], [0.2, 0.1], [0.0, 0.0]]])
    targets = torch.zeros(2, 3, 2)
    terms = fian_loss(logits, offsets, iou, targets, tau=0.55, alpha=0.1)
    bce = F.binary_cross_entropy_with_logits(logits, iou, reduction="none")
    pos = [(0, 0), (0, 2), (1, 1)]
    neg = [(0, 1), (1, 0), (1, 2)]
    align = sum(bce[b, a] for b, a in pos) / 3 + sum(bce[b, a] for b, a in neg) / 3
    smooth_l1 = {(0, 0): 0.125, (0, 2): 2.5 + 0.5, (1, 1): 0.02 + 0.005}
    boundary = sum(smooth_l1.values()) / 3
    torch.testing.assert_close(terms["align"], align)
    torch.testing.assert_close(terms["boundary"], torch.tensor(boundary))
    torch.testing.assert_close(terms["total"], align + 0.1 * boundary)
    # per-query weights: query 1 counts half
    weighted = fian_loss(logits, offsets, iou, targets, 0.55, 0.1, torch.tensor([1.0, 0.5]))
    align_w = ((bce[0, 0] + bce[0, 2] + 0.5 * bce[1, 1]) / 2.5
               + (bce[0, 1] + 0.5 * bce[1, 0] + 0.5 * bce[1, 2]) / 2.0)
    torch.testing.assert_close(weighted["align"], align_w)
    # no positive anchor: no positive or boundary term
    none = fian_loss(logits, offsets, iou * 0.1, targets, 0.55, 0.1)
    assert float(none["boundary"]) == 0.0
    torch.testing.assert_close(none["align"],
                               F.binary_cross_entropy_with_logits(logits, iou * 0.1))


def test_examples_and_batches(tiny_corpus):
    corpus, store = open_corpus(tiny_corpus, split="train", feature_rate=1.0)
    examples = build_fian_examples(corpus, store, MODEL, FakeEncoder())
    assert [e.qid for e in examples] == [q.qid for q in corpus.queries]
    first = examples[0]
    assert first.steps.shape == (16, 8) and first.iou.shape == (24,)
    assert first.offsets.shape == (24, 2) and float(first.iou.max()) > 0
    batch = collate_fian(examples[:3])
    assert batch.steps.shape == (3, 16, 8) and batch.iou.shape == (3, 24)
    assert batch.token_mask.sum(1).tolist() == [e.tokens.shape[0] for e in examples[:3]]
    with pytest.raises(ValueError, match="empty"):
        collate_fian([])


def trainer(corpus, out, encoder, epochs=2, **overrides):
    config = FIANTrainConfig(epochs=epochs, batch_size=2, lr=1e-2, seed=0, **overrides)
    return FIANTrainer(corpus, out, MODEL, config, feature_rate=1.0, encoder=encoder)


def test_fit_saves_best_and_resume_matches_an_uninterrupted_run(tiny_corpus, tmp_path):
    records, _ = check_fit_and_resume(
        lambda out, longer: trainer(tiny_corpus, out, FakeEncoder(), epochs=3 if longer else 2,
                                    ema_decay=0.9), tmp_path)
    assert {"align", "boundary", "total"} <= set(records[0]["loss"])
    config, extra = FIAN.read_config(tmp_path / "run" / "best")
    assert config == MODEL and extra["feature_rate"] == 1.0 and extra["nms_threshold"] == 0.5


def test_extra_pairs_are_weighted_in_the_loss(tiny_corpus, tmp_path):
    config = FIANTrainConfig(epochs=1, batch_size=4, extras=("charades-actions:0.2",))
    check_extra_pairs_weighted(FIANTrainer, MODEL, config, tiny_corpus, tmp_path)
