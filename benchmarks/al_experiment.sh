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
DETAL=${DETAL:-.venv/bin/detal}
PY=${PY:-.venv/bin/python}
CFG=configs/digits-al.yaml
RUNS=runs/simulate
CACHE=$RUNS/al-train-cache
SEEDS=${*:-0 1 2}
sim() { PYTHONUNBUFFERED=1 "$DETAL" simulate "$CFG" --train-cache "$CACHE" "$@" | grep --line-buffered -aE '^(simulate:|\[)' || true; }

test -f data/digits-150/data.yaml || "$DETAL" data digits --out data/digits-150 --pool 150 --val 400 --imgsz 128 --seed 0
test -f runs/pretrain/glyphs/glyphs.pt || "$PY" benchmarks/pretrain_glyphs.py --out runs/pretrain/glyphs

declare -A MEASURE=(
  [be]=binary_entropy
  [mle]=multilabel_entropy
  [loc]=localization
  [be+loc]='{binary_entropy: 1.0, localization: 1.0}'
)
seeds_upto() { local out=""; for s in $SEEDS; do out="${out:+$out,}$s"; [ "$s" = "$1" ] && break; done; echo "$out"; }

for seed in $SEEDS; do
  upto=$(seeds_upto "$seed")
  sim --strategies random,hold,mixed --seeds "$upto" --name al
  if [ "$seed" = 0 ]; then
    for m in be mle loc be+loc; do
      sim --strategies mixed --seeds 0 --name "al-mixed-$m" --set "measure=${MEASURE[$m]}"
    done
    "$PY" benchmarks/pick_measure.py "$RUNS" al-mixed-be=be al-mixed-mle=mle al-mixed-loc=loc \
      al-mixed-be+loc=be+loc --seed 0 --out "$RUNS/al-best-measure.txt"
  fi
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
