#!/bin/bash
# The committed pair of default runs (docs/ladder.md, "Do two runs agree?"): from a fresh clone of this
# repository at COMMIT, the default ladder as a newcomer runs it, then the same command again with a busy
# process pinned to core 1 for 3 minutes from 30 s after the second run's speed phase starts.
#   usage: sudo tools/agree_pair.sh COMMIT OUT_DIR   (root for nice -20: on 2 cores any other busy process
#          doubles a step; the runner notes what else ran either way)
# Leaves OUT_DIR/{quiet,hog}.log (time-stamped stderr) and the runs in the clone, OUT_DIR/clone/results/
# $VAECF_MACHINE/{runA,runB}: move them under results/ and run python -m ablations agree on them.
set -u -o pipefail
commit=$1 out=$(realpath -m "$2")
repo=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
stamp() { while IFS= read -r line; do printf '%s %s\n' "$(date +%T)" "$line"; done; }
mkdir -p "$out" && git clone -q "$repo" "$out/clone" && cd "$out/clone" && git checkout -q "$commit" || exit 1
runs=$out/clone/results/${VAECF_MACHINE:?set VAECF_MACHINE, the results folder name}
nice -n -20 bash -c "python3 -m pip install -q nox && python3 -m nox -s ablate -- --out $runs/runA" 2>&1 \
  | stamp > "$out/quiet.log" || exit 1
(until grep -q "speed, round 1" "$out/hog.log" 2>/dev/null; do sleep 2; done; sleep 30
 echo "$(date +%T) hog on core 1 for 180 s" >> "$out/hog.times"
 taskset -c 1 timeout 180 python3 -c 'while True: pass') &
nice -n -20 python3 -m nox -s ablate -- --out "$runs/runB" 2>&1 | stamp > "$out/hog.log"
wait
