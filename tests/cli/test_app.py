import json

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


@pytest.mark.parametrize("value", ["0", "-0.5", "1.5", "nan"])
def test_query_rejects_nms_outside_zero_one(value, capsys):
    assert main(["query", "person sits", "--index", "no-such-index", "--nms", value]) == 2
    err = " ".join(capsys.readouterr().err.replace("│", " ").split())
    assert "--nms" in err and "(0, 1]" in err


def _query_file(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps({"qid": 7, "query": "person does action number 1"}) + "\n"
                    + json.dumps({"qid": "x", "query": "person does action number 2"}) + "\n")
    return path


def test_query_file_prints_a_table_per_query_or_json_lines(built_index, tmp_path, capsys):
    queries = _query_file(tmp_path)
    base = ["query", "--file", str(queries), "--index", str(built_index), "-k", "2",
            "--nms", "1", "--device", "cpu"]
    assert main(base) == 0
    out = capsys.readouterr().out
    assert "7: person does action number 1" in out and "x: person does action number 2" in out
    assert out.count("rank") == 2
    assert main([*base, "--json"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [(x["qid"], x["query"]) for x in lines] == [(7, "person does action number 1"),
                                                      ("x", "person does action number 2")]
    assert [m["rank"] for m in lines[0]["moments"]] == [1, 2]


def test_query_file_writes_tvr_predictions(built_index, tmp_path, capsys):
    queries, out = _query_file(tmp_path), tmp_path / "sub.json"
    base = ["query", "--file", str(queries), "--index", str(built_index), "--device", "cpu"]
    assert main([*base, "--predictions", str(out), "--format", "tvr"]) == 0
    assert "answered 2 queries; tvr predictions written to" in capsys.readouterr().out
    submission = json.loads(out.read_text())
    assert [e["desc_id"] for e in submission["VCMR"]] == [7, "x"]
    assert len(submission["video2idx"]) == 9  # every video of the index
    assert main([*base, "--format", "tvr"]) == 2
    assert "--format tvr applies to --predictions" in capsys.readouterr().err
    assert main([*base, "--predictions", str(out), "--format", "csv"]) == 2
    assert "--format must be one of jsonl, tvr" in capsys.readouterr().err


def test_text_model_chatter_only_with_verbose(built_index, capfd):
    # the PyTorch query encoder (what an index without an ONNX one runs) loads transformers
    query = ["query", "person sits", "--index", str(built_index), "--device", "cpu", "--json",
             "--encoder", "pytorch"]
    assert main(query) == 0
    quiet = capfd.readouterr()
    assert "Loading weights" not in quiet.err and quiet.err.strip() == ""
    assert main(["--verbose", *query]) == 0
    assert "Loading weights" in capfd.readouterr().err
    assert main(query) == 0  # and quiet again in the same process
    assert "Loading weights" not in capfd.readouterr().err


def test_library_warnings_and_logs_are_silenced_but_ours_are_not():
    import logging
    import warnings

    from moment_search.cli.common import set_library_chatter

    with warnings.catch_warnings(record=True) as caught:
        set_library_chatter(False)
        warnings.warn_explicit("noise", UserWarning, "lib.py", 1, module="transformers.x")
        warnings.warn_explicit("ours", UserWarning, "dev.py", 1, module="moment_search.device")
        assert [str(w.message) for w in caught] == ["ours"]
        assert logging.getLogger("transformers").getEffectiveLevel() == logging.ERROR
        set_library_chatter(True)
        warnings.warn_explicit("noise", UserWarning, "lib.py", 2, module="transformers.x")
        assert [str(w.message) for w in caught] == ["ours", "noise"]
        assert logging.getLogger("transformers").level != logging.ERROR


def test_a_fresh_process_loads_the_text_model_quietly():
    """The CLI's path: the setting is made before transformers is first imported."""
    import os
    import subprocess
    import sys

    from moment_search.cli.common import QUIET_ENVIRONMENT

    # a fresh process from a plain shell: without the quiet settings that CLI calls made
    # in-process by earlier tests left in this process's environment
    env = {k: v for k, v in os.environ.items() if k not in QUIET_ENVIRONMENT}
    code = ("from moment_search.cli.common import set_library_chatter as s; s({}); "
            "from moment_search.text.tokens import TokenEncoder; TokenEncoder(device='cpu')")
    runs = {verbose: subprocess.run([sys.executable, "-c", code.format(verbose)],
                                    capture_output=True, text=True, timeout=300, env=env)
            for verbose in (False, True)}
    assert runs[False].returncode == 0 and runs[False].stderr == ""
    assert "Loading weights" in runs[True].stderr
