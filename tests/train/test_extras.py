import json

import pytest

from moment_search.data.corpus_dir import open_corpus
from moment_search.train.extras import ExtraSpec, parse_extra, with_extras
from moment_search.train.folds import parse_fold, split_fold
from moment_search.train.fvmr_trainer import FVMRTrainer, TrainConfig
from tests.conftest import write_tiny_charades
from tests.train.test_trainer import MODEL


def test_parse_extra():
    assert parse_extra("charades-actions") == ExtraSpec("charades-actions", 0.5)
    assert parse_extra("charades-actions:0.25") == ExtraSpec("charades-actions", 0.25)
    for bad, message in [("imdb", "unknown kind"), ("charades-actions:x", "not a number"),
                         ("charades-actions:0", "must be > 0")]:
        with pytest.raises(ValueError, match=message):
            parse_extra(bad)


def test_with_extras_adds_train_videos_only(tiny_corpus, tmp_path):
    charades = write_tiny_charades(tmp_path / "charades", tiny_corpus)
    train, _ = open_corpus(tiny_corpus, split="train")
    extended, weights = with_extras(train, [ExtraSpec("charades-actions", 0.3)], charades)
    extra = [q for q in extended.queries if q.qid.startswith("action-")]
    assert len(extra) == 2 * len(train.videos)
    assert {q.video_id for q in extra} == set(train.videos)  # no validation video
    assert set(weights) == {q.qid for q in extra} and set(weights.values()) == {0.3}
    assert {q.text for q in extra} == {"person opening a closet.", "person is laughing."}
    for query in extra:  # the segment past the end is clipped to the duration
        assert query.windows[0][1] <= train.video(query.video_id).duration


def test_trainer_weights_extra_examples(tiny_corpus, tmp_path):
    charades = write_tiny_charades(tmp_path / "charades", tiny_corpus)
    config = TrainConfig(epochs=1, batch_size=4, extras=("charades-actions:0.25",),
                         video_batches=True)
    run = FVMRTrainer(tiny_corpus, tmp_path / "run", MODEL, config, feature_rate=1.0,
                      charades_dir=charades)
    weights = sorted({e.weight for e in run.train_examples})
    assert weights == [0.25, 1.0]
    assert all(not e.qid.startswith("action-") for e in run.val_examples)
    for batch in run.epoch_batches(0):  # whole videos: each video once in clips
        assert batch.clips.shape[0] == len(set(batch.video_groups.tolist()))


def test_folds_are_disjoint_and_cover(tiny_corpus):
    corpus, _ = open_corpus(tiny_corpus, split="train")
    held = [set(split_fold(corpus, k, 2)[1].videos) for k in range(2)]
    assert held[0].isdisjoint(held[1]) and held[0] | held[1] == set(corpus.videos)
    rest, fold = split_fold(corpus, 0, 2)
    assert set(rest.videos).isdisjoint(fold.videos)
    assert all(q.video_id in fold.videos for q in fold.queries)
    assert parse_fold("1/5") == (1, 5) and parse_fold(None) is None
    for bad in ("5/5", "1", "a/b", "0/1"):
        with pytest.raises(ValueError, match="--fold"):
            parse_fold(bad)


def test_fold_validates_on_train_videos(tiny_corpus, tmp_path):
    run = FVMRTrainer(tiny_corpus, tmp_path / "run", MODEL,
                      TrainConfig(epochs=1, batch_size=4, fold="0/2"), feature_rate=1.0)
    train_videos = {q.video_id for q in run.train_corpus.queries}
    val_videos = {q.video_id for q in run.val_corpus.queries}
    assert train_videos.isdisjoint(val_videos)
    assert all(q.qid.startswith("train-") for q in run.val_corpus.queries)


def test_a_fold_corpus_holds_the_fold_as_its_val_split(tiny_corpus, tmp_path):
    from moment_search.cli.app import main

    from moment_search.data.corpus_dir import open_corpus
    from moment_search.train.folds import write_fold_corpus

    corpus, _ = open_corpus(tiny_corpus, split="train")
    rest, held = split_fold(corpus, 1, 2)
    out = write_fold_corpus(tiny_corpus, (1, 2), tmp_path / "f1")
    train, store = open_corpus(out, split="train")
    val, _ = open_corpus(out, split="val")
    assert set(train.videos) == set(rest.videos) and set(val.videos) == set(held.videos)
    assert sorted(q.qid for q in val.queries) == sorted(q.qid for q in held.queries)
    video = next(iter(val.videos))
    assert store.load(video).shape == open_corpus(tiny_corpus)[1].load(video).shape
    with pytest.raises(ValueError, match="exists"):
        write_fold_corpus(tiny_corpus, (1, 2), out)
    assert main(["data", "fold", str(tiny_corpus), "--fold", "0/2",
                 "--out", str(tmp_path / "f0")]) == 0
    assert (tmp_path / "f0" / "val.jsonl").is_file()
    assert main(["data", "fold", str(tiny_corpus), "--fold", "2/2",
                 "--out", str(tmp_path / "bad")]) == 2
    assert not (tmp_path / "bad").exists()


def test_a_fold_corpus_says_its_fold_and_checkpoints_must_match_it(tiny_corpus, tmp_path):
    from moment_search.train.folds import (
        check_fold_checkpoint,
        read_fold_info,
        write_fold_corpus,
    )

    out = write_fold_corpus(tiny_corpus, (1, 2), tmp_path / "f1")
    assert read_fold_info(out)["fold"] == "1/2"
    assert read_fold_info(tiny_corpus) is None
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left

    def checkpoint(name, **extra):
        path = tmp_path / name
        path.mkdir()
        (path / "config.json").write_text(json.dumps({"extra": extra}))
        return path

    check_fold_checkpoint(out, checkpoint("same", train_config={"fold": "1/2"}))
    check_fold_checkpoint(out, checkpoint("on-fold", data=str(out), train_config={}))
    check_fold_checkpoint(tiny_corpus, checkpoint("anything", train_config={}))
    with pytest.raises(ValueError, match="holds out fold 1/2"):
        check_fold_checkpoint(out, checkpoint("other", train_config={"fold": "0/2"}))
    with pytest.raises(ValueError, match="holds out fold 1/2"):
        check_fold_checkpoint(out, checkpoint("all", data=str(tiny_corpus), train_config={}))
    # a composed search checkpoint: its video-text model must have held the fold out too
    fold_run = {"train_config": {"fold": "1/2"}}
    check_fold_checkpoint(out, checkpoint("composed", **fold_run, composed={
        "video_text": "vt", "video_text_data": str(out), "video_text_fold": None}))
    check_fold_checkpoint(out, checkpoint("no-video", **fold_run, composed={"video_text": "None"}))
    with pytest.raises(ValueError, match=r"\(its video-text model\): trained with fold None"):
        check_fold_checkpoint(out, checkpoint("leaky", **fold_run, composed={
            "video_text": "vt", "video_text_data": str(tiny_corpus), "video_text_fold": None}))
    with pytest.raises(ValueError, match="compose it again"):
        check_fold_checkpoint(out, checkpoint("old", **fold_run, composed={"video_text": "vt"}))
