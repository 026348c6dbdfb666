import pytest

from moment_search.data.corpus import CorpusError
from moment_search.data.readers.charades_csv import (
    ActionSegment,
    read_charades_classes,
    read_charades_csv,
)
from tests.conftest import CHARADES_HEADER, SHARED_DATA, require_shared_data

CHARADES = SHARED_DATA / "annotations" / "charades"
ROW = 'AB12C,S,Kitchen,6,7,Yes,"A script.",cup;door,"One. Two;Three",{actions},{length}\n'


def write_csv(tmp_path, *rows, header=CHARADES_HEADER):
    path = tmp_path / "charades.csv"
    path.write_text(header + "".join(rows))
    return path


def test_real_files():
    require_shared_data(CHARADES)
    classes = read_charades_classes(CHARADES / "Charades_v1_classes.txt")
    videos = read_charades_csv(CHARADES / "Charades_v1_test_sta1000.csv", classes)
    assert len(classes) == 157 and classes["c008"] == "Opening a door"
    assert len(videos) == 1000
    assert sum(len(v.actions) for v in videos.values()) == 8477 + 1508  # train + val (README)
    video = videos["TJZ0P"]
    assert video.duration == pytest.approx(17.71) and video.scene == "Bedroom"
    assert ActionSegment("c067", 8.6, 13.8) in video.actions
    assert len(video.descriptions) == 3 and "sandwich" in video.script


def test_multi_value_fields(tmp_path):
    path = write_csv(tmp_path, ROW.format(actions="c001 0.0 3.5;c002 1 2", length="12.5"))
    video = read_charades_csv(path)["AB12C"]
    assert video.descriptions == ("One. Two", "Three")
    assert video.objects == ("cup", "door")
    assert video.actions == (ActionSegment("c001", 0.0, 3.5), ActionSegment("c002", 1.0, 2.0))


def test_empty_actions_field(tmp_path):
    path = write_csv(tmp_path, ROW.format(actions="", length="12.5"))
    assert read_charades_csv(path)["AB12C"].actions == ()


@pytest.mark.parametrize("actions, length, message", [
    ("c001 0.0", "12.5", "is not 'cNNN start end'"),
    ("x001 0.0 1.0", "12.5", "is not 'cNNN start end'"),
    ("c001 a 1.0", "12.5", "must be numbers"),
    ("c001 -1 1.0", "12.5", "start >= 0"),
    ("c001 0 nan", "12.5", "finite"),
    ("c001 0 1", "abc", "length must be a number"),
    ("c001 0 1", "-3", "length must be positive"),
])
def test_malformed_rows_name_the_line(tmp_path, actions, length, message):
    good = ROW.replace("AB12C", "GOOD1").format(actions="c001 0 1", length="10")
    path = write_csv(tmp_path, good, ROW.format(actions=actions, length=length))
    with pytest.raises(CorpusError, match=message) as error:
        read_charades_csv(path)
    assert f"{path}:3" in str(error.value)


def test_unknown_class_and_duplicates(tmp_path):
    path = write_csv(tmp_path, ROW.format(actions="c009 0 1", length="10"))
    with pytest.raises(CorpusError, match="unknown class c009"):
        read_charades_csv(path, {"c001": "Holding"})
    path = write_csv(tmp_path, *[ROW.format(actions="", length="10")] * 2)
    with pytest.raises(CorpusError, match="appears twice"):
        read_charades_csv(path)


def test_missing_file_and_columns(tmp_path):
    with pytest.raises(CorpusError, match="does not exist"):
        read_charades_csv(tmp_path / "nope.csv")
    path = write_csv(tmp_path, "AB12C,10\n", header="id,length\n")
    with pytest.raises(CorpusError, match="missing column"):
        read_charades_csv(path)


def test_class_list_errors(tmp_path):
    path = tmp_path / "classes.txt"
    path.write_text("c000 Holding some clothes\n\nbad line\n")
    with pytest.raises(CorpusError, match=f"{path}:3"):
        read_charades_classes(path)
    path.write_text("c000 Holding\nc000 Again\n")
    with pytest.raises(CorpusError, match="listed twice"):
        read_charades_classes(path)
