#!/usr/bin/env bash
# Round 3: does self-training save labels? Five arms, 3 seeds, two datasets, two lanes.
#
#   bash benchmarks/st_experiment.sh [DATASET ...]      # default: digits-hard shapes-lt
#
# Arms (every saving is measured against plain random):
#   random, random-st (random + self-training), hybrid (+ multilabel_entropy), hybrid-st, hold;
#   -st arms self-train with `ambiguous: mask` (ambiguous boxes painted over; `drop`, the method's literal
#   rule, kept 15 of 600 images on digits-hard at t_high 0.8, mask 521: benchmarks/RESULTS.md, round 3);
#   <strategy>-stprev: the same with `teacher: previous` (the previous cycle's student teaches: one
#   training a cycle; what benchmarks/st_round3.sh runs), and random-stdrop: random-st with
#   `ambiguous: drop`; <strategy>-stlow: -stprev with `t_low: 0.1` (Efficient Teacher's lower bound;
#   benchmarks/pseudo_quality.py found most objects -stprev taught as background under a teacher box
#   in [0.05, 0.25)); -stlow80: -stlow with `real_share: 0.8` (the human images 80% of every epoch);
#   <strategy>-c720: plain, 720 steps a cycle, a compute control for -stlow80 (its student trains
#   672-762 steps: epochs are whole, so 600 steps over a list of ~3,800 images round up to 3 epochs).
# Each (dataset, arm, seed) is its own `detal simulate` run (runs/simulate/st-<dataset>-<arm>-s<seed>/),
# resumable after a kill. When one finishes, its rows are copied (strategy column = the arm) to
# benchmarks/results/round3/<dataset>/<arm>-seed<k>.csv, a committed place: runs/ does not
# survive between sessions, so a finished project is never run again once its rows are there.
# Each finished run is merged at once into its dataset's report:
# benchmarks/results/round3/<dataset>/{results.csv,summary.md,curves.png}.
# Two lanes (Ultralytics trains single-threaded on 2 cores); they share one train cache per
# dataset, so random-st's teacher reuses random's training (same labels, same weights).
set -euo pipefail
cd "$(dirname "$0")/.."
DETAL=${DETAL:-.venv/bin/detal}
PY=${PY:-.venv/bin/python}
SEEDS=${SEEDS:-"0 1 2"}
ARMS=${ARMS:-"random hybrid random-stprev hybrid-stprev hold"}
DATASETS=("$@")
[ ${#DATASETS[@]} -gt 0 ] || DATASETS=(digits-hard shapes-lt)
OUT=${OUT:-benchmarks/results/round3}
RUNS=${RUNS:-runs/simulate}

make_data() {
  case "$1" in
    digits-hard) test -f data/digits-hard-1000/data.yaml || "$DETAL" data digits --preset hard \
                   --out data/digits-hard-1000 --pool 1000 --val 400 --imgsz 128 --seed 0 ;;
    shapes-lt) test -f data/shapes-lt-1000/data.yaml || "$DETAL" data shapes \
                   --out data/shapes-lt-1000 --pool 1000 --val 400 --imgsz 128 --seed 0 ;;
    *) echo "st_experiment: unknown dataset $1" >&2; exit 1 ;;
  esac
}

run_one() {  # dataset arm seed
  local d=$1 arm=$2 seed=$3 done_csv="$OUT/$1/$2-seed$3.csv"
  [ -f "$done_csv" ] && return 0
  local strategy=${arm%%-*} extra=() sim
  case "$arm" in *-st*) sim=$strategy+st ;; *) sim=$strategy ;; esac  # detal simulate's arm
  case "$arm" in
    *-stprev) extra=(--set self_training.ambiguous=mask
                     --set self_training.teacher=previous) ;;
    *-stdrop) extra=(--set self_training.ambiguous=drop) ;;
    *-stlow) extra=(--set self_training.ambiguous=mask
                    --set self_training.teacher=previous --set self_training.t_low=0.1) ;;
    *-stlow80) extra=(--set self_training.ambiguous=mask
                      --set self_training.teacher=previous --set self_training.t_low=0.1
                      --set self_training.real_share=0.8) ;;
    *-c720) extra=(--set min_steps_per_cycle=720) ;;
    *-st) extra=(--set self_training.ambiguous=mask
                 --set self_training.teacher=supervised) ;;  # as seed 0 ran (the default became previous)
  esac
  PYTHONUNBUFFERED=1 "$DETAL" simulate "configs/st-$d.yaml" --strategies "$sim" --seeds "$seed" \
    --name "st-$d-$arm-s$seed" --runs "$RUNS" --train-cache "$RUNS/st-$d-cache" "${extra[@]}" \
    | grep --line-buffered -aE '^(simulate:|\[)' || true
  mkdir -p "$OUT/$d"
  "$PY" - "$RUNS/st-$d-$arm-s$seed/results.csv" "$sim" "$arm" "$seed" "$done_csv" <<'PY'
import csv, sys
src, sim, arm, seed, out = sys.argv[1:]
with open(src, newline="") as f:
    rows = [r for r in csv.DictReader(f) if r["strategy"] == sim and r["seed"] == seed]
if not rows:
    sys.exit(f"st_experiment: no rows for {sim} seed {seed} in {src}")
for r in rows:
    r["strategy"] = arm
tmp = out + ".tmp"
with open(tmp, "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
import os
os.replace(tmp, out)
print(f"st_experiment: {arm} seed {seed}: {len(rows)} cycles -> {out}")
PY
}

merge() {  # dataset
  "$PY" benchmarks/st_merge.py "$OUT/$1"
}

# One job list over every dataset, seed-major (a finished seed covers every dataset), two lanes over it;
# each finished run is merged into its dataset's report at once (under a lock: the lanes share it).
jobs_list=()
for d in "${DATASETS[@]}"; do make_data "$d"; done
for seed in $SEEDS; do for d in "${DATASETS[@]}"; do for arm in $ARMS; do
  [ -f "$OUT/$d/$arm-seed$seed.csv" ] || jobs_list+=("$d $arm $seed")
done; done; done
echo "st_experiment: ${#jobs_list[@]} runs to go: ${jobs_list[*]}"
lane() {  # every other job, from offset $1
  local i
  for ((i = $1; i < ${#jobs_list[@]}; i += 2)); do
    local job
    read -ra job <<< "${jobs_list[$i]}"
    run_one "${job[@]}"
    ( flock 9; merge "${job[0]}" ) 9> "$OUT/${job[0]}/.merge.lock"
  done
}
lane 0 > >(sed -u "s/^/[lane 1] /") 2>&1 &
lane 1 > >(sed -u "s/^/[lane 2] /") 2>&1 &
wait
