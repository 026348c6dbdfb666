"""Give a search checkpoint of another seed the per-cell prior the shipped one has, without the
fold models: the strength the folds chose (``reports/position_bias``: 1.5), fitted on the model's
own training sentences in video-disjoint chunks the size of a held-out fold (850 / 5 = 170
videos), as ``benchmark position-bias --fold-model ... --write-model`` does once it has chosen.

Used for the search recipe's seeds 1 and 2 in the corpus seed tables, whose fold models (FIAN's
take ~50 min each) were not at hand. Checked on seed 0: run on the shipped checkpoint, it writes
the shipped prior (--check).

    python scripts/fit_seed_prior.py --model runs/search-s1 --out runs/prior-s1
    python scripts/fit_seed_prior.py --check   # the shipped checkpoint's own prior, refitted
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
DATA = ROOT.parent / "shared/data/charades-sta-clip"
CHUNK_VIDEOS = 170  # a held-out fold of the 850 train videos cut in 5


def refit(model_dir: Path) -> tuple[FVMR, np.ndarray, dict]:
    """``model_dir``'s FVMR without a prior, and the prior fitted as the shipped one was."""
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
    with torch.inference_mode():
        with_cell_prior(base, prior).save_pretrained(args.out, extra=extra)
    print(f"{args.model} with the prior written to {args.out}")


if __name__ == "__main__":
    main()
