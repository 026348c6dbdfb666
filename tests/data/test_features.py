import h5py
import numpy as np
import pytest

from moment_search.data.features import FeatureError, NpyDirStore, open_feature_store


def test_npy_and_npz_directory(tmp_path):
    np.save(tmp_path / "a.npy", np.ones((3, 4), np.float32))
    np.savez(tmp_path / "b.npz", features=np.zeros((2, 4), np.float32))
    store = open_feature_store(tmp_path, width=4)
    assert store.video_ids() == ["a", "b"]
    assert store.load("a").shape == (3, 4) and store.load("b").shape == (2, 4)
    assert "a" in store and "c" not in store


def test_hdf5_store(tmp_path):
    path = tmp_path / "feats.h5"
    with h5py.File(path, "w") as f:
        f["v1"] = np.ones((5, 2), np.float32)
    store = open_feature_store(path)
    assert store.video_ids() == ["v1"]
    assert store.load("v1").shape == (5, 2)
    with pytest.raises(FeatureError, match="'v2'"):
        store.load("v2")


def test_missing_file_names_video(tmp_path):
    with pytest.raises(FeatureError, match=r"'nope'.*nope\.npy"):
        NpyDirStore(tmp_path).load("nope")


def test_nan_names_video_and_row(tmp_path):
    bad = np.ones((4, 3), np.float32)
    bad[2, 1] = np.nan
    np.save(tmp_path / "v.npy", bad)
    with pytest.raises(FeatureError, match="'v'.*row 2"):
        NpyDirStore(tmp_path).load("v")


def test_wrong_width_and_rank(tmp_path):
    np.save(tmp_path / "w.npy", np.ones((4, 3), np.float32))
    np.save(tmp_path / "r.npy", np.ones((4,), np.float32))
    store = NpyDirStore(tmp_path, width=5)
    with pytest.raises(FeatureError, match="width 5, got 3"):
        store.load("w")
    with pytest.raises(FeatureError, match=r"\(T, D\)"):
        store.load("r")


def test_not_a_store(tmp_path):
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(FeatureError, match="expected a directory"):
        open_feature_store(tmp_path / "x.txt")
