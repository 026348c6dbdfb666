"""The int8 encoder benchmark on the tiny index: fp32 is the reference even when the index
serves int8 by default."""

from __future__ import annotations

import json
import shutil

from moment_search.benchmarks.encoder_quantization import QuantBenchConfig, open_reference, run

from moment_search.search.searcher import Searcher


def test_the_reference_is_fp32_whatever_precision_the_index_serves(built_index, session_corpus,
                                                                     tmp_path):
    index = tmp_path / "index"
    shutil.copytree(built_index, index)
    meta = json.loads((index / "encoder" / "encoder.json").read_text())
    assert "int8" in meta["precisions"] and meta["default_precision"] == "int8"  # as built
    assert Searcher.open(index, device="cpu").encoder.precision == "int8"
    assert open_reference(index).encoder.precision == "fp32"
    report = run(QuantBenchConfig(index=index, val_index=index, data=session_corpus,
                                  out=tmp_path / "out", variants=("weight-only-b32",),
                                  latency_sentences=3, warmup=1))
    assert report["reference_precision"] == "fp32"  # what run() compared every variant with
    assert report["pytorch"]["cos_min"] > 0.999  # the export agrees with PyTorch
    reference, variant = report["rows"]
    assert reference["variant"] == "fp32" and reference["top10_overlap"] == 1.0
    assert variant["variant"] == "weight-only-b32" and variant["cos_min"] < 1.0
    assert (tmp_path / "out" / "encoder_quantization.json").is_file()
