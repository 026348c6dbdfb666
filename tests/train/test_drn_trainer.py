import dataclasses

import pytest
import torch

from moment_search.data.corpus_dir import open_corpus
from moment_search.models.drn import DRN, DRNConfig
from moment_search.train.drn_data import build_drn_examples, collate_drn
from moment_search.train.drn_losses import focal_loss, other_video
from moment_search.train.drn_trainer import (
    DRNTrainConfig,
    DRNTrainer,
    drn_loss,
    set_stage,
)
from tests.train.localizer_checks import (
    FakeEncoder,
    check_extra_pairs_weighted,
    check_fit_and_resume,
)

MODEL = DRNConfig(feature_dim=8, lstm_dim=8, n_segments=8, channels=8, fpn_dim=8,
                  position_dim=4)


def test_examples_and_batches(tiny_corpus):
    corpus, store = open_corpus(tiny_corpus, split="train", feature_rate=1.0)
    examples = build_drn_examples(corpus, store, MODEL, FakeEncoder())
    assert [e.qid for e in examples] == [q.qid for q in corpus.queries]
    first = examples[0]
    assert first.segments.shape == (8, 8) and first.labels.shape == (14,)
    assert first.distances.shape == (14, 2) and first.windows.shape == (1, 2)
    # train-4's moment [2.5, 3.25] segments holds no location centre strictly inside: none
    # of its locations is positive (the official rule); the others have positives
    assert [float(e.labels.sum()) > 0 for e in examples] == [True, True, True, False]
    batch = collate_drn(examples[:3])
    assert batch.segments.shape == (3, 8, 8) and batch.labels.shape == (3, 14)
    assert batch.window_mask.all() and batch.windows.shape == (3, 1, 2)
    with pytest.raises(ValueError, match="empty"):
        collate_drn([])


def test_steps_freeze_the_right_parameters():
    model = DRN(MODEL)
    set_stage(model, 1)
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trained and not any(n.startswith("heads.iou.") for n in trained)
    assert not model.config.use_iou_score
    set_stage(model, 2)
    assert {n for n, p in model.named_parameters() if p.requires_grad} \
        == {n for n, _ in model.named_parameters() if n.startswith("heads.iou.")}
    assert model.config.use_iou_score
    set_stage(model, 3)
    assert all(p.requires_grad for p in model.parameters())
    with pytest.raises(ValueError, match="stage_epochs"):
        DRNTrainConfig(stage_epochs=(0, 1, 1))
    assert [DRNTrainConfig(stage_epochs=(2, 1, 1)).stage_at(e) for e in range(4)] == [1, 1, 2, 3]


def test_a_few_steps_lower_each_steps_loss(tiny_corpus):
    corpus, store = open_corpus(tiny_corpus, split="train", feature_rate=1.0)
    batch = collate_drn(build_drn_examples(corpus, store, MODEL, FakeEncoder()))
    torch.manual_seed(0)
    model = DRN(MODEL)
    for stage, lr in ((1, 1e-2), (2, 1e-2)):
        set_stage(model, stage)
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr)
        losses = []
        for _ in range(15):
            terms = drn_loss(model.train(), batch, stage)
            optimizer.zero_grad()
            terms["total"].backward()
            optimizer.step()
            losses.append(float(terms["total"].detach()))
        assert losses[-1] < 0.8 * losses[0], (stage, losses)
        moved = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
        assert all(n.startswith("heads.iou.") for n in moved) == (stage == 2)


def test_other_video_pairs_each_example_with_the_next_of_another_video():
    assert other_video([0, 0, 1, 2]) == [2, 2, 3, 0]
    assert other_video([1, 0, 0]) == [1, 0, 0]
    assert other_video([5, 5]) == [-1, -1] and other_video([]) == []
    with pytest.raises(ValueError, match="cross_video_weight"):
        DRNTrainConfig(cross_video_weight=-1.0)


def test_cross_video_term_joins_steps_1_and_3_only(tiny_corpus):
    corpus, store = open_corpus(tiny_corpus, split="train", feature_rate=1.0)
    examples = build_drn_examples(corpus, store, MODEL, FakeEncoder())
    batch = collate_drn(examples)
    assert batch.videos.tolist() == list(range(len(examples)))  # one sentence per video here
    torch.manual_seed(0)
    model = DRN(MODEL).eval()
    for stage in (1, 2, 3):
        set_stage(model, stage)
        plain = drn_loss(model, batch, stage)
        crossed = drn_loss(model, batch, stage, cross_video_weight=2.0)
        if stage == 2:
            assert "cross_video" not in crossed
            assert torch.equal(crossed["total"], plain["total"])
        else:
            assert float(crossed["cross_video"].detach()) > 0
            assert torch.allclose(crossed["total"], plain["total"] + crossed["cross_video"])
    norm = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d))
    before = int(norm.num_batches_tracked)
    drn_loss(model.train(), batch, 1, cross_video_weight=2.0)
    assert int(norm.num_batches_tracked) == before + 1  # real and crossed pairs: one pass
    model.eval()
    same = collate_drn([examples[0], dataclasses.replace(examples[0], qid="again")])
    assert same.videos.tolist() == [0, 0]
    assert "cross_video" not in drn_loss(model, same, 1, cross_video_weight=2.0)  # no other video


def test_cross_video_term_is_the_weighted_focal_loss_against_the_partner_video(tiny_corpus):
    corpus, store = open_corpus(tiny_corpus, split="train", feature_rate=1.0)
    examples = build_drn_examples(corpus, store, MODEL, FakeEncoder())
    # a second sentence of the first video: its partner is not simply the next example
    batch = collate_drn([examples[0], dataclasses.replace(examples[1], qid="same",
                                                          video_id=examples[0].video_id,
                                                          segments=examples[0].segments),
                         *examples[1:]])
    assert other_video(batch.videos.tolist())[:2] == [2, 2]
    batch.weights = torch.linspace(0.5, 1.5, len(batch.weights))
    torch.manual_seed(0)
    model = DRN(MODEL).eval()
    partner = other_video(batch.videos.tolist())
    with torch.no_grad():
        term = drn_loss(model, batch, 1, cross_video_weight=3.0)["cross_video"]
        logits = model(batch.segments[partner], batch.tokens, batch.token_mask).logits
    focal = focal_loss(logits, torch.zeros_like(logits)).sum(1)
    expected = (focal * batch.weights).sum() / (batch.weights * (batch.labels.sum(1) + 1)).sum()
    assert torch.allclose(term, 3.0 * expected, rtol=1e-5)


def negative_match(model, batch) -> float:
    """Mean over sentences of the best matching probability in the next video's segments."""
    with torch.no_grad():
        out = model(batch.segments.roll(1, 0), batch.tokens, batch.token_mask)
    return float(torch.sigmoid(out.logits).amax(1).mean())


def test_cross_video_training_lowers_the_match_on_other_videos(tiny_corpus):
    corpus, store = open_corpus(tiny_corpus, split="train", feature_rate=1.0)
    batch = collate_drn(build_drn_examples(corpus, store, MODEL, FakeEncoder()))
    after = {}
    for weight in (0.0, 5.0):
        torch.manual_seed(0)
        model = DRN(MODEL)
        set_stage(model, 1)
        optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], 1e-2)
        for _ in range(40):
            terms = drn_loss(model.train(), batch, 1, cross_video_weight=weight)
            optimizer.zero_grad()
            terms["total"].backward()
            optimizer.step()
        after[weight] = negative_match(model.eval(), batch)
    assert after[5.0] < 0.8 * after[0.0], after


def trainer(corpus, out, encoder, stages=(1, 1, 0), **overrides):
    config = DRNTrainConfig(stage_epochs=stages, batch_size=2, lr=1e-2, iou_lr=1e-2,
                            finetune_lr=1e-3, seed=0, **overrides)
    return DRNTrainer(corpus, out, MODEL, config, feature_rate=1.0, encoder=encoder)


def test_fit_saves_best_and_resume_matches_an_uninterrupted_run(tiny_corpus, tmp_path):
    # resumed across the step 2 -> 3 boundary
    records, resumed = check_fit_and_resume(
        lambda out, longer: trainer(tiny_corpus, out, FakeEncoder(),
                                    stages=(1, 1, 1) if longer else (1, 1, 0), ema_decay=0.9),
        tmp_path)
    assert {"match", "location", "iou", "total"} <= set(records[0]["loss"])
    assert records[1]["loss"]["total"] == records[1]["loss"]["iou"]  # step 2: Eq. 7 alone
    assert resumed.stage == 3
    config, extra = DRN.read_config(tmp_path / "run" / "best")
    assert extra["feature_rate"] == 1.0 and extra["nms_threshold"] == 0.6


def test_resume_enters_the_step_of_the_last_epoch(tiny_corpus, tmp_path):
    out = tmp_path / "run"
    trainer(tiny_corpus, out, FakeEncoder(), ema_decay=0.9).fit(progress=lambda message: None)
    resumed = trainer(tiny_corpus, out, FakeEncoder(), stages=(1, 1, 1), ema_decay=0.9)
    assert resumed.resume() and resumed.start_epoch == 2 and resumed.stage == 2
    assert resumed.ema.module.config.use_iou_score  # the average is in step 2 too


def test_extra_pairs_are_weighted_in_the_loss(tiny_corpus, tmp_path):
    config = DRNTrainConfig(stage_epochs=(1, 0, 0), batch_size=4,
                            extras=("charades-actions:0.2",))
    check_extra_pairs_weighted(DRNTrainer, MODEL, config, tiny_corpus, tmp_path)
