#!/usr/bin/env bash
# The label-savings experiment of benchmarks/RESULTS.md ("Labels, not compute"), resumable:
# run it again after an interruption and every finished cycle is kept.
#
#   bash benchmarks/al_experiment.sh [SEEDS]     # default: 0 1 2
#
# Order (the issue's protocol): seed 0 first, with random, hold, mixed (renormalised entropy,
# the design card) and mixed with each sigmoid-aware measure; the best measure is picked on
# seed 0 only (benchmarks/pick_measure.py, rule fixed in advance: highest AUC), then hybrid
# with it, then seeds 1 and 2 confirm. Trainings with identical inputs are shared through one
# train cache (every arm's first cycle at a seed; every hold cycle).
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/al_common.sh
SEEDS=${*:-0 1 2}
seeds_upto() { local out=""; for s in $SEEDS; do out="${out:+$out,}$s"; [ "$s" = "$1" ] && break; done; echo "$out"; }

for seed in $SEEDS; do
  upto=$(seeds_upto "$seed")
  sim --strategies random,hold,mixed --seeds "$upto" --name al
  [ "$seed" != 0 ] || seed0_measures
  best=$(cat "$RUNS/al-best-measure.txt")
  [ "$seed" = 0 ] || sim --strategies mixed --seeds "$upto" --name "al-mixed-$best" --set "measure=${MEASURE[$best]}"
  sim --strategies hybrid --seeds "$upto" --name "al-hybrid-$best" --set "measure=${MEASURE[$best]}"
done

best=$(cat "$RUNS/al-best-measure.txt")
"$PY" benchmarks/compare.py "$RUNS/al-final" \
  random=$RUNS/al/results.csv:random hold=$RUNS/al/results.csv:hold \
  mixed-entropy=$RUNS/al/results.csv:mixed \
  "mixed-$best=$RUNS/al-mixed-$best/results.csv:mixed" \
  "hybrid-$best=$RUNS/al-hybrid-$best/results.csv:hybrid"
