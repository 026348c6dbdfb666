"""atomic.staged_dir: a folder is replaced whole or not at all."""

import pytest

from moment_search.atomic import staged_dir


def test_a_staged_folder_replaces_the_target_whole(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with staged_dir(target) as staging:
        (staging / "new.txt").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
    assert target.stat().st_mode & 0o777 == 0o755
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no staging or backup left


def test_an_error_leaves_the_target_as_it_was(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(RuntimeError, match="half-way"), staged_dir(target) as staging:
        (staging / "new.txt").write_text("new")
        raise RuntimeError("half-way")
    assert [p.name for p in target.iterdir()] == ["old.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    with staged_dir(tmp_path / "a" / "b") as staging:  # missing parents are made
        (staging / "x").write_text("x")
    assert (tmp_path / "a" / "b" / "x").read_text() == "x"
