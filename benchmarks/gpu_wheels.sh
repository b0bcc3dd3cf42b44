#!/usr/bin/env bash
# Download, here, the wheels that benchmarks/gpu_check.sh installs on a GPU machine that cannot reach a
# package registry: ultralytics (the version constraints.txt pins) and its pure-Python dependency
# ultralytics-thop, into benchmarks/wheels/ (git-ignored). Everything else detal needs (torch,
# torchvision, numpy, opencv, pyyaml, tqdm, scikit-learn, matplotlib, psutil, pillow, requests, scipy,
# cloudpickle) is already in the device's Python (/work/.library/device/KINDS.md, nvidia-h200). polars,
# which Ultralytics uses only to copy results.csv into its checkpoints (a 54 MB binary wheel, too big to
# carry beside the tree), is not carried: detal's trainer reads that file with the csv module where
# polars is missing (detal/ultra/ddp.py, DetalTrainer.read_results_csv).
#
#     bash benchmarks/gpu_wheels.sh [PYTHON]        # PYTHON: the pip to use (default python3)
#
# How the lead carries them: from the main checkout (a device call sends the session's own checkout),
# run this once, then call the device tool's `run` with carry ["benchmarks/wheels"] (about 1.5 MB), e.g.
#     command: set -o pipefail; bash benchmarks/gpu_check.sh 2>&1 | tee $OUT/gpu_check.log
#     carry:   ["benchmarks/wheels"]     timeout_s: 540
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-python3}
ULTRALYTICS=$(sed -n 's/^ultralytics==\(.*\)$/\1/p' constraints.txt)
THOP=2.2.3
[ -n "$ULTRALYTICS" ] || { echo "gpu_wheels: constraints.txt pins no ultralytics version" >&2; exit 1; }
mkdir -p benchmarks/wheels
rm -f benchmarks/wheels/*.whl  # one version of each: two would stop the install there
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    -d benchmarks/wheels "ultralytics==$ULTRALYTICS" "ultralytics-thop==$THOP"
ls -l benchmarks/wheels
