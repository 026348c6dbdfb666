"""Finish a search checkpoint of another seed as the shipped one was finished, without the fold
models that made the choices: the per-cell prior at the strength the folds chose
(``reports/position_bias``: 1.5), fitted on the model's own training sentences in video-disjoint
chunks the size of a held-out fold (850 / 5 = 170 videos), as ``benchmark position-bias
--fold-model ... --write-model`` does once it has chosen; then the one-video scale the folds chose
(``reports/one_video_weight``: 0.75), as ``benchmark one-video-weight --write-model`` writes it.
The relevance calibration is not fitted (it does not change any ranking).

Used for the search recipe's seeds 1 and 2 when their fold models (FIAN's take ~50 min each)
were not at hand. Checked on seed 0 (--check, exit 1 on a difference): the shipped checkpoint,
finished again, has the shipped config.json (prior and one-video scale included; its relevance
calibration aside); the weights are not touched by finishing.

    python scripts/finish_search_seed.py --model runs/search-s1 --out runs/final-s1
    python scripts/finish_search_seed.py --check   # finish the shipped one again, compare
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from moment_search.benchmarks.one_video_weight import scale_record
from moment_search.benchmarks.position_bias import fit, own_train_chunks, prior_record
from moment_search.cli.train_options import check_out

from moment_search.models.fvmr import FVMR
from moment_search.pretrained import default_model_dir
from moment_search.train.cell_prior import with_cell_prior

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "reports/position_bias/position_bias.json"
SCALE_REPORT = ROOT / "reports/one_video_weight/one_video_weight.json"
DATA = ROOT.parent / "shared/data/charades-sta-clip"
CHUNK_VIDEOS = 170  # a held-out fold of the 850 train videos cut in 5


def refit(model_dir: Path, data: Path) -> tuple[FVMR, np.ndarray, dict]:
    """``model_dir``'s FVMR without a prior, the prior fitted as the shipped one was, and the
    extras to store with it."""
    report = json.loads(REPORT.read_text())
    strength = float(report["chosen_strength"])
    _, extra = FVMR.read_config(model_dir)
    with torch.inference_mode():
        base = with_cell_prior(FVMR.from_pretrained(model_dir), None)
        chunks = own_train_chunks(base, data, extra.get("feature_rate"), CHUNK_VIDEOS)
    record = prior_record(report["fitted_on"], strength, report["rule"],
                          "reports/position_bias/position_bias.json")
    return base, fit(chunks, strength), {**extra, "cell_prior": record}


def finish(model_dir: Path, out: Path, data: Path) -> None:
    """``model_dir`` with the shipped prior rule and one-video scale, written to ``out``."""
    base, prior, extra = refit(model_dir, data)
    scale = float(json.loads(SCALE_REPORT.read_text())["chosen_scale"])
    record = scale_record(scale, "reports/one_video_weight/one_video_weight.json")
    with torch.inference_mode():
        model = with_cell_prior(base, prior).reconfigured(one_video_text_scale=scale)
        model.save_pretrained(out, extra={**extra, "one_video_weight": record})


def check(data: Path) -> bool:
    """Finish the shipped checkpoint again and compare its config.json (where the prior and the
    one-video scale are) and its weights (which finishing leaves as they are) with the shipped
    ones; True when both are equal."""
    from safetensors.numpy import load_file

    shipped = default_model_dir("fvmr")
    with tempfile.TemporaryDirectory() as tmp:
        finish(shipped, Path(tmp) / "again", data)
        same = {"config.json": json.loads((Path(tmp) / "again" / "config.json").read_text())
                == json.loads((shipped / "config.json").read_text())}
        a, b = (load_file(str(d / "model.safetensors")) for d in (shipped, Path(tmp) / "again"))
    same["weights"] = a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    print(f"finished again, equal to {shipped}: {same}")
    return all(same.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="search checkpoint (its prior is replaced)")
    parser.add_argument("--out", type=Path, help="where to write it finished")
    parser.add_argument("--data", type=Path, default=DATA, help="the corpus it was trained on")
    parser.add_argument("--check", action="store_true",
                        help="finish the shipped checkpoint again and compare")
    args = parser.parse_args()
    if args.check:
        if args.model or args.out:
            parser.error("--check takes no --model or --out (it finishes the shipped checkpoint)")
        raise SystemExit(0 if check(args.data) else 1)
    if args.model is None or args.out is None:
        parser.error("--model and --out are both needed (or --check)")
    if args.out.resolve() == args.model.resolve():
        parser.error("--out is --model: write the finished checkpoint to another folder")
    check_out(args.out)
    finish(args.model, args.out, args.data)
    print(f"{args.model} finished (prior, one-video scale) and written to {args.out}")


if __name__ == "__main__":
    main()
