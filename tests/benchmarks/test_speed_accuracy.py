import json
from pathlib import Path

import numpy as np
import pytest
from moment_search.benchmarks.speed_accuracy import run as bench
from moment_search.benchmarks.speed_accuracy.presets import (
    PRESETS,
    Preset,
    get_preset,
    parse_models,
)
from moment_search.benchmarks.speed_accuracy.scaling import ReplicatedEmbeddings, linear_fit
from moment_search.cli.app import main

from moment_search.search.localize import CORPUS_PER_VIDEO

TINY = Preset("tiny", corpus_queries=None, rerank_videos=(1, 2), rerank_weight=0.5,
              scale_videos=(3, 20), scale_queries=4, scan_videos=(2, 6), scan_queries=2,
              warmup=1)


@pytest.fixture(scope="module")
def report(tmp_path_factory, session_corpus, tiny_model_dir, tiny_pln_dir):
    out = tmp_path_factory.mktemp("speed")
    models = {"fvmr": tiny_model_dir, "pln": tiny_pln_dir}
    return out, bench.run(bench.SpeedAccuracyConfig(session_corpus, out, "val", models, TINY))


def test_writes_every_output(report):
    out, result = report
    assert {p.name for p in out.iterdir()} >= {"report.json", "report.md", "speed_accuracy.png",
                                                 "scaling.png"}
    stored = json.loads((out / "report.json").read_text())
    assert stored["machine"]["cpu_model"] and stored["machine"]["versions"]["torch"]
    assert stored["device"].startswith("cpu (torch: cpu; FAISS on the CPU")
    assert stored["machine"]["torch_threads"] >= 1
    text = (out / "report.md").read_text()
    assert "## Single video" in text and "## Corpus" in text and "## Scaling" in text
    assert "faster than pln scanning every video" in text


def test_single_video_rows_have_steps_and_accuracy(report):
    rows = report[1]["single_video"]
    assert [r["model"] for r in rows] == ["prior", "fvmr", "pln"]
    for r in rows:
        assert r["queries"] == 3 and 0 <= r["R1@0.5"] <= 100 and 0 <= r["mIoU"] <= 100
        assert r["ALL_ms_median"] >= r["CML_ms_median"] > 0
        assert r["TE_ms_p95"] >= r["TE_ms_median"]


def test_corpus_rows_cover_index_cascades_and_scan(report):
    rows = report[1]["corpus"]["rows"]
    assert report[1]["per_video"] == CORPUS_PER_VIDEO  # the cap the corpus rows ran under
    assert [r["strategy"] for r in rows] == ["index", "cascade", "cascade", "scan"]
    assert [r.get("M") for r in rows[1:3]] == [1, 2]
    assert rows[-1]["videos_scored_per_query"] == report[1]["corpus"]["about"]["videos"] == 3
    assert all(r["queries"] == 3 and r["ms_p95"] >= r["ms_p50"] > 0 for r in rows)
    checks = report[1]["checks"]
    assert any("exact scan" in c for c in checks) and any("weight 0" in c for c in checks)
    assert any("chunked" in c for c in checks)


def test_scaling_measures_then_extrapolates(report):
    scaling = report[1]["scaling"]
    assert [p["videos"] for p in scaling["index"]] == [3, 20]
    assert all(p["recall_at_100"] == 1.0 and p["index"] == "flat" for p in scaling["index"])
    curve = {p["videos"]: p["source"] for p in scaling["scan"]["pln"]}
    # session corpus: 9 videos; measured at 2 and 6, the 3 and 20 of the index extrapolated
    assert curve == {2: "measured", 3: "extrapolated", 6: "measured", 20: "extrapolated"}
    assert scaling["cascade_m"] == {"pln": 1}


def test_replicated_embeddings_keep_real_videos_and_perturb_copies():
    base = np.random.default_rng(0).standard_normal((3, 4, 2)).astype(np.float32)
    data = ReplicatedEmbeddings(base, noise=0.1, videos_per_block=2)
    vectors = np.concatenate([v for _, v in data.blocks(5 * 4)])
    assert vectors.shape == (20, 2)
    np.testing.assert_array_equal(vectors[:12], base.reshape(-1, 2))
    copy = vectors[12:16] - base[0]
    assert 0 < np.abs(copy).max() < 1.0
    np.testing.assert_array_equal(vectors, np.concatenate([v for _, v in data.blocks(20)]))


def test_linear_fit_and_parsing():
    points = [{"videos": 10, "ms_p50": 12.0}, {"videos": 110, "ms_p50": 112.0}]
    assert linear_fit(points) == pytest.approx((2.0, 1.0))
    assert parse_models("fvmr, pln=dir") == {"fvmr": None, "pln": Path("dir")}
    with pytest.raises(ValueError, match="NAME=CHECKPOINT_DIR"):
        parse_models("fvmr,pln=")
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        get_preset("huge")
    assert PRESETS["small"].scale_videos[-1] >= 10_000


def test_cli_rejects_a_model_that_cannot_be_timed(session_corpus, tmp_path, tiny_model_dir):
    code = main(["benchmark", "speed-accuracy", "--data", str(session_corpus), "--out",
                 str(tmp_path), "--models", f"fvmr-pq={tiny_model_dir}"])
    assert code == 2
    assert not (tmp_path / "report.json").exists()


def test_devices_report_on_cpu(session_corpus, tiny_model_dir, tiny_pln_dir, tmp_path):
    from moment_search.benchmarks.speed_accuracy import devices

    models = {"fvmr": tiny_model_dir, "pln": tiny_pln_dir}
    report = devices.run(devices.DevicesConfig(session_corpus, tmp_path, "val", models, ("cpu",),
                                               sizes=(2, 5), warmup=1))
    assert [r["model"] for r in report["single_video"]] == ["prior", "fvmr", "pln"]
    assert [(r["model"], r["videos"]) for r in report["scan"]] == [("pln", 2), ("pln", 5)]
    assert "| cpu | pln |" in (tmp_path / "devices.md").read_text()


def test_report_with_the_index_alone(session_corpus, tiny_model_dir, tmp_path):
    small = Preset("tiny", corpus_queries=2, rerank_videos=(1,), rerank_weight=0.5,
                   scale_videos=(3,), scale_queries=2, scan_videos=(2,), scan_queries=1, warmup=0)
    result = bench.run(bench.SpeedAccuracyConfig(session_corpus, tmp_path, "val",
                                                 {"fvmr": tiny_model_dir}, small))
    assert [r["strategy"] for r in result["corpus"]["rows"]] == ["index"]
    assert result["corpus"]["about"]["queries"] == 2
    assert result["scaling"]["scan"] == {} and (tmp_path / "scaling.png").exists()
    assert "## Corpus" in (tmp_path / "report.md").read_text()
