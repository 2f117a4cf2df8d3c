#!/usr/bin/env bash
# Restore the soft-target ("teacher") files of the born-again chain from git history into
# $TINYEDGE_CACHE/teachers/ (a new machine has none): every four-view file that shipped since
# 0.4.0, named after its training run. r50's, r54's and r57's four-view files never shipped and
# are not in git; a run that names them needs the cache of the session that made them.
#
#   scripts/teachers.sh            # writes r45w_views.tflite ... r59_views.tflite, prints sha256
set -euo pipefail
cd "$(dirname "$0")/.."
out=${TINYEDGE_CACHE:-$HOME/.cache/tinyedge}/teachers
mkdir -p "$out"
# run:commit that shipped its four-view file (git log -- tinyedge/models/person_int8_views.tflite)
for entry in r45w:5a7f7ad r52:7a79045 r53:317f527 r55:e2bd087 r56:1128545 r58:4341c1b r59:b71a172; do
    run=${entry%%:*} commit=${entry#*:}
    git show "$commit:tinyedge/models/person_int8_views.tflite" > "$out/${run}_views.tflite"
    version=$(git show "$commit:tinyedge/models/person_int8_views.json" |
        python -c 'import json, sys; print(json.load(sys.stdin)["version"])')
    printf '%-5s %-12s %s\n' "$run" "$version" "$(sha256sum "$out/${run}_views.tflite" | cut -c1-16)"
done
