import json

import pytest
import torch

from moment_search.models.fvmr import FVMR, FVMRConfig
from moment_search.train.data import collate
from moment_search.train.fvmr_trainer import FVMRTrainer, TrainConfig, batch_loss

MODEL = FVMRConfig(feature_dim=8, n_clips=8, hidden_dim=16, space_dim=8, dropout=0.0)


def trainer(corpus, out, **overrides):
    config = TrainConfig(epochs=2, batch_size=4, warmup_epochs=1, seed=0, **overrides)
    return FVMRTrainer(corpus, out, MODEL, config, feature_rate=1.0)


def test_training_steps_lower_the_loss(tiny_corpus, tmp_path):
    run = trainer(tiny_corpus, tmp_path / "run", cross_video_weight=0.5, lr=5e-3)
    batch = collate(run.train_examples)
    model = run.model.train()
    losses = []
    for _ in range(15):
        terms = batch_loss(model, batch, run.config, epoch=1)
        assert {"bce_p", "bce_q", "distill", "cross_video"} <= set(terms)
        run.optimizer.zero_grad()
        terms["total"].backward()
        run.optimizer.step()
        losses.append(float(terms["total"].detach()))
    assert losses[-1] < losses[0]


def test_fit_saves_best_and_resumes(tiny_corpus, tmp_path):
    out = tmp_path / "run"
    run = trainer(tiny_corpus, out)
    run.fit(progress=lambda message: None)
    assert (out / "best" / "model.safetensors").is_file()
    assert len((out / "history.jsonl").read_text().splitlines()) == 2
    _, extra = FVMR.read_config(out / "best")
    assert extra["feature_rate"] == 1.0 and extra["max_tokens"] == 32
    more = FVMRTrainer(tiny_corpus, out, MODEL,
                       TrainConfig(epochs=3, batch_size=4, warmup_epochs=1), feature_rate=1.0)
    assert more.resume() and more.start_epoch == 2
    more.fit(progress=lambda message: None)
    lines = (out / "history.jsonl").read_text().splitlines()
    epochs = [json.loads(line)["epoch"] for line in lines]
    assert epochs == [1, 2, 3]


def test_same_seed_same_weights(tiny_corpus, tmp_path):
    a = trainer(tiny_corpus, tmp_path / "a")
    b = trainer(tiny_corpus, tmp_path / "b")
    a.train_epoch(0)
    b.train_epoch(0)
    for (name, x), (_, y) in zip(a.model.state_dict().items(), b.model.state_dict().items(),
                                 strict=True):
        assert torch.equal(x, y), name


def test_ema_is_what_is_validated_and_saved(tiny_corpus, tmp_path):
    run = trainer(tiny_corpus, tmp_path / "run", ema_decay=0.9, lr=5e-3)
    assert run.eval_model is run.ema.module
    run.config.epochs = 1  # the one epoch is the best: best/ holds the average after it
    run.config.batch_size = 1  # several steps (the first update only copies the weights)
    run.fit(progress=lambda message: None)
    saved = FVMR.from_pretrained(tmp_path / "run" / "best").state_dict()
    averaged, raw = run.ema.module.state_dict(), run.model.state_dict()
    assert all(torch.equal(saved[name], averaged[name]) for name in saved)
    assert not all(torch.equal(saved[name], raw[name]) for name in saved)


def test_smoothed_selection_is_a_trailing_mean(tiny_corpus, tmp_path):
    run = trainer(tiny_corpus, tmp_path / "run", smooth_epochs=2, lr=5e-3)
    run.config.epochs = 3
    run.fit(progress=lambda message: None)
    history = [json.loads(line) for line in (tmp_path / "run" / "history.jsonl").open()]
    scores = [h["val"]["R1@0.5"] + h["val"]["R1@0.7"] for h in history]
    assert history[0]["smoothed"] == pytest.approx(scores[0])
    assert history[2]["smoothed"] == pytest.approx((scores[1] + scores[2]) / 2)
    assert history[2]["best"] == pytest.approx(max(h["smoothed"] for h in history))


def test_patience_stops_early(tiny_corpus, tmp_path):
    run = trainer(tiny_corpus, tmp_path / "run", lr=0.0, patience=1)
    run.config.epochs = 5
    messages = []
    run.fit(progress=messages.append)
    assert any("stopping" in m for m in messages)
    assert len((tmp_path / "run" / "history.jsonl").read_text().splitlines()) == 2


def test_ema_copies_buffers_and_keeps_integer_ones_exact(tiny_corpus, tmp_path):
    run = trainer(tiny_corpus, tmp_path / "run", ema_decay=0.993, lr=5e-3)
    run.config.batch_size = 1
    for epoch in range(3):
        run.train_epoch(epoch)
    model, average = dict(run.model.named_buffers()), dict(run.ema.module.named_buffers())
    assert torch.equal(average["cells"], model["cells"])  # the proposal index table
    assert average["cells"].dtype == torch.int64
    norms = [name for name in model if name.endswith("running_mean")]
    assert norms and all(torch.equal(average[n], model[n]) for n in norms)  # the live statistics
    weights = dict(run.ema.module.named_parameters())
    assert any(not torch.equal(weights[n], p) for n, p in run.model.named_parameters())


def test_epochs_since_best():
    from moment_search.train.loop import epochs_since_best

    assert epochs_since_best([], 1) == 0
    assert epochs_since_best([1.0, 3.0, 2.0, 2.5], 1) == 2
    assert epochs_since_best([1.0, 3.0, 0.0, 2.5], 2) == 2  # trailing means 1, 2, 1.5, 1.25


def test_patience_counts_across_a_resume(tiny_corpus, tmp_path):
    out = tmp_path / "run"
    trainer(tiny_corpus, out, lr=0.0).fit(progress=lambda m: None)  # 2 flat epochs: best is 1
    more = FVMRTrainer(tiny_corpus, out, MODEL, TrainConfig(epochs=5, batch_size=4, lr=0.0,
                                                             patience=2), feature_rate=1.0)
    assert more.resume()
    messages = []
    more.fit(progress=messages.append)
    assert any("stopping" in m for m in messages)  # epoch 3 is the 2nd without improvement
    assert len((out / "history.jsonl").read_text().splitlines()) == 3


def test_query_video_encodes_each_video_once_and_equals_per_query():
    torch.manual_seed(0)
    model = FVMR(MODEL).eval()
    clips = torch.randn(2, 8, 8)
    tokens, mask = torch.randn(3, 5, 384), torch.ones(3, 5, dtype=torch.bool)
    rows = torch.tensor([1, 0, 1])
    grouped = model(clips, tokens, mask, query_video=rows)
    per_query = model(clips[rows], tokens, mask)
    torch.testing.assert_close(grouped.p, per_query.p)


def test_keep_last_ships_the_last_epoch_whatever_validation_says(tiny_corpus, tmp_path):
    run = trainer(tiny_corpus, tmp_path / "run", keep="last", lr=5e-3)
    run.config.epochs = 3
    scores = iter([5.0, 1.0, 0.0])  # validation gets worse: "best" would keep epoch 1
    run.validate = lambda: {"R1@0.5": next(scores), "R1@0.7": 0.0}
    best = run.fit(progress=lambda message: None)
    assert best["R1@0.5"] == 0.0
    saved = FVMR.from_pretrained(tmp_path / "run" / "best").state_dict()
    last = FVMR.from_pretrained(tmp_path / "run" / "last").state_dict()
    assert all(torch.equal(saved[name], last[name]) for name in saved)


def test_an_unknown_keep_rule_is_refused(tiny_corpus, tmp_path):
    from moment_search.errors import InputError

    with pytest.raises(InputError, match="keep = 'median'"):
        trainer(tiny_corpus, tmp_path / "run", keep="median")


def test_keep_last_refuses_early_stopping_and_a_changed_rule_on_resume(tiny_corpus, tmp_path):
    from moment_search.errors import InputError

    with pytest.raises(InputError, match="early stopping"):
        TrainConfig(keep="last", patience=2)
    run = trainer(tiny_corpus, tmp_path / "run", keep="last")
    run.config.epochs = 1
    run.fit(progress=lambda message: None)
    again = trainer(tiny_corpus, tmp_path / "run", keep="best")
    with pytest.raises(InputError, match="started with keep = 'last'"):
        again.resume()
