import json

import numpy as np
import pytest
import torch
from moment_search.benchmarks import corpus_eval, cross_validate

from moment_search.metrics import video_ranks
from moment_search.models.video_text import VideoText, VideoTextConfig


def test_video_ranks_and_hubness():
    scores = np.array([[3.0, 2.0, 1.0], [3.0, 1.0, 2.0], [3.0, 2.0, 4.0]])
    assert video_ranks(scores, np.array([1, 2, 0])).tolist() == [2, 2, 2]
    hub = corpus_eval.hubness(scores, k=1)  # video 0 tops 2 of 3 lists
    assert hub["N1_max"] == 2 and hub["never_in_top"] == 1
    assert corpus_eval.skewness(np.array([1.0, 1.0, 1.0])) == 0.0
    assert corpus_eval.skewness(np.array([0.0, 0.0, 0.0, 9.0])) > 1  # one hub: right-skewed


def test_random_video_row_is_exact():
    row = corpus_eval.random_video_row(200)
    assert row["video_R@10"] == 5.0 and row["video_R@100"] == 50.0
    assert row["video_median_rank"] == 100.5


def test_corpus_eval_report(session_corpus, tiny_model_dir, tmp_path):
    torch.manual_seed(0)
    video = VideoText(VideoTextConfig(feature_dim=8, hidden_dim=16, embed_dim=6))
    video_dir = video.eval().save_pretrained(tmp_path / "vt")
    report = corpus_eval.run(corpus_eval.CorpusEvalConfig(
        session_corpus, tmp_path / "report", fvmr=tiny_model_dir, video_text=video_dir,
        video_weights=(0.0, 1.0), hub_weights=(0.0, 0.5), hub_bank=2))
    rows = report["rows"]
    assert [r["setting"] for r in rows][-1] == "random video order"
    assert len(rows) == 5 and all(0 <= r["R100@0.5"] <= 100 for r in rows[:4])
    assert all(1 <= r["video_median_rank"] <= r["videos"] for r in rows[:4])
    assert (tmp_path / "report" / "corpus_eval.md").read_text().count("beta=1.0") == 6  # 3 tables


def test_cross_validation_over_folds(session_corpus, tmp_path):
    argv = ["video-text", "--data", str(session_corpus), "--feature-rate", "1.0",
            "--epochs", "2", "--batch-videos", "2", "--feature-dim", "8", "--hidden-dim", "8",
            "--embed-dim", "8", "--no-descriptions"]
    report = cross_validate.run(cross_validate.CrossValidateConfig(argv, tmp_path / "cv", 2))
    assert len(report["best_epochs"]) == 2
    row = {r["metric"]: r for r in report["summary"]}["video_R@10"]
    folds = [float(x) for x in row["folds"].split(", ")]
    assert row["mean"] == pytest.approx(np.mean(folds), abs=0.01)
    assert json.loads((tmp_path / "cv" / "cv.json").read_text())["folds"] == 2


def test_best_epoch_is_the_best_smoothed(tmp_path):
    history = tmp_path / "history.jsonl"
    history.write_text("\n".join(json.dumps({"epoch": e, "smoothed": s, "best": 0, "val": {}})
                                 for e, s in [(1, 3.0), (2, 5.0), (3, 4.0)]))
    assert cross_validate.best_epoch(history)["epoch"] == 2
    history.write_text("\n".join(json.dumps({"epoch": e, "smoothed": s, "best": 0, "val": {},
                                             "kept": True})
                                 for e, s in [(1, 3.0), (2, 5.0), (3, 4.0)]))
    assert cross_validate.best_epoch(history)["epoch"] == 3  # --keep last: the last epoch
    marks = [(1, 3.0, True), (2, 5.0, True), (3, 4.0, False)]  # keep best: the last kept one
    history.write_text("\n".join(json.dumps({"epoch": e, "smoothed": s, "best": 0, "val": {},
                                             "kept": k}) for e, s, k in marks))
    assert cross_validate.best_epoch(history)["epoch"] == 2


def test_seed_table_mean_and_spread(session_corpus, tiny_model_dir, tmp_path):
    from moment_search.benchmarks import seed_table

    two = f"tiny=fvmr:{tiny_model_dir},{tiny_model_dir}"
    report = seed_table.run(seed_table.SeedTableConfig(session_corpus, tmp_path / "s", [two]))
    tiny = [r for r in report["rows"] if r["recipe"] == "tiny"]
    assert [r["pairing"] for r in tiny] == ["real", "shuffled-video", "shuffled-query"]
    real = tiny[0]
    assert real["R1@0.5 sd"] == 0.0 and real["R1@0.5 seeds"][0] == real["R1@0.5"]
    with pytest.raises(ValueError, match="LABEL=LOCALIZER"):
        seed_table.parse_model("fvmr=dir")
