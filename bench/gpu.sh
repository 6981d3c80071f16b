#!/usr/bin/env bash
# Every GPU benchmark and the GPU tests in one call, for the lent GPU machine:
#   (here)   bench/fetch_wheels.sh
#   (device) run(command="bash bench/gpu.sh", carry=[".whl"])
# Writes JSON and the tables under $OUT (default bench/out).
# Sections (the device tool allows 10 min per call, so long runs go one section per call):
#   bash bench/gpu.sh                 tests + simulate + throughput (a few minutes)
#   bash bench/gpu.sh accuracy-2d     train + score examples/2d_gaussian.yaml   (ACC_MINUTES, default 8)
#   bash bench/gpu.sh accuracy-3d     train + score examples/3d_astigmatic.yaml (+ MLE comparison)
#   bash bench/gpu.sh all             everything (needs more than one 10-minute call)
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
SECTION=${1:-quick}
ACC_MINUTES=${ACC_MINUTES:-8}
run_quick() {
  echo "== GPU tests"
  python3 -m pytest -q -m gpu -p no:cacheprovider tests 2>&1 | tail -n 15 | tee "$OUT/gpu_tests.txt"
  echo "== simulator throughput (CUDA)"
  python3 bench/simulate.py --device cuda --frames 100000 --repeats 5 --out "$OUT/simulate_cuda.json" 2>&1 | tee "$OUT/simulate_cuda.md"
  echo "== network throughput: training (simulation included) and fitting 256x256 frames"
  python3 bench/throughput.py --device cuda --batch-size 512 --train-steps 100 --fit-frames 5000 \
    --out "$OUT/throughput_cuda.json" 2>&1 | tee "$OUT/throughput_cuda.md"
  python3 bench/throughput.py --device cuda --batch-size 512 --train-steps 100 --fit-frames 5000 --compile \
    --out "$OUT/throughput_cuda_compile.json" 2>&1 | tee "$OUT/throughput_cuda_compile.md"
  echo "== MLE fitter throughput (CUDA; Picasso is compared on the CPU machine)"
  python3 bench/mle_vs_picasso.py --device cuda --frames 20000 --density 0.3 --picasso-python /nonexistent \
    --out "$OUT/mle_vs_picasso_cuda.json" 2>&1 | tee "$OUT/mle_vs_picasso_cuda.md"
}
run_acc() {  # $1 = config stem, $2... extra args
  local name=$1; shift
  echo "== accuracy $name ($ACC_MINUTES min of training)"
  python3 bench/accuracy.py --device cuda --configs "examples/$name.yaml" --minutes "$ACC_MINUTES" "$@" \
    --out "$OUT/accuracy_$name" 2>&1 | tee "$OUT/accuracy_$name.md"
  cp "$OUT/accuracy_$name/${name}_run/curves.png" "$OUT/curves_$name.png" 2>/dev/null || true
  cp "$OUT/accuracy_$name/${name}_run/log.csv" "$OUT/log_$name.csv" 2>/dev/null || true
  rm -f "$OUT/accuracy_$name/${name}_run/checkpoint.pt"
}
case "$SECTION" in
  quick) run_quick ;;
  accuracy-2d) run_acc 2d_gaussian ;;
  accuracy-3d) run_acc 3d_astigmatic --compare-mle ;;
  all) run_quick; run_acc 2d_gaussian; run_acc 3d_astigmatic --compare-mle ;;
  *) echo "unknown section $SECTION"; exit 2 ;;
esac
