#!/usr/bin/env bash
# Score the shipped FVMR's val predictions with the field's own evaluators (moment_detr, lighthouse,
# TVRetrieval, at fixed commits) beside `moment-search evaluate score`, single video and corpus.
# Run from the repository root with the venv active; needs git and network access to GitHub.
# The evaluators' code stays outside the project (/tmp/src, /tmp/evaluators); outputs go to /tmp/interop.
set -euo pipefail
D=../shared/data/charades-sta-clip

# the evaluators at the commits used, exported outside the project
for repo in jayleicn/moment_detr line/lighthouse jayleicn/TVRetrieval; do
    [ -d "/tmp/src/${repo#*/}" ] || git clone -q "https://github.com/$repo" "/tmp/src/${repo#*/}"
done
mkdir -p /tmp/evaluators/moment_detr /tmp/evaluators/lighthouse /tmp/evaluators/tvr /tmp/interop /tmp/charades-lh
git -C /tmp/src/moment_detr archive b7e553ac3b0c898ee6b85e03ee507c064eab89ca standalone_eval | tar -x -C /tmp/evaluators/moment_detr
git -C /tmp/src/lighthouse archive d095eaa552cecef240897a8b750306b3b2a08740 training/standalone_eval | tar -x -C /tmp/evaluators/lighthouse
git -C /tmp/src/TVRetrieval archive d99a9ea7e724249047d6357f2a607c7ae256f8c6 standalone_eval | tar -x -C /tmp/evaluators/tvr

# moment_detr's eval.py also scores QVHighlights' "long" bucket, which Charades-STA lacks (it fails on
# the empty mean), so its two metric functions are called for the full set by this driver
cat > /tmp/interop/moment_detr_full.py <<'PY'
import json, sys
from standalone_eval.eval import compute_mr_ap, compute_mr_r1
from standalone_eval.utils import load_jsonl
sub, gt = load_jsonl(sys.argv[1]), load_jsonl(sys.argv[2])
assert {d["qid"] for d in sub} == {d["qid"] for d in gt}, "qids in ground_truth and submission must match"
print(json.dumps({"MR-mAP": compute_mr_ap(sub, gt), "MR-R1": compute_mr_r1(sub, gt)}))
PY
lighthouse() {  # PRED GT OUT
    PYTHONPATH=/tmp/evaluators/lighthouse/training python /tmp/evaluators/lighthouse/training/standalone_eval/eval.py \
        --submission_path "$1" --gt_path "$2" --save_path "$3"
}
moment_detr() {  # PRED GT
    PYTHONPATH=/tmp/evaluators/moment_detr python /tmp/interop/moment_detr_full.py "$1" "$2"
}
tvr_gt() {  # TVR's ground-truth JSONL (desc_id, vid_name, ts, type "v": video-only) from an annotation file
    python -c "import json, sys; [print(json.dumps({'desc_id': r['qid'], 'desc': r['query'], 'vid_name': r['vid'], 'duration': r['duration'], 'ts': r['relevant_windows'][0], 'type': 'v'})) for r in map(json.loads, open(sys.argv[1]))]" "$1"
}

# single video: the shipped FVMR on val, scored by the project, lighthouse and moment_detr
moment-search evaluate model fvmr --data $D --split val --predictions /tmp/interop/fvmr_val.jsonl
moment-search evaluate score /tmp/interop/fvmr_val.jsonl $D/val.jsonl
lighthouse /tmp/interop/fvmr_val.jsonl $D/val.jsonl /tmp/interop/fvmr_val_lighthouse.json
moment_detr /tmp/interop/fvmr_val.jsonl $D/val.jsonl

# the same against lighthouse's own file (integer qids): its rows of the 150 val videos, beside the features
git -C /tmp/src/lighthouse show d095eaa552cecef240897a8b750306b3b2a08740:data/charades/charades_test_release.jsonl \
    > /tmp/interop/lighthouse_charades_test.jsonl
python -c "import json, sys; val = {json.loads(l)['vid'] for l in open(sys.argv[1])}; [print(l.strip()) for l in open(sys.argv[2]) if json.loads(l)['vid'] in val]" \
    $D/val.jsonl /tmp/interop/lighthouse_charades_test.jsonl > /tmp/charades-lh/val.jsonl
ln -sfn "$PWD/$D/features" /tmp/charades-lh/features && ln -sfn "$PWD/$D/train.jsonl" /tmp/charades-lh/train.jsonl
moment-search evaluate model fvmr --data /tmp/charades-lh --split val --predictions /tmp/interop/fvmr_lh.jsonl
lighthouse /tmp/interop/fvmr_lh.jsonl /tmp/charades-lh/val.jsonl /tmp/interop/fvmr_lh_lighthouse.json
moment_detr /tmp/interop/fvmr_lh.jsonl /tmp/charades-lh/val.jsonl

# corpus: every val sentence over the 150 val videos, in TVR's format and as JSONL
rm -rf /tmp/idx && moment-search index build $D --out /tmp/idx --split val
moment-search query --file $D/val.jsonl --index /tmp/idx -k 100 --predictions /tmp/interop/fvmr_val_tvr.json --format tvr
moment-search query --file $D/val.jsonl --index /tmp/idx -k 100 --predictions /tmp/interop/fvmr_val_corpus.jsonl
moment-search evaluate score /tmp/interop/fvmr_val_tvr.json $D/val.jsonl
moment-search evaluate score /tmp/interop/fvmr_val_corpus.jsonl $D/val.jsonl
tvr_gt $D/val.jsonl > /tmp/interop/val_tvr_gt.jsonl
python /tmp/evaluators/tvr/standalone_eval/eval.py --submission_path /tmp/interop/fvmr_val_tvr.json \
    --gt_path /tmp/interop/val_tvr_gt.jsonl --save_path /tmp/interop/fvmr_val_tvr_metrics.json
moment-search query --file /tmp/charades-lh/val.jsonl --index /tmp/idx -k 100 --predictions /tmp/interop/fvmr_lh_tvr.json --format tvr
moment-search evaluate score /tmp/interop/fvmr_lh_tvr.json /tmp/charades-lh/val.jsonl
tvr_gt /tmp/charades-lh/val.jsonl > /tmp/interop/lh_tvr_gt.jsonl
python /tmp/evaluators/tvr/standalone_eval/eval.py --submission_path /tmp/interop/fvmr_lh_tvr.json \
    --gt_path /tmp/interop/lh_tvr_gt.jsonl --save_path /tmp/interop/fvmr_lh_tvr_metrics.json
