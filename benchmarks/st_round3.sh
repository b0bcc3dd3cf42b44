#!/usr/bin/env bash
# The round-3 schedule, seed-major so that every finished seed covers both datasets:
# seed 0 (digits-hard with the teacher-choice arm, then shapes-lt), then seeds 1 and 2.
# Resumable: finished (dataset, arm, seed) rows under benchmarks/results/round3/ are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
for seed in ${SEEDS:-0 1 2}; do
  ARMS="random hybrid random-st hybrid-st ${TEACHER_ARM-hybrid-stprev} hold" SEEDS=$seed \
    bash benchmarks/st_experiment.sh digits-hard
  TEACHER_ARM=""
  ARMS="random hybrid random-st hybrid-st hold" SEEDS=$seed bash benchmarks/st_experiment.sh shapes-lt
done
