# Shared by benchmarks/al_experiment.sh and benchmarks/al_lanes.sh (sourced from the repo root):
# the tools, the config, the shared train cache, `sim`, the measures by short name, and the
# dataset the experiment needs (made when missing; the weights ship in detal/weights/).
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
# seed 0: mixed with each sigmoid-aware measure, then the pick by the rule fixed in advance
# (benchmarks/pick_measure.py: highest AUC) into $RUNS/al-best-measure.txt
seed0_measures() {
  for m in be mle loc be+loc; do
    sim --strategies mixed --seeds 0 --name "al-mixed-$m" --set "measure=${MEASURE[$m]}"
  done
  "$PY" benchmarks/pick_measure.py "$RUNS" al-mixed-be=be al-mixed-mle=mle al-mixed-loc=loc \
    al-mixed-be+loc=be+loc --seed 0 --out "$RUNS/al-best-measure.txt"
}
test -f data/digits-150/data.yaml || "$DETAL" data digits --out data/digits-150 --pool 150 --val 400 --imgsz 128 --seed 0
