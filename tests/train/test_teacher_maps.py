import numpy as np
import pytest
import torch

from moment_search.errors import DataError, InputError
from moment_search.geometry.proposals import num_proposals
from moment_search.train.data import collate
from moment_search.train.fvmr_trainer import batch_loss
from moment_search.train.losses import distillation
from moment_search.train.teacher_maps import (
    TeacherMaps,
    load_maps,
    make_teacher_maps,
    matched_temperature,
    mean_entropy,
    proposal_map,
    save_maps,
    softmax,
    target_logits,
)

from .test_trainer import MODEL, trainer


def test_proposal_map_is_the_best_overlap_times_score():
    spans = np.array([[0.0, 10.0], [0.0, 5.0], [5.0, 10.0], [20.0, 30.0]])
    candidates = np.array([[0.0, 5.0, 0.8], [0.0, 10.0, 0.5]])
    expected = [max(0.5 * 0.8, 0.5), max(0.8, 0.5 * 0.5), max(0.0, 0.5 * 0.5), 0.0]
    assert proposal_map(candidates, spans) == pytest.approx(expected)
    assert proposal_map(np.zeros((0, 3)), spans).tolist() == [0.0] * 4


def test_matched_temperature_reaches_the_goal_entropy():
    logs = np.log(np.random.default_rng(0).uniform(0.01, 1.0, size=(50, 20)))
    for goal in (0.5, 1.5, 2.5):
        tau = matched_temperature(logs, goal)
        assert mean_entropy(softmax(logs / tau)) == pytest.approx(goal, abs=1e-3)


def maps_file(path, qids, n_clips, seed=0):
    rng = np.random.default_rng(seed)
    maps = rng.uniform(0, 1, size=(len(qids), num_proposals(n_clips))).astype(np.float32)
    return save_maps(path, TeacherMaps(list(qids), maps, n_clips, "drn", "somewhere"))


def test_two_teachers_are_the_mean_of_their_sharpened_maps(tmp_path):
    qids = ["a", "b", "c"]
    p = num_proposals(8)
    labels = {q: np.linspace(0, 1, p).astype(np.float32) for q in qids}
    one = maps_file(tmp_path / "one.npz", qids, 8, seed=1)
    two = maps_file(tmp_path / "two.npz", [*qids, "other"], 8, seed=2)
    both, taus = target_logits([one, two], 8, labels)
    single = [target_logits([f], 8, labels)[0] for f in (one, two)]
    assert len(taus) == 2 and all(t > 0 for t in taus)
    for q in qids:
        mean = (np.exp(single[0][q]) + np.exp(single[1][q])) / 2
        assert np.exp(both[q]) == pytest.approx(mean, abs=1e-5)
    goal = mean_entropy(np.stack(list(labels.values())) + 1e-6)
    assert mean_entropy(np.exp(np.stack(list(single[0].values())))) == pytest.approx(goal,
                                                                                     abs=1e-2)


def test_bad_files_are_named(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        load_maps(tmp_path / "none.npz", 8)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="junk.npz"):
        load_maps(tmp_path / "junk.npz", 8)
    other = maps_file(tmp_path / "n16.npz", ["a"], 16)
    with pytest.raises(DataError, match="16-clip map"):
        load_maps(other, 8)
    short = maps_file(tmp_path / "short.npz", ["a"], 8)
    with pytest.raises(DataError, match="no map for 1 of the 2 training pairs"):
        target_logits([short], 8, {"a": np.ones(num_proposals(8)), "b": np.ones(num_proposals(8))})
    bad = TeacherMaps(["a", "b"], np.full((2, num_proposals(8)), np.nan, np.float32), 8, "d", "m")
    with pytest.raises(DataError, match="finite and in"):
        save_maps(tmp_path / "nan.npz", bad)
    twice = TeacherMaps(["a", "a"], np.zeros((2, num_proposals(8)), np.float32), 8, "d", "m")
    with pytest.raises(DataError, match="more than once"):
        save_maps(tmp_path / "twice.npz", twice)
    uneven = TeacherMaps(["a", "b"], np.zeros((2, num_proposals(8)), np.float32), 8, "d", "m",
                         np.array([3.0]))
    with pytest.raises(DataError, match="one finite number a pair"):
        save_maps(tmp_path / "uneven.npz", uneven)
    assert not (tmp_path / "nan.npz").exists() and not (tmp_path / "twice.npz").exists()
    assert not (tmp_path / "uneven.npz").exists()
    np.savez(tmp_path / "plain.npz", maps=np.ones(3))
    with pytest.raises(DataError, match="not a teacher-maps file"):
        load_maps(tmp_path / "plain.npz", 8)


def test_maps_of_a_drn_teacher_drive_fvmr_training(tiny_corpus, tiny_drn_dir, tmp_path):
    maps = make_teacher_maps("drn", tiny_drn_dir, tiny_corpus, MODEL.n_clips)
    assert maps.maps.shape == (len(maps.qids), num_proposals(MODEL.n_clips))
    assert maps.maps.max() > 0 and maps.model == str(tiny_drn_dir)
    path = save_maps(tmp_path / "drn.npz", maps)
    assert load_maps(path, MODEL.n_clips).qids == maps.qids
    run = trainer(tiny_corpus, tmp_path / "run", teacher_maps=(str(path),), lr=5e-3)
    assert all(e.teacher is not None for e in run.train_examples)
    assert run.settings["teacher_temperatures"][0] > 0
    batch = collate(run.train_examples)
    terms = batch_loss(run.model.train(), batch, run.config, epoch=0)  # before the warm-up ends
    assert "teacher_maps" in terms and "distill" not in terms
    run.config.temperature = 2.0  # the target is scaled by T, so it stays the sharpened maps
    hot = batch_loss(run.model, batch, run.config, epoch=0)["teacher_maps"]
    expected = run.config.map_weight * distillation(
        run.model(batch.clips, batch.tokens, batch.token_mask, query_video=batch.query_video).p,
        batch.teacher * 2.0, 2.0, batch.weights)
    assert float(hot.detach()) == pytest.approx(float(expected.detach()), rel=1e-5)
    run.config.temperature = 1.0
    target = torch.softmax(batch.teacher, -1)
    losses = []
    for _ in range(30):
        terms = batch_loss(run.model, batch, run.config, epoch=0)
        run.optimizer.zero_grad()
        terms["teacher_maps"].backward()
        run.optimizer.step()
        losses.append(float(terms["teacher_maps"].detach()))
    assert losses[-1] < losses[0]
    student = torch.softmax(run.model(batch.clips, batch.tokens, batch.token_mask,
                                      query_video=batch.query_video).p, -1)
    assert torch.argmax(student, -1).eq(torch.argmax(target, -1)).float().mean() > 0.5


def test_maps_of_another_corpus_with_the_same_ids_are_refused(tiny_corpus, tiny_drn_dir,
                                                              tmp_path):
    maps = make_teacher_maps("drn", tiny_drn_dir, tiny_corpus, MODEL.n_clips)
    assert maps.durations is not None and len(maps.durations) == len(maps.qids)
    maps.durations = maps.durations + 1.0  # as if scored on other videos under the same ids
    path = save_maps(tmp_path / "other.npz", maps)
    assert load_maps(path, MODEL.n_clips).durations.tolist() == maps.durations.tolist()
    with pytest.raises(DataError, match="scored on a video of"):
        trainer(tiny_corpus, tmp_path / "run", teacher_maps=(str(path),))


def test_a_run_without_its_pairs_in_the_file_fails_before_training(tiny_corpus, tmp_path):
    path = maps_file(tmp_path / "other.npz", ["someone-else"], MODEL.n_clips)
    with pytest.raises(DataError, match="no map for"):
        trainer(tiny_corpus, tmp_path / "run", teacher_maps=(str(path),))
