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
DETAL=${DETAL:-.venv/bin/detal}
PY=${PY:-.venv/bin/python}
CFG=configs/digits-al.yaml
RUNS=runs/simulate
CACHE=$RUNS/al-train-cache
sim() { PYTHONUNBUFFERED=1 "$DETAL" simulate "$CFG" --train-cache "$CACHE" "$@" | grep --line-buffered -aE '^(simulate:|\[)' || true; }
declare -A MEASURE=(
  [be]=binary_entropy
  [mle]=multilabel_entropy
  [loc]=localization
  [be+loc]='{binary_entropy: 1.0, localization: 1.0}'
)
test -f data/digits-150/data.yaml || "$DETAL" data digits --out data/digits-150 --pool 150 --val 400 --imgsz 128 --seed 0
test -f runs/pretrain/glyphs/glyphs.pt || "$PY" benchmarks/pretrain_glyphs.py --out runs/pretrain/glyphs
rm -f "$RUNS/al-best-measure.txt"

lane1() {
  for m in be mle loc be+loc; do
    sim --strategies mixed --seeds 0 --name "al-mixed-$m" --set "measure=${MEASURE[$m]}"
  done
  "$PY" benchmarks/pick_measure.py "$RUNS" al-mixed-be=be al-mixed-mle=mle al-mixed-loc=loc \
    al-mixed-be+loc=be+loc --seed 0 --out "$RUNS/al-best-measure.txt"
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
