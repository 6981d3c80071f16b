#!/usr/bin/env bash
# Every GPU benchmark and the GPU tests in one call, for the lent GPU machine:
#   (here)   bench/fetch_wheels.sh
#   (device) run(command="bash bench/gpu.sh", carry=[".whl"])
# Writes JSON and the tables under $OUT (default bench/out).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD/src:${PYTHONPATH:-}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu_info.txt"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" | tee -a "$OUT/gpu_info.txt"
echo "== GPU tests"
python3 -m pytest -q -m gpu -p no:cacheprovider tests 2>&1 | tail -n 15 | tee "$OUT/gpu_tests.txt"
echo "== simulator throughput (CUDA)"
python3 bench/simulate.py --device cuda --frames 100000 --repeats 5 --out "$OUT/simulate_cuda.json" 2>&1 | tee "$OUT/simulate_cuda.md"
echo "== MLE fitter throughput (CUDA; Picasso is compared on the CPU machine)"
python3 bench/mle_vs_picasso.py --device cuda --frames 20000 --density 0.3 --picasso-python /nonexistent --out "$OUT/mle_vs_picasso_cuda.json" 2>&1 | tee "$OUT/mle_vs_picasso_cuda.md"
