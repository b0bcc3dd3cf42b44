#!/usr/bin/env bash
# The GPU path of detal checked in one short run (under 8 minutes on one GPU), from the project tree, on a
# machine whose Python already has torch. It installs the wheels carried beside it (benchmarks/wheels/,
# made here by benchmarks/gpu_wheels.sh: ultralytics and ultralytics-thop) into a scratch folder, then
# runs benchmarks/gpu_check.py, which prints one line per figure, each with the GPU's name:
#   - the class vectors of detal's batched predict against YOLO.predict / Ultralytics' own predictor;
#   - scoring throughput at 640 px, detal against YOLO.predict, batch 1 and batched (YOLO.predict also
#     with half precision, its own option; detal with decode workers too);
#   - one real cycle (train, evaluate, score, select, export) on a small digits-det.
#
#     bash benchmarks/gpu_check.sh            # on the GPU machine
#     bash benchmarks/gpu_check.sh --cpu      # dry run here, end to end at tiny size (installs the
#                                             # carried wheels too, if benchmarks/wheels/ has them)
#
# Through the device tool (the lead, from the main checkout, after `bash benchmarks/gpu_wheels.sh`):
#     run(command="set -o pipefail; bash benchmarks/gpu_check.sh 2>&1 | tee $OUT/gpu_check.log",
#         carry=["benchmarks/wheels"], timeout_s=540)
# Environment: PYTHON (default python3), GPU_CHECK_WORKDIR (default /tmp/detal-gpu-check),
# GPU_CHECK_TIMEOUT (seconds, default 480).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-python3}
MODE=()
[ "${1:-}" = "--cpu" ] && MODE=(--cpu)
SITE=$(mktemp -d "${TMPDIR:-/tmp}/detal-gpu-site.XXXXXX")
trap 'rm -rf "$SITE"' EXIT

shopt -s nullglob
wheels=(benchmarks/wheels/*.whl)
if [ ${#wheels[@]} -gt 0 ]; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
        "${wheels[@]}" || { echo "gpu_check: could not install ${wheels[*]}" >&2; exit 1; }
    echo "gpu_check: installed ${#wheels[@]} carried wheels: $(basename -a "${wheels[@]}" | tr '\n' ' ')"
elif [ ${#MODE[@]} -eq 0 ]; then
    echo "gpu_check: no wheels in benchmarks/wheels/ (run benchmarks/gpu_wheels.sh first); using what $PY has"
fi
export PYTHONPATH="$SITE:$ROOT${PYTHONPATH:+:$PYTHONPATH}"

missing=()
for mod in torch torchvision cv2 numpy yaml tqdm sklearn matplotlib psutil PIL cloudpickle requests scipy \
           ultralytics thop; do
    "$PY" -c "import $mod" 2>/dev/null || missing+=("$mod")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "gpu_check: $PY cannot import ${missing[*]} (carry a wheel for each in benchmarks/wheels/)" >&2
    exit 1
fi
"$PY" -c "import ultralytics, sys; print('gpu_check: ultralytics', ultralytics.__version__, 'from', ultralytics.__file__)"

set +e
PYTHONUNBUFFERED=1 timeout "${GPU_CHECK_TIMEOUT:-480}" "$PY" benchmarks/gpu_check.py "${MODE[@]}" \
    --workdir "${GPU_CHECK_WORKDIR:-/tmp/detal-gpu-check}"
code=$?
set -e
[ $code -eq 124 ] && echo "gpu_check: stopped after ${GPU_CHECK_TIMEOUT:-480} s" >&2
exit $code
