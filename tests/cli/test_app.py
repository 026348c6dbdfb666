import pytest
from moment_search.cli.app import main


@pytest.mark.parametrize("group", ["data", "index", "train", "evaluate", "benchmark"])
def test_every_group_has_help(group, capsys):
    assert main([group, "--help"]) == 0
    assert "Usage" in capsys.readouterr().out


def test_query_help_and_usage_error(capsys):
    assert main(["query", "--help"]) == 0
    assert main(["query", "text", "-k", "notanumber"]) == 2


def test_data_stats_on_tiny_corpus(tiny_corpus, capsys):
    assert main(["data", "stats", str(tiny_corpus), "--json"]) == 0
    assert '"videos": 6' in capsys.readouterr().out
