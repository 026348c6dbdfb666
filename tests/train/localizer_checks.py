"""Checks every localizer trainer (PLN, FIAN, DRN, LPNet) must pass, shared by their tests."""

import json

import numpy as np
import torch


class FakeEncoder:
    """Deterministic token embeddings: one row per word, seeded by the word's length."""

    def precompute(self, texts):
        return {t: torch.stack([torch.full((384,), float(len(w))) for w in t.split()])
                for t in texts}


def history(out):
    return [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]


def quiet(message):
    """A progress callback that prints nothing."""


def check_fit_and_resume(make_trainer, tmp_path, before_resume=lambda out: None, epochs=2):
    """Train ``make_trainer(out, longer=False)``, resume it with ``longer=True`` and compare the
    result with an uninterrupted ``longer`` run (``epochs`` + 1 epochs); ``before_resume(out)``
    runs in between.
    Returns (the first run's records, the resumed trainer)."""
    out = tmp_path / "run"
    make_trainer(out, False).fit(progress=quiet)
    assert (out / "best" / "model.safetensors").is_file()
    assert (out / "last" / "state.pt").is_file()
    records = history(out)
    assert [r["epoch"] for r in records] == list(range(1, epochs + 1))
    assert "R1@0.5" in records[0]["val"]
    before_resume(out)

    resumed = make_trainer(out, True)
    assert resumed.resume() and resumed.start_epoch == epochs
    resumed.fit(progress=quiet)
    assert [r["epoch"] for r in history(out)] == list(range(1, epochs + 2))

    straight = make_trainer(tmp_path / "straight", True)
    straight.fit(progress=quiet)
    for (name, x), (_, y) in zip(resumed.eval_model.state_dict().items(),
                                 straight.eval_model.state_dict().items(), strict=True):
        torch.testing.assert_close(x, y, msg=name)
    return records, resumed


def check_extra_pairs_weighted(trainer_class, model_config, train_config, corpus, tmp_path,
                               encoder=None):
    """``--extra charades-actions:0.2`` adds training pairs of weight 0.2 (never from val) and
    an epoch over them trains; returns the trainer."""
    from tests.conftest import write_tiny_charades

    charades = write_tiny_charades(tmp_path / "charades", corpus)
    run = trainer_class(corpus, tmp_path / "run", model_config, train_config, feature_rate=1.0,
                        encoder=encoder or FakeEncoder(), charades_dir=charades)
    assert sorted({e.weight for e in run.train_examples}) == [0.2, 1.0]
    assert all(not str(e.qid).startswith("val") for e in run.train_examples)
    assert np.isfinite(run.train_epoch(0)["total"])
    return run
