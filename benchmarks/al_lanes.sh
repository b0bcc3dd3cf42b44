#!/usr/bin/env bash
# benchmarks/al_experiment.sh in two parallel lanes, one per core; same runs, same results.
#
#   bash benchmarks/al_lanes.sh
#
# Ultralytics trains on the CPU with torch.set_num_threads(cpu_count - 1) threads
# (ultralytics.utils.NUM_THREADS), which is one thread on a 2-core machine: a sequential
# experiment leaves the second core idle. Each training is deterministic and single-threaded
# either way, so running two simulate processes side by side changes no figure; the train
# cache is shared safely (entries are renamed into place). `detal simulate` locks its run
# folder, so the lanes never run the same run name at the same time:
#   lane 1: seed 0's sigmoid-aware measures, the pick (seed 0 only), then hybrid-best, seeds 0-2;
#   lane 2: random, hold and mixed-entropy for seeds 0-2, then mixed-best for seeds 0-2
#           (it waits for the pick).
# Then al_experiment.sh runs once more: every run resumes as finished, and it writes al-final.
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/al_common.sh
rm -f "$RUNS/al-best-measure.txt"

lane1() {
  seed0_measures
  best=$(cat "$RUNS/al-best-measure.txt")
  for s in 0,1 0,1,2; do
    sim --strategies hybrid --seeds "$s" --name "al-hybrid-$best" --set "measure=${MEASURE[$best]}"
  done
}
lane2() {
  for s in 0,1 0,1,2; do sim --strategies random,hold,mixed --seeds "$s" --name al; done
  while [ ! -f "$RUNS/al-best-measure.txt" ]; do sleep 30; done
  best=$(cat "$RUNS/al-best-measure.txt")
  sim --strategies mixed --seeds 0,1,2 --name "al-mixed-$best" --set "measure=${MEASURE[$best]}"
}
lane1 > >(sed -u 's/^/[lane 1] /') 2>&1 &
lane2 > >(sed -u 's/^/[lane 2] /') 2>&1 &
wait
bash benchmarks/al_experiment.sh
