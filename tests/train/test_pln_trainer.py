import numpy as np
import pytest
import torch
import torch.nn.functional as F

from moment_search.data.corpus_dir import open_corpus
from moment_search.geometry.proposals import proposal_mask
from moment_search.models.pln import PLN, PLNConfig
from moment_search.text.tokens import TokenEncoder
from moment_search.train.pln_data import build_pln_examples, collate_pln, stage_label_map
from moment_search.train.pln_trainer import (
    PLNTrainConfig,
    PLNTrainer,
    pln_loss,
    resolve_stage_weights,
    stage_bce,
)
from tests.train.localizer_checks import (
    FakeEncoder,
    check_fit_and_resume,
)

MODEL = PLNConfig(feature_dim=8, stage_clips=(4, 8), hidden_dim=8, lstm_layers=1)


@pytest.fixture(scope="module")
def encoder():
    return TokenEncoder(max_length=32)


def test_stage_label_map_by_hand():
    # 8 s video, 4 clips of 2 s; ground truth [2, 5] s
    labels = stage_label_map([(2.0, 5.0)], duration=8.0, n_clips=4, tau=0.5)
    assert labels.shape == (4, 4) and labels.dtype == np.float32
    assert labels[1, 1] == pytest.approx((2 / 3 - 0.5) / 0.5)  # [2, 4]: IoU 2/3
    assert labels[1, 2] == pytest.approx((3 / 4 - 0.5) / 0.5)  # [2, 6]: IoU 3/4
    assert labels[0, 1] == 0.0  # [0, 4]: IoU 2/5 <= tau
    assert labels[2, 2] == 0.0  # [4, 6]: IoU 1/4
    assert (labels[np.tril_indices(4, -1)] == 0).all()
    best_of_two = stage_label_map([(2.0, 5.0), (4.0, 6.0)], 8.0, 4, tau=0.5)
    assert best_of_two[2, 2] == 1.0 and best_of_two[1, 1] == labels[1, 1]
    with pytest.raises(ValueError, match="tau"):
        stage_label_map([(2.0, 5.0)], 8.0, 4, tau=1.0)


def test_examples_and_batches_hold_every_stage(tiny_corpus):
    corpus, store = open_corpus(tiny_corpus, split="train", feature_rate=1.0)
    examples = build_pln_examples(corpus, store, (4, 8), FakeEncoder())
    assert [e.qid for e in examples] == [q.qid for q in corpus.queries]
    first = examples[0]
    assert [tuple(c.shape) for c in first.clips] == [(4, 8), (8, 8)]
    assert [tuple(y.shape) for y in first.labels] == [(4, 4), (8, 8)]
    assert max(float(y.max()) for y in first.labels) > 0  # the ground truth is labelled
    batch = collate_pln(examples[:3])
    assert [tuple(c.shape) for c in batch.clips] == [(3, 4, 8), (3, 8, 8)]
    assert [tuple(y.shape) for y in batch.labels] == [(3, 4, 4), (3, 8, 8)]
    assert torch.equal(batch.masks[1], torch.from_numpy(proposal_mask(8)))
    assert batch.token_mask.sum(1).tolist() == [e.tokens.shape[0] for e in examples[:3]]
    with pytest.raises(ValueError, match="empty"):
        collate_pln([])


def test_loss_is_weighted_sum_of_masked_stage_bces():
    g = torch.Generator().manual_seed(0)
    logits = [torch.randn(2, n, n, generator=g) for n in (2, 4)]
    labels = [torch.rand(2, n, n, generator=g) for n in (2, 4)]
    masks = [torch.ones(n, n, dtype=torch.bool).triu() for n in (2, 4)]
    terms = pln_loss(logits, labels, masks, (1.0, 1.5))
    by_hand = []
    for x, y, m in zip(logits, labels, masks, strict=True):
        cells = m.nonzero().tolist()  # the V^t valid candidates
        values = [F.binary_cross_entropy(torch.sigmoid(x[b, i, j]), y[b, i, j])
                  for b in range(2) for i, j in cells]
        by_hand.append(sum(values) / len(values))
    torch.testing.assert_close(terms["bce_t1"], by_hand[0])
    torch.testing.assert_close(terms["total"], by_hand[0] + 1.5 * by_hand[1])
    torch.testing.assert_close(stage_bce(logits[1], labels[1], masks[1]), by_hand[1])


def test_stage_weights_default_to_the_paper():
    assert resolve_stage_weights(None, 2) == (1.0, 1.5)
    assert resolve_stage_weights(None, 3) == (1.0, 1.3, 1.5)
    assert resolve_stage_weights([2, 3], 2) == (2.0, 3.0)
    with pytest.raises(ValueError, match="one value per stage"):
        resolve_stage_weights([1.0], 2)
    with pytest.raises(ValueError, match="5 stages"):
        resolve_stage_weights(None, 5)


def trainer(corpus, out, encoder, epochs=2, **overrides):
    config = PLNTrainConfig(epochs=epochs, batch_size=2, lr=1e-2, seed=0, **overrides)
    return PLNTrainer(corpus, out, MODEL, config, feature_rate=1.0, encoder=encoder)


def test_fit_saves_best_and_resume_matches_an_uninterrupted_run(tiny_corpus, tmp_path, encoder):
    records, _ = check_fit_and_resume(
        lambda out, longer: trainer(tiny_corpus, out, encoder, epochs=3 if longer else 2),
        tmp_path)
    assert {"bce_t1", "bce_t2", "total"} <= set(records[0]["loss"])
    config, extra = PLN.read_config(tmp_path / "run" / "best")
    assert config == MODEL and extra["feature_rate"] == 1.0 and extra["strategy"] == 1


def test_resume_without_checkpoint_starts_fresh(tiny_corpus, tmp_path):
    run = trainer(tiny_corpus, tmp_path / "empty", FakeEncoder(), strategy=2)
    assert not run.resume() and run.start_epoch == 0
    losses = run.train_epoch(0)
    assert np.isfinite(losses["total"])


def test_mismatched_stage_weights_raise(tiny_corpus, tmp_path):
    with pytest.raises(ValueError, match="one value per stage"):
        trainer(tiny_corpus, tmp_path / "bad", FakeEncoder(), stage_weights=(1.0, 1.5, 2.0))


def test_extra_pairs_are_weighted_in_the_loss(tiny_corpus, tmp_path, encoder):
    from tests.conftest import write_tiny_charades

    charades = write_tiny_charades(tmp_path / "charades", tiny_corpus)
    config = PLNTrainConfig(epochs=1, batch_size=4, extras=("charades-actions:0.2",))
    run = PLNTrainer(tiny_corpus, tmp_path / "run", MODEL, config, feature_rate=1.0,
                     encoder=encoder, charades_dir=charades)
    assert sorted({e.weight for e in run.train_examples}) == [0.2, 1.0]
    batch = collate_pln(run.train_examples)
    out = run.model(batch.clips, batch.tokens, batch.token_mask)
    weighted = pln_loss(out.logits, batch.labels, out.masks, run.weights, batch.weights)
    by_hand = sum(w * (torch.stack([
        F.binary_cross_entropy_with_logits(x[b][m], y[b][m]) for b in range(len(batch.weights))])
        * batch.weights).sum() / batch.weights.sum()
        for w, x, y, m in zip(run.weights, out.logits, batch.labels, out.masks, strict=True))
    torch.testing.assert_close(weighted["total"], by_hand)
