"""User errors are one line and exit code 2; anything else is a bug: its traceback, exit code 1."""

import pytest
from moment_search.cli.app import main

from moment_search.errors import DataError, InputError, MomentSearchError


def _stats_raising(monkeypatch, error: BaseException) -> None:
    def fail(corpus):
        raise error
    monkeypatch.setattr("moment_search.cli.data.corpus_stats", fail)


@pytest.mark.parametrize("error", [
    InputError("k must be positive, got 0", parameter="k"),
    DataError("corpus.jsonl, line 3: no duration"),
    FileNotFoundError("no such corpus: nope/"),
    PermissionError("cannot read nope/"),
])
def test_a_user_error_is_one_line_and_exit_code_2(tiny_corpus, monkeypatch, capsys, error):
    _stats_raising(monkeypatch, error)
    assert main(["data", "stats", str(tiny_corpus)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"error: {error}"
    assert "Traceback" not in err


@pytest.mark.parametrize("error", [
    ValueError("a plain ValueError is not a user error"), KeyError("video"),
    ZeroDivisionError("division by zero"), RuntimeError("internal state"),
    OSError(28, "No space left on device"),
])
def test_a_bug_shows_its_traceback_and_exit_code_1(tiny_corpus, monkeypatch, capsys, error):
    _stats_raising(monkeypatch, error)
    assert main(["data", "stats", str(tiny_corpus)]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert f"{type(error).__name__}" in err and "error:" not in err


def test_a_user_error_outside_a_commands_guard_is_still_one_line(monkeypatch, capsys):
    """A command that raises a library error where it holds no ``user_errors()`` block."""
    def fail(path, split):
        raise DataError("bad corpus")
    monkeypatch.setattr("moment_search.cli.data.load_for_stats", fail)
    monkeypatch.setattr("moment_search.cli.data.user_errors",
                        lambda: __import__("contextlib").nullcontext())
    assert main(["data", "stats", "anything"]) == 2
    assert capsys.readouterr().err.strip() == "error: bad corpus"


def test_every_library_error_class_is_a_moment_search_error():
    from moment_search.indexer.catalog_rows import CatalogError
    from moment_search.indexer.lock import IndexBusyError, IndexReadOnlyError

    from moment_search.data.corpus import CorpusError
    from moment_search.data.features import FeatureError
    from moment_search.ingest.encoders import EncoderError, EncoderWeightsMissing
    from moment_search.models.base import CheckpointError
    from moment_search.serve.service import BadRequest

    for cls in (CorpusError, FeatureError, CatalogError, IndexBusyError, IndexReadOnlyError,
                EncoderError, EncoderWeightsMissing, CheckpointError, BadRequest):
        assert issubclass(cls, MomentSearchError), cls
    # callers that caught the builtin before the base existed still catch them
    assert issubclass(CorpusError, ValueError) and issubclass(IndexReadOnlyError, PermissionError)
    assert issubclass(EncoderWeightsMissing, FileNotFoundError)


def test_an_unknown_video_is_a_data_error_and_still_a_key_error():
    from moment_search.data.corpus import Corpus, UnknownVideoError

    with pytest.raises(KeyError) as caught:
        Corpus({}, [], "tiny").video("nope")
    assert isinstance(caught.value, UnknownVideoError) and isinstance(caught.value, DataError)
    assert str(caught.value) == "unknown video id 'nope' in tiny"  # not quoted as a KeyError's


def test_a_long_user_error_stays_one_line_in_a_narrow_console(tiny_corpus, monkeypatch, capsys):
    from moment_search.cli.common import err_console

    monkeypatch.setattr(err_console, "width", 40)
    message = "recipes/x.toml: pln.train: unknown key 'epoch' (did you mean 'epochs'?) " * 2
    _stats_raising(monkeypatch, InputError(message.strip()))
    assert main(["data", "stats", str(tiny_corpus)]) == 2
    assert capsys.readouterr().err.strip() == f"error: {message.strip()}"
