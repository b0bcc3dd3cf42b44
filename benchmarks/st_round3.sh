#!/usr/bin/env bash
# The round-3 schedule: random, hybrid, random + self-training, hybrid + self-training and hold on
# digits-hard and shapes-lt, seeds 0 1 2, seed-major (a finished seed covers both datasets), two lanes.
# Self-training arms run with `teacher: previous` (-stprev), the teacher that fits the cost cap of two
# plain trainings a cycle (1.17x measured against 2.67x for `supervised`, RESULTS.md round 3), so the
# table measures the self-training detal can ship. digits-hard seed 0 also holds the `supervised` arms
# (random-st, hybrid-st) that ran first; they are kept, not repeated.
# Resumable: finished (dataset, arm, seed) rows under benchmarks/results/round3/ are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
ARMS="random hybrid random-stprev hybrid-stprev hold" SEEDS=${SEEDS:-"0 1 2"} \
  bash benchmarks/st_experiment.sh digits-hard shapes-lt
