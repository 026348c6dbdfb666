import math

import numpy as np
import pytest
from moment_search.cli.app import main

from moment_search.errors import InputError
from moment_search.search.checks import check_count, check_nms, check_sentence
from moment_search.serve.service import MAX_K, SearchOptions, check_options, check_query


@pytest.mark.parametrize("text", ["", "   ", None, 7])
def test_a_blank_or_missing_sentence_is_refused_naming_the_parameter(text):
    with pytest.raises(InputError, match="queries\\[2\\] is empty; expected a sentence") as e:
        check_sentence(text, "queries[2]")
    assert e.value.parameter == "queries[2]"


def test_a_sentence_is_stripped_and_capped_only_when_asked():
    assert check_sentence("  a person sits ") == "a person sits"
    assert check_sentence("x" * 1000) == "x" * 1000
    with pytest.raises(InputError, match="at most 5 characters, got 6"):
        check_sentence("xxxxxx", max_chars=5)


@pytest.mark.parametrize("value", [0, -1, 2.5, None, "3"])
def test_a_count_is_a_positive_integer(value):
    with pytest.raises(InputError) as e:
        check_count("per_video", value)
    assert e.value.parameter == "per_video"


def test_a_count_may_have_a_cap_and_accepts_numpy_integers():
    assert check_count("k", np.int64(5)) == 5
    assert check_count("k", 100, high=100) == 100
    with pytest.raises(InputError, match="k: expected an integer from 1 to 100, got 101"):
        check_count("k", 101, high=100)


@pytest.mark.parametrize("nms", [0, -0.5, 1.5, math.nan, "0.5"])
def test_nms_is_an_iou_threshold_in_zero_one(nms):
    with pytest.raises(InputError, match=r"nms must be an IoU threshold in \(0, 1\]") as e:
        check_nms(nms)
    assert e.value.parameter == "nms"
    assert check_nms(1) == 1.0 and check_nms(np.float32(0.5)) == 0.5


@pytest.mark.parametrize("options, parameter", [
    (SearchOptions(nms=0.0), "nms"), (SearchOptions(k=0), "k"), (SearchOptions(k=MAX_K + 1), "k"),
    (SearchOptions(per_video=0), "per_video"), (SearchOptions(rerank_videos=0), "rerank_videos")])
def test_the_server_runs_the_same_checks_under_its_caps(options, parameter):
    with pytest.raises(InputError) as e:
        check_options(options)
    assert e.value.parameter == parameter
    with pytest.raises(InputError, match="q is empty; expected a sentence"):
        check_query(" ")


def test_the_searcher_runs_the_same_checks(built_index):
    from moment_search.search.searcher import Searcher

    searcher = Searcher.open(built_index, device="cpu")
    for options, parameter in (({"nms": 1.5}, "nms"), ({"per_video": 0}, "per_video"),
                               ({"k": 0}, "k")):
        with pytest.raises(InputError) as e:
            searcher.search("a person", **options)
        assert e.value.parameter == parameter
    with pytest.raises(InputError, match=r"query 2 is empty; expected a sentence") as e:
        searcher.search_many(["a person", " "])
    assert e.value.parameter == "queries[1]"


def test_the_cli_reports_the_same_nms_message(capsys):
    assert main(["query", "a person", "--index", "no-such-index", "--nms", "2"]) == 2
    err = " ".join(capsys.readouterr().err.replace("│", " ").split())
    assert "--nms" in err and "nms must be an IoU threshold in (0, 1]" in err
