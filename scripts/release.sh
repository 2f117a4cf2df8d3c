#!/usr/bin/env bash
# Release files of a trained candidate, measured the way the model card's release rule asks.
#
#   scripts/release.sh RUN VERSION [DATASET]
#
# RUN is a training folder name under $TINYEDGE_CACHE/train (its model.keras), VERSION the
# version the files would ship as (e.g. 0.4.7), DATASET the build quantize.py samples its
# representative crops from (default dataset_v21). Writes, under $TINYEDGE_CACHE/models/RUN_release/:
#   person_int8_views.tflite + .json   four views (flip-crop), `on` from calibration v2
#   person_int8.tflite + .json         the two-view default derived from it (views_variant.py)
# and next to that folder RUN-person_int8{,_views}-calibration_v2.json (`tinyedge evaluate --json`).
# SIZE=N exports the network at an N x N input instead of its trained side (quantize.py --size),
# into RUN-sN_release/ and RUN-sN-... instead.
# HELDOUT=1 also scores the held-out set (RUN-...-heldout.json); CALIB=calibration_v1 picks another
# calibration set. Nothing is written into the package: shipping is copying the four files into
# tinyedge/models/ by hand (docs/model-card.md, Commands).
set -euo pipefail
if [[ $# -lt 2 ]]; then
    sed -n '2,16p' "$0" >&2
    exit 2
fi
run=$1 version=$2 data=${3:-dataset_v21}
cache=${TINYEDGE_CACHE:-$HOME/.cache/tinyedge}
calib=${CALIB:-calibration_v2}
model=$cache/train/$run/model.keras
tag=$run${SIZE:+-s$SIZE}
out=$cache/models/${tag}_release
[[ -f $model ]] || { echo "release: $model: no such model" >&2; exit 1; }
[[ -d $cache/$calib ]] || { echo "release: $cache/$calib: build it with scripts/build_calibration.py" >&2; exit 1; }
cd "$(dirname "$0")/.."
mkdir -p "$out"
python scripts/quantize.py --model "$model" --data "$cache/$data" --calib "$cache/$calib" \
    --views flip-crop --version "$version-views" --ship "$out/person_int8_views.tflite" ${SIZE:+--size "$SIZE"} \
    --cache "$cache/models/${tag}_v4"
python scripts/views_variant.py "$out/person_int8_views.tflite" "$out/person_int8.tflite" \
    --views flip --calib "$cache/$calib" --version "$version"
sets=("$calib")
if [[ ${HELDOUT:-0} == 1 ]]; then
    sets+=(heldout)
fi
for name in person_int8 person_int8_views; do
    for set in "${sets[@]}"; do
        dir=$cache/$set
        [[ $set == heldout ]] && dir=$cache/dataset_v17/test_images_heldout
        python -m tinyedge evaluate "$dir" --model "$out/$name.tflite" --json \
            > "$cache/models/$tag-$name-$set.json"
        python - "$cache/models/$tag-$name-$set.json" <<'EOF'
import json
import sys

d = json.load(open(sys.argv[1]))
print(
    f"{sys.argv[1].rsplit('/', 1)[1]:<48} on {d['threshold']:.4f}  "
    f"BA {100 * d['balanced_accuracy']:.2f} %  AUC {d['auc']:.4f}"
)
EOF
    done
done
