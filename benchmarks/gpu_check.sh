#!/usr/bin/env bash
# The CUDA check (benchmarks/gpu_check.py) as a GPU session runs it, from the repository root, with no internet:
#
#   python3 -m pip install -q --no-deps --no-build-isolation -e . ; bash benchmarks/gpu_check.sh
#
# (offline, `pip install -e ".[dev]"` fails: the image lacks lightgbm, ray, mkdocs; where even the --no-deps install
# fails, gpu_check.py runs from the checkout uninstalled and its environment check says so.)
# Results go to $OUT (else runs/gpu-check) as they come: results.jsonl, summary.md, gpu_check.log, throughput.*.
# Options after the script's name go to gpu_check.py and win over the defaults here (--device cpu, --skip throughput,
# --reference DIR, --budget S). The original's fixtures are read from $LATENTKIT_REFERENCE or --reference where the
# checkout's ../shared does not travel with it (a device machine gets the checkout alone).
# Why a wrapper: the device defaults to cuda, the whole run is cut off at 8 minutes whatever a check does, and its log
# is kept beside the results.
set -u
cd "$(dirname "$0")/.."
out="${OUT:-runs/gpu-check}"
mkdir -p "$out"
python="${PYTHON:-python3}"
set -o pipefail
PYTHONUNBUFFERED=1 timeout -k 10 480 "$python" benchmarks/gpu_check.py --device cuda --out "$out" "$@" 2>&1 \
    | tee "$out/gpu_check.log"
status=$?
echo "gpu_check exit status $status; summary:"
cat "$out/summary.md" 2>/dev/null
exit $status
