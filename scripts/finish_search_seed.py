"""Finish a search checkpoint of another seed as the shipped one was finished, without the fold
models that made the choices: the per-cell prior at the strength the folds chose
(``reports/position_bias``: 1.5), fitted on the model's own training sentences in video-disjoint
chunks the size of a held-out fold (850 / 5 = 170 videos), as ``benchmark position-bias
--fold-model ... --write-model`` does once it has chosen; then the one-video scale the folds chose
(``reports/one_video_weight``: 0.75), as ``benchmark one-video-weight --write-model`` writes it.
The relevance calibration is not fitted (it does not change any ranking).

Used for the search recipe's seeds 1 and 2 when their fold models (FIAN's take ~50 min each)
were not at hand. Checked on seed 0: run on the shipped checkpoint, it refits the shipped prior
(--check).

    python scripts/finish_search_seed.py --model runs/search-s1 --out runs/final-s1
    python scripts/finish_search_seed.py --check   # the shipped checkpoint's own prior, refitted
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from moment_search.benchmarks.position_bias import fit, own_train_chunks

from moment_search.models.fvmr import FVMR
from moment_search.pretrained import default_model_dir
from moment_search.train.cell_prior import with_cell_prior

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "reports/position_bias/position_bias.json"
SCALE_REPORT = ROOT / "reports/one_video_weight/one_video_weight.json"
DATA = ROOT.parent / "shared/data/charades-sta-clip"
CHUNK_VIDEOS = 170  # a held-out fold of the 850 train videos cut in 5


def refit(model_dir: Path) -> tuple[FVMR, np.ndarray, dict]:
    """``model_dir``'s FVMR without a prior, the prior fitted as the shipped one was, and the
    extras to store with it."""
    report = json.loads(REPORT.read_text())
    strength = float(report["chosen_strength"])
    _, extra = FVMR.read_config(model_dir)
    with torch.inference_mode():
        base = with_cell_prior(FVMR.from_pretrained(model_dir), None)
        chunks = own_train_chunks(base, DATA, extra.get("feature_rate"), CHUNK_VIDEOS)
    record = {"fitted_on": report["fitted_on"], "strength": strength, "rule": report["rule"],
              "report": "reports/position_bias/position_bias.json"}
    return base, fit(chunks, strength), {**extra, "cell_prior": record}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="search checkpoint (its prior is replaced)")
    parser.add_argument("--out", type=Path, help="where to write it with the prior")
    parser.add_argument("--check", action="store_true",
                        help="refit the shipped checkpoint's prior and compare")
    args = parser.parse_args()
    if args.check:
        shipped = np.asarray(json.loads(REPORT.read_text())["prior"])
        _, prior, _ = refit(default_model_dir("fvmr"))
        print("max |refit - shipped| =", float(np.abs(prior - shipped).max()))
        return
    base, prior, extra = refit(args.model)
    scale = float(json.loads(SCALE_REPORT.read_text())["chosen_scale"])
    record = {"scale": scale, "rule": "best mean fold R1@0.5 + R1@0.7",
              "report": "reports/one_video_weight/one_video_weight.json"}
    with torch.inference_mode():
        model = with_cell_prior(base, prior).reconfigured(one_video_text_scale=scale)
        model.save_pretrained(args.out, extra={**extra, "one_video_weight": record})
    print(f"{args.model} with the prior and one-video scale {scale} written to {args.out}")


if __name__ == "__main__":
    main()
