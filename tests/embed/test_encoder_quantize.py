"""The int8 query encoder: quantized from an index's fp32 graph, recorded, loadable, judged."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from moment_search.embed.encoder_quantize import (
    DEFAULT_VARIANT,
    VARIANTS,
    QuantVariant,
    RankingFigures,
    accept_int8,
    quantize_encoder,
    set_default_precision,
)
from moment_search.embed.onnx_encoder import EncoderError, OnnxQueryEncoder

SENTENCES = ["person opens a cabinet", "a man sits down on the couch",
             "someone turns on the light", "the woman drinks a glass of water",
             "person does action number 3", "a person is putting a book on a shelf"]
# int8 vs fp32 cosine per sentence: the default variant keeps MiniLM's activations close
MIN_INT8_COSINE = 0.99


def fp32_only(folder: Path) -> None:
    """Make an exported encoder folder what an export without quantization leaves."""
    (folder / "text-int8.onnx").unlink(missing_ok=True)
    meta = json.loads((folder / "encoder.json").read_text())
    meta.update(default_precision="fp32", precisions=["fp32"])
    meta["check"].pop("int8", None)
    (folder / "encoder.json").write_text(json.dumps(meta))


@pytest.fixture(scope="module")
def quantized(built_index, tmp_path_factory) -> tuple[Path, dict]:
    """A copy of the tiny index's encoder folder with the default variant's int8 graph."""
    folder = tmp_path_factory.mktemp("encoder") / "encoder"
    shutil.copytree(built_index / "encoder", folder)
    fp32_only(folder)
    return folder, quantize_encoder(folder, SENTENCES[:4], DEFAULT_VARIANT,
                                    check_texts=SENTENCES)


def test_int8_graph_loads_and_agrees_with_fp32(quantized):
    folder, record = quantized
    int8 = OnnxQueryEncoder(folder, precision="int8")
    fp32 = OnnxQueryEncoder(folder, precision="fp32")
    a, b = fp32.encode(SENTENCES), int8.encode(SENTENCES)  # (6, D) each
    assert a.shape == b.shape and b.dtype == np.float32
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cosine.min() >= MIN_INT8_COSINE
    assert record["check"]["min_cosine"] >= MIN_INT8_COSINE
    assert record["variant"] == DEFAULT_VARIANT.name


def test_encoder_json_lists_int8_but_keeps_the_default(quantized):
    folder, record = quantized
    meta = json.loads((folder / "encoder.json").read_text())
    assert meta["precisions"] == ["fp32", "int8"]
    assert meta["default_precision"] == "fp32"
    assert meta["check"]["int8"]["check"] == record["check"]
    assert "fp32" in meta["check"]  # the export's own check is kept
    assert (folder / "text-int8.onnx").stat().st_size == record["bytes"]
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # no staging left


def test_set_default_precision(quantized, tmp_path):
    folder = tmp_path / "encoder"
    shutil.copytree(quantized[0], folder)
    set_default_precision(folder, "int8")
    assert OnnxQueryEncoder(folder).precision == "int8"
    set_default_precision(folder, "fp32")
    assert OnnxQueryEncoder(folder).precision == "fp32"


def test_set_default_precision_refuses_a_missing_graph(built_index, tmp_path):
    folder = tmp_path / "encoder"
    shutil.copytree(built_index / "encoder", folder)
    fp32_only(folder)
    with pytest.raises(EncoderError, match="no int8 graph"):
        set_default_precision(folder, "int8")


def test_static_variant_needs_calibration_sentences(built_index, tmp_path):
    folder = tmp_path / "encoder"
    shutil.copytree(built_index / "encoder", folder)
    fp32_only(folder)
    with pytest.raises(ValueError, match="calibration"):
        quantize_encoder(folder, [], QuantVariant("s", "static"))
    assert not (folder / "text-int8.onnx").exists()


def test_variant_validates_its_settings():
    with pytest.raises(ValueError, match="mode"):
        QuantVariant("x", "fp16")
    with pytest.raises(ValueError, match="calibration"):
        QuantVariant("x", calibration="median")
    assert DEFAULT_VARIANT.name in VARIANTS


FP32 = RankingFigures(top10_overlap=1.0, r1_05=40.0, r1_07=20.0, r10_05=30.0)


def test_accept_int8_passes_within_the_limits():
    ok, reasons = accept_int8(FP32, RankingFigures(0.95, 39.5, 20.5, 30.0))
    assert ok and reasons == []


def test_accept_int8_names_each_failing_figure():
    ok, reasons = accept_int8(FP32, RankingFigures(0.82, 39.4, 20.0, 30.8))
    assert not ok
    assert len(reasons) == 3
    assert reasons[0].startswith("top-10 overlap 0.820")
    assert reasons[1].startswith("R1@0.5 39.40 vs fp32 40.00 (-0.60")
    assert reasons[2].startswith("R10@0.5 30.80")  # a gain past the limit also fails


def test_accept_int8_overlap_alone_can_fail():
    ok, reasons = accept_int8(FP32, RankingFigures(0.949, 40.0, 20.0, 30.0))
    assert not ok and reasons == ["top-10 overlap 0.949 < 0.95"]


def test_calibration_batches_are_padded_without_changing_the_vectors(built_index):
    from moment_search.embed.encoder_quantize import SentenceReader
    from moment_search.embed.onnx_encoder import load_tokenizer

    fp32 = OnnxQueryEncoder(built_index / "encoder", "fp32")
    limit = fp32.meta.max_tokens
    reader = SentenceReader(load_tokenizer(built_index / "encoder" / "tokenizer.json", limit),
                            SENTENCES, limit, batch=4)
    batches = [reader.get_next(), reader.get_next()]
    assert reader.get_next() is None
    assert {b["token_index"].shape[1] for b in batches} == {limit}
    assert {b["input_ids"].shape[1] for b in batches} == {limit + 2}
    padded = np.concatenate([fp32.session.run(None, b)[0] for b in batches])  # (6, D)
    np.testing.assert_allclose(padded, fp32.encode(SENTENCES), atol=1e-5)


@pytest.mark.slow
def test_static_qdq_variant_runs(built_index, tmp_path):
    folder = tmp_path / "encoder"
    shutil.copytree(built_index / "encoder", folder)
    record = quantize_encoder(folder, SENTENCES, VARIANTS["static-percentile"])
    assert record["check"]["min_cosine"] > 0.5
    assert OnnxQueryEncoder(folder, "int8").encode(SENTENCES[:2]).shape[0] == 2
