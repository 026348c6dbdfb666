"""The query encoder an index carries: ONNX vs PyTorch, the fallback for old indexes, the
export command, and a query path that never imports PyTorch."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from moment_search.indexer.query_encoder import PyTorchFallbackWarning, pytorch_query_encoder

from moment_search.embed.encoder_export import CHECK_SENTENCES, MIN_COSINE
from moment_search.embed.onnx_encoder import EncoderError, OnnxQueryEncoder
from moment_search.search.searcher import Searcher

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "transformers", "sentence_transformers", "spacy")


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.fixture(scope="module")
def torch_encoder(built_index):
    return pytorch_query_encoder(built_index, "cpu")


def without_encoder(built_index: Path, tmp_path: Path) -> Path:
    index = shutil.copytree(built_index, tmp_path / "index")
    shutil.rmtree(index / "encoder")
    return index


def test_an_index_carries_an_onnx_encoder_that_agrees_with_pytorch(searcher, torch_encoder):
    assert isinstance(searcher.encoder, OnnxQueryEncoder)
    meta = json.loads((searcher.index_dir / "encoder" / "encoder.json").read_text())
    assert meta["check"]["fp32"]["min_cosine"] >= MIN_COSINE
    texts = [*CHECK_SENTENCES, "person does action number 3"]
    fp32 = OnnxQueryEncoder(searcher.index_dir / "encoder", precision="fp32")
    onnx, reference = fp32.encode(texts), torch_encoder.encode(texts)
    assert onnx.shape == reference.shape == (len(texts), searcher.index.d)
    assert cosines(onnx, reference).min() >= MIN_COSINE
    np.testing.assert_allclose(onnx, reference, atol=1e-4)


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_batched_onnx_encoding_equals_one_sentence_at_a_time(built_index, precision):
    encoder = OnnxQueryEncoder(built_index / "encoder", precision=precision)
    texts = list(CHECK_SENTENCES)
    one_by_one = np.concatenate([encoder.encode([t]) for t in texts])
    np.testing.assert_allclose(encoder.encode(texts), one_by_one, atol=1e-4)


def test_long_sentences_are_truncated_like_the_pytorch_encoder(built_index, torch_encoder):
    fp32 = OnnxQueryEncoder(built_index / "encoder", precision="fp32")
    long = " ".join(["the person opens the cabinet and takes a cup"] * 12)  # >> 32 tokens
    cut = " ".join(long.split()[:40])
    for text in (long, cut):
        assert cosines(fp32.encode([text]), torch_encoder.encode([text]))[0] >= MIN_COSINE


def test_a_sentence_without_word_pieces_is_refused_by_position(searcher):
    with pytest.raises(ValueError, match="query 2 is empty"):
        searcher.encoder.encode(["a person", "   "])
    with pytest.raises(ValueError, match="query 1"):
        searcher.encoder.encode(["\u200b"])  # a zero-width space: no word piece at all


def test_an_old_index_answers_through_pytorch_and_says_how_to_add_the_encoder(
        searcher, built_index, tmp_path):
    index = without_encoder(built_index, tmp_path)
    with pytest.warns(PyTorchFallbackWarning, match="index export-encoder"):
        old = Searcher.open(index, device="cpu")
    assert not isinstance(old.encoder, OnnxQueryEncoder)
    text = "person does action number 4"
    fp32 = Searcher.open(built_index, device="cpu", encoder="fp32")
    fallback, fast = old.search(text, k=5), fp32.search(text, k=5)
    assert [(m.video_id, m.start_s, m.end_s) for m in fallback] == \
        [(m.video_id, m.start_s, m.end_s) for m in fast]
    np.testing.assert_allclose([m.score for m in fallback], [m.score for m in fast], atol=1e-4)


def test_export_encoder_command_gives_an_old_index_its_encoder(built_index, tmp_path):
    from moment_search.cli.app import main

    index = without_encoder(built_index, tmp_path)
    assert main(["index", "export-encoder", "--index", str(index)]) == 0
    assert (index / "encoder" / "text.onnx").is_file()
    assert isinstance(Searcher.open(index, device="cpu").encoder, OnnxQueryEncoder)
    assert main(["index", "export-encoder", "--index", str(index)]) == 0  # already there: no-op
    assert not list(index.glob(".encoder*"))  # no staging folder left behind


def test_index_add_exports_the_encoder_of_an_old_index(built_index, session_corpus, tmp_path):
    from moment_search.indexer.edit import add_videos

    index = without_encoder(built_index, tmp_path)
    report = add_videos(session_corpus, index)
    assert any("query encoder" in note for note in report.notes)
    assert isinstance(Searcher.open(index, device="cpu").encoder, OnnxQueryEncoder)


def test_an_encoder_of_another_model_is_refused(built_index, tmp_path):
    index = shutil.copytree(built_index, tmp_path / "index")
    meta_path = index / "encoder" / "encoder.json"
    meta = json.loads(meta_path.read_text())
    meta["model_id"] = "fvmr-000000000000"
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(EncoderError, match="exported from model fvmr-000000000000"):
        Searcher.open(index, device="cpu")


def test_a_missing_graph_names_the_file_and_the_fix(built_index, tmp_path):
    index = shutil.copytree(built_index, tmp_path / "index")
    (index / "encoder" / "text-int8.onnx").unlink()  # the default graph
    with pytest.raises(EncoderError, match=r"text-int8\.onnx is missing.*export-encoder"):
        Searcher.open(index, device="cpu")


def test_an_unknown_or_absent_precision_is_refused(built_index, tmp_path):
    with pytest.raises(EncoderError, match="unknown encoder precision"):
        OnnxQueryEncoder(built_index / "encoder", precision="fp8")
    folder = shutil.copytree(built_index / "encoder", tmp_path / "encoder")
    meta = json.loads((folder / "encoder.json").read_text())
    meta.update(default_precision="fp32", precisions=["fp32"])
    (folder / "encoder.json").write_text(json.dumps(meta))
    with pytest.raises(EncoderError, match="no int8 graph"):
        OnnxQueryEncoder(folder, precision="int8")


def test_the_build_adds_an_8_bit_graph_that_agrees_and_becomes_the_default(built_index,
                                                                            searcher):
    from moment_search.embed.encoder_export import MIN_INT8_COSINE

    meta = json.loads((built_index / "encoder" / "encoder.json").read_text())
    assert meta["precisions"] == ["fp32", "int8"] and meta["default_precision"] == "int8"
    assert meta["check"]["int8"]["check"]["min_cosine"] >= MIN_INT8_COSINE
    assert searcher.encoder.precision == "int8"
    fp32 = Searcher.open(built_index, device="cpu", encoder="fp32")
    texts = list(CHECK_SENTENCES)
    assert cosines(searcher.encoder.encode(texts), fp32.encoder.encode(texts)).min() >= \
        MIN_INT8_COSINE


def run_fresh(code: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a new interpreter (nothing imported yet), from the repository root."""
    env = {k: v for k, v in os.environ.items() if k not in ("TRANSFORMERS_VERBOSITY",
                                                            "HF_HUB_DISABLE_PROGRESS_BARS")}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


def test_query_cli_file_and_api_never_import_pytorch(built_index, tmp_path):
    queries = tmp_path / "queries.txt"
    queries.write_text("person does action number 1\nperson does action number 2\n")
    result = run_fresh(f"""
        import json, sys
        from moment_search.cli.app import main
        assert main(["query", "person does action number 3", "--index", {str(built_index)!r},
                     "--json", "-k", "3"]) == 0
        assert main(["query", "--file", {str(queries)!r}, "--index", {str(built_index)!r},
                     "--json", "-k", "2"]) == 0
        from moment_search.search.searcher import Searcher
        moments = Searcher.open({str(built_index)!r}, device="cpu").search("a person", k=2)
        assert len(moments) == 2
        print("HEAVY", json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))
    """)
    assert result.returncode == 0, result.stderr
    heavy = json.loads(result.stdout.split("HEAVY", 1)[1])
    assert heavy == [], f"the query path imported {heavy}"
    lines = [json.loads(line) for line in result.stdout.split("HEAVY")[0].splitlines()
             if line.startswith("{")]
    assert len(lines) == 3 + 2  # 3 moments, then one line per query of the file


def test_help_imports_no_library_underneath():
    result = run_fresh("""
        import sys
        from moment_search.cli.app import main
        assert main(["--help"]) == 0
        heavy = ("torch", "faiss", "sqlalchemy", "pyarrow", "onnxruntime", "fastapi", "spacy")
        print("LOADED", [m for m in heavy if m in sys.modules])
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("LOADED []")


def test_the_console_script_prints_everything_and_keeps_exit_codes(built_index):
    script = Path(sys.executable).parent / "moment-search"
    if not script.is_file():
        pytest.skip(f"the console script is not installed next to {sys.executable}")
    ok = subprocess.run([str(script), "query", "person does action number 2", "--index",
                         str(built_index), "--json", "-k", "4"], capture_output=True, text=True,
                        timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert [json.loads(line)["rank"] for line in ok.stdout.splitlines()] == [1, 2, 3, 4]
    bad = subprocess.run([str(script), "query", "  ", "--index", str(built_index)],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "query 1 is empty" in bad.stderr


def test_padded_bilstm_equals_packed_sequences():
    import torch

    from moment_search.embed.text_graph import PaddedBiLSTM
    from moment_search.models.layers import run_packed

    torch.manual_seed(0)
    lstm = torch.nn.LSTM(6, 5, num_layers=2, batch_first=True, bidirectional=True).eval()
    tokens = torch.randn(4, 7, 6)
    lengths = torch.tensor([7, 3, 1, 5])
    mask = torch.arange(7)[None] < lengths[:, None]
    with torch.no_grad():
        packed = run_packed(lstm, tokens, mask)
        padded = PaddedBiLSTM(lstm)(tokens, lengths)
    torch.testing.assert_close(padded[mask], packed[mask], atol=1e-6, rtol=1e-5)


@pytest.mark.gpu
def test_cuda_execution_provider_when_asked_for(built_index):
    from moment_search.embed.onnx_encoder import available_providers

    if "CUDAExecutionProvider" not in available_providers():
        pytest.skip("onnxruntime has no CUDA provider here (pip install onnxruntime-gpu "
                    "in place of onnxruntime)")
    folder = built_index / "encoder"
    gpu = OnnxQueryEncoder(folder, precision="fp32", device="cuda")
    assert gpu.providers[0] == "CUDAExecutionProvider"
    cpu = OnnxQueryEncoder(folder, precision="fp32", device="cpu")
    texts = list(CHECK_SENTENCES)
    assert cosines(gpu.encode(texts), cpu.encode(texts)).min() >= MIN_COSINE
    searcher = Searcher.open(built_index, device="cuda", encoder="fp32")
    assert searcher.encoder.providers[0] == "CUDAExecutionProvider"


def test_a_malformed_encoder_json_is_an_encoder_error_naming_the_file(tmp_path):
    from moment_search.embed.onnx_encoder import EncoderMeta

    folder = tmp_path / "encoder"
    folder.mkdir()
    for text in ('{"format_version": 1}', "[1, 2]", "{not json"):
        (folder / "encoder.json").write_text(text)
        with pytest.raises(EncoderError, match="encoder.json"):
            EncoderMeta.read(folder)


def test_encoder_json_keeps_the_constant_column_through_rewrites(built_index, tmp_path):
    import dataclasses
    import json

    from moment_search.embed.encoder_quantize import set_default_precision
    from moment_search.embed.onnx_encoder import EncoderMeta

    folder = shutil.copytree(built_index / "encoder", tmp_path / "encoder")
    assert EncoderMeta.read(folder).constant_column is None  # the tiny model has no column
    dataclasses.replace(EncoderMeta.read(folder), constant_column=5).write(folder)
    assert set_default_precision(folder, "fp32").constant_column == 5
    assert EncoderMeta.read(folder).constant_column == 5
    assert OnnxQueryEncoder(folder).one_video.constant_column == 5
    data = json.loads((folder / "encoder.json").read_text())
    del data["constant_column"]  # an encoder exported before the field: the column is kept
    (folder / "encoder.json").write_text(json.dumps(data))
    assert EncoderMeta.read(folder).constant_column is None


def test_export_encoder_replaces_an_encoder_missing_a_graph(built_index, tmp_path):
    from moment_search.cli.app import main

    index = shutil.copytree(built_index, tmp_path / "index")
    (index / "encoder" / "text-int8.onnx").unlink()
    assert main(["index", "export-encoder", "--index", str(index)]) == 0  # no --force needed
    assert (index / "encoder" / "text-int8.onnx").is_file()
    assert Searcher.open(index, device="cpu").search("a person", k=1)


def test_repair_puts_back_an_encoder_moved_aside_by_a_crashed_export(built_index, tmp_path):
    from moment_search.indexer.leftovers import clean_leftovers
    from moment_search.indexer.store import open_catalog

    index = shutil.copytree(built_index, tmp_path / "index")
    from moment_search.atomic import backup_name

    aside = backup_name(index / "encoder")
    (index / "encoder").rename(aside)  # a crash between the two renames of replace_dir
    shutil.copytree(aside, index / ".encoder.abc123")  # the new, unpublished
    clean_leftovers(index, open_catalog(index, None))
    assert (index / "encoder" / "encoder.json").is_file()
    assert not list(index.glob(".encoder*"))
    assert isinstance(Searcher.open(index, device="cpu").encoder, OnnxQueryEncoder)
