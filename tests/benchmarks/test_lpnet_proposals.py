import json
import math

import numpy as np
import pytest
import torch
from moment_search.benchmarks import lpnet_proposals as bench

from moment_search.models.lpnet import LPNet, LPNetConfig


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def boxes_model(path, boxes):
    """A tiny LPNet whose proposals are exactly ``boxes`` ((centre, half-width) pairs)."""
    model = LPNet(LPNetConfig(feature_dim=8, hidden_dim=8, n_heads=2, n_conv=1, kernel=3,
                              n_clips=8, n_proposals=len(boxes), n_samples=4, dynamic_dim=4,
                              max_half_width=0.5))
    with torch.no_grad():
        model.proposal_logits.copy_(torch.tensor(
            [[logit(c), logit(h / 0.5)] for c, h in boxes], dtype=torch.float32))
    model.save_pretrained(path)
    return path


def test_coverage_by_hand():
    boxes = np.array([[0.25, 0.75], [0.0, 0.2]])
    truth = np.array([[0.25, 0.75], [0.0, 0.12], [0.5, 1.0]])
    # best IoU per moment: 1, 0.12 / 0.2 = 0.6, 0.25 / 0.75 = 1/3
    result = bench.coverage(boxes, truth)
    assert result["mean_best_iou"] == pytest.approx((1 + 0.6 + 1 / 3) / 3)
    assert result["covered@0.5"] == pytest.approx(200 / 3)
    assert result["covered@0.7"] == pytest.approx(100 / 3)


def test_report_reads_the_boxes_of_both_checkpoints(tiny_corpus, tmp_path):
    before = boxes_model(tmp_path / "before", [(0.5, 0.25), (0.1, 0.1)])
    after = boxes_model(tmp_path / "after", [(0.3, 0.05), (0.7, 0.2)])
    out = tmp_path / "report"
    bench.run(bench.ProposalsConfig(after, before, out, tiny_corpus, "train"))
    result = json.loads((out / "lpnet_proposals.json").read_text())
    assert result["before"]["centres"] == pytest.approx([0.5, 0.1], abs=1e-5)
    assert result["before"]["widths"] == pytest.approx([0.5, 0.2], abs=1e-5)
    assert result["after"]["widths"] == pytest.approx([0.1, 0.4], abs=1e-5)
    assert result["n_truth"] > 0 and 0 <= result["after"]["coverage"]["covered@0.5"] <= 100
    assert (out / "lpnet_proposals.png").stat().st_size > 0
    assert "after" in (out / "lpnet_proposals.md").read_text()


def test_cli_without_ground_truth(tmp_path):
    from cli.app import main

    before = boxes_model(tmp_path / "before", [(0.5, 0.25)])
    out = tmp_path / "report"
    assert main(["benchmark", "lpnet-proposals", "--model", str(before), "--before",
                 str(before), "--out", str(out)]) == 0
    result = json.loads((out / "lpnet_proposals.json").read_text())
    assert result["split"] is None and "coverage" not in result["after"]


def test_a_split_without_windows_is_an_error(tiny_corpus):
    # a test split as benchmarks ship them: sentences, no ground truth
    row = {"qid": "test-0", "query": "person opens a door", "vid": "vid000", "duration": 20.0,
           "relevant_windows": []}
    (tiny_corpus / "test.jsonl").write_text(json.dumps(row) + "\n")
    with pytest.raises(ValueError, match="split 'test' of .* has no ground-truth windows"):
        bench.ground_truth_spans(tiny_corpus, "test")
