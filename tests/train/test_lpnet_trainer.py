import pytest
import torch

from moment_search.data.corpus_dir import open_corpus
from moment_search.models.lpnet import LPNet, LPNetConfig
from moment_search.train.lpnet_data import build_lpnet_examples, collate_lpnet
from moment_search.train.lpnet_trainer import LPNetTrainConfig, LPNetTrainer, lpnet_loss
from tests.train.localizer_checks import (
    FakeEncoder,
    check_extra_pairs_weighted,
    check_fit_and_resume,
    history,
)

MODEL = LPNetConfig(feature_dim=8, hidden_dim=8, n_heads=2, n_conv=1, kernel=3, n_clips=8,
                    n_proposals=6, n_samples=4, dynamic_dim=4, dropout=0.0)


def test_examples_and_batches(tiny_corpus):
    corpus, store = open_corpus(tiny_corpus, split="train", feature_rate=1.0)
    examples = build_lpnet_examples(corpus, store, MODEL, FakeEncoder())
    assert [e.qid for e in examples] == [q.qid for q in corpus.queries]
    first = examples[0]
    assert first.clips.shape == (8, 8) and first.windows.shape == (1, 2)
    assert (first.windows >= 0).all() and (first.windows <= 1).all()
    assert float(first.start_labels.sum()) == pytest.approx(1.0)
    assert int(first.start_labels.argmax()) <= int(first.end_labels.argmax())
    batch = collate_lpnet(examples[:3])
    assert batch.clips.shape == (3, 8, 8) and batch.start_labels.shape == (3, 8)
    with pytest.raises(ValueError, match="empty"):
        collate_lpnet([])


def test_a_few_steps_lower_the_loss_and_move_the_proposals(tiny_corpus):
    corpus, store = open_corpus(tiny_corpus, split="train", feature_rate=1.0)
    batch = collate_lpnet(build_lpnet_examples(corpus, store, MODEL, FakeEncoder()))
    torch.manual_seed(0)
    model = LPNet(MODEL).train()
    before = model.proposal_logits.detach().clone()
    optimizer = torch.optim.Adam(model.parameters(), 1e-2)
    config = LPNetTrainConfig()
    losses = []
    for _ in range(20):
        terms = lpnet_loss(model, batch, config)
        optimizer.zero_grad()
        terms["total"].backward()
        optimizer.step()
        losses.append({k: float(v.detach()) for k, v in terms.items()})
    for name in ("total", "iou", "reg", "kl"):
        assert losses[-1][name] < losses[0][name], (name, losses)
    assert not torch.equal(model.proposal_logits.detach(), before)
    centres, half = model.proposal_boxes()
    assert ((centres >= 0) & (centres <= 1)).all() and ((half >= 0) & (half <= 0.25)).all()


def test_fixed_proposals_when_the_iou_loss_is_off(tiny_corpus):
    corpus, store = open_corpus(tiny_corpus, split="train", feature_rate=1.0)
    batch = collate_lpnet(build_lpnet_examples(corpus, store, MODEL, FakeEncoder()))
    model = LPNet(MODEL).train()
    before = model.proposal_logits.detach().clone()
    optimizer = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(3):
        terms = lpnet_loss(model, batch, LPNetTrainConfig(iou_weight=0.0))
        optimizer.zero_grad()
        terms["total"].backward()
        optimizer.step()
    torch.testing.assert_close(model.proposal_logits.detach(), before)


def trainer(corpus, out, encoder, epochs=2, **overrides):
    config = LPNetTrainConfig(epochs=epochs, batch_size=2, lr=1e-2, seed=0, **overrides)
    return LPNetTrainer(corpus, out, MODEL, config, feature_rate=1.0, encoder=encoder)


def test_fit_saves_best_and_resume_matches_an_uninterrupted_run(tiny_corpus, tmp_path):
    def make(out, longer):
        return trainer(tiny_corpus, out, FakeEncoder(), epochs=3 if longer else 2,
                       ema_decay=0.9)

    initial = []

    def look_at_init(out):  # init/ holds the boxes before the first step, not after it
        initial.append(LPNet.from_pretrained(out / "init").proposal_logits)
        fresh = make(tmp_path / "fresh", False).model.proposal_logits  # the same seed, unfit
        torch.testing.assert_close(initial[0], fresh.detach())
        assert not torch.equal(initial[0], LPNet.from_pretrained(out / "last").proposal_logits)

    records, _ = check_fit_and_resume(make, tmp_path, look_at_init)
    assert {"iou", "reg", "kl", "total"} <= set(records[0]["loss"])
    _, extra = LPNet.read_config(tmp_path / "run" / "best")
    assert extra["feature_rate"] == 1.0 and extra["nms_threshold"] == 0.5
    # a resumed run keeps the init/ of its first start
    torch.testing.assert_close(LPNet.from_pretrained(tmp_path / "run" / "init").proposal_logits,
                               initial[0])


def test_extra_pairs_are_weighted_in_the_loss(tiny_corpus, tmp_path):
    config = LPNetTrainConfig(epochs=1, batch_size=4, extras=("charades-actions:0.2",))
    check_extra_pairs_weighted(LPNetTrainer, MODEL, config, tiny_corpus, tmp_path)


def test_cli_trains_and_resumes(tiny_corpus, tmp_path, monkeypatch):
    from cli.app import main
    from moment_search.train import reranker_data

    monkeypatch.setattr(reranker_data, "TokenEncoder", lambda max_length: FakeEncoder())
    out = tmp_path / "cli"
    args = ["train", "lpnet", "--data", str(tiny_corpus), "--out", str(out), "--epochs", "1",
            "--batch-size", "2", "--hidden-dim", "8", "--heads", "2", "--n-clips", "8",
            "--feature-dim", "8", "--proposals", "6", "--feature-rate", "1.0", "--threads", "1",
            "--ema", "0.9", "--clip-scale", "2.0"]
    assert main(args) == 0
    assert (out / "best" / "config.json").is_file() and len(history(out)) == 1
    assert main([*args[:7], "2", *args[8:], "--resume"]) == 0
    assert [r["epoch"] for r in history(out)] == [1, 2]
    config, _ = LPNet.read_config(out / "best")
    assert config.clip_scale == 2.0 and config.n_proposals == 6
