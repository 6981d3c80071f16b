#!/usr/bin/env bash
# Every GPU benchmark and the GPU tests in one call, for the lent GPU machine:
#   (here)   bench/fetch_wheels.sh
#   (device) run(command="bash bench/gpu.sh", carry=[".whl"])
# Writes JSON and the tables under $OUT (default bench/out).
# Sections (the device tool allows 10 min per call, so long runs go one section per call):
#   bash bench/gpu.sh                 tests + simulate + throughput (a few minutes)
#   bash bench/gpu.sh accuracy-2d     train + score examples/2d_gaussian.yaml   (ACC_MINUTES, default 8)
#   bash bench/gpu.sh accuracy-3d     train + score examples/3d_astigmatic.yaml (+ MLE comparison)
#   bash bench/gpu.sh plex-throughput DECODE-Plex-sized network: training samples/s, fitting 2x256x256 and 4x256x256
#   bash bench/gpu.sh plex-dual       train + score dual colour (both splits) against the MLE and per-channel fits
#   bash bench/gpu.sh plex-biplane    train + score biplane          (PLEX_MINUTES, default 6)
#   bash bench/gpu.sh plex-quad       train + score quad-plane (emitter and voxel JI)
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
PLEX_MINUTES=${PLEX_MINUTES:-6}
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
run_plex_throughput() {
  echo "== DECODE-Plex-sized network (64 features, 3 stages, 80x80 training ROIs)"
  python3 bench/throughput.py --device cuda --config examples/dual_color_plex.yaml --features 64 --depth 3 --train-size 80 \
    --batch-size 64 --train-steps 50 --fit-frames 2000 --out "$OUT/throughput_plex_dual.json" 2>&1 | tee "$OUT/throughput_plex_dual.md"
  python3 bench/throughput.py --device cuda --config examples/quad_plane.yaml --features 64 --depth 3 --train-size 80 \
    --batch-size 64 --train-steps 50 --fit-frames 2000 --out "$OUT/throughput_plex_quad.json" 2>&1 | tee "$OUT/throughput_plex_quad.md"
}
run_plex() {  # $1 = config stem, $2... extra args
  local name=$1; shift
  echo "== multi-channel accuracy $name ($PLEX_MINUTES min of training)"
  python3 bench/multichannel.py --device cuda --configs "examples/$name.yaml" --minutes "$PLEX_MINUTES" --features 64 --depth 3 \
    --compare-mle --compare-naive "$@" --out "$OUT/plex_$name" 2>&1 | tee "$OUT/plex_$name.md"
  cp "$OUT/plex_$name/${name}_run/curves.png" "$OUT/curves_plex_$name.png" 2>/dev/null || true
  rm -f "$OUT/plex_$name/${name}_run/checkpoint.pt"
}
case "$SECTION" in
  quick) run_quick ;;
  accuracy-2d) run_acc 2d_gaussian ;;
  accuracy-3d) run_acc 3d_astigmatic --compare-mle ;;
  plex-throughput) run_plex_throughput ;;
  plex-dual)
    run_plex dual_color_plex
    python3 bench/multichannel.py --device cuda --configs examples/dual_color_plex_2060.yaml --features 64 --depth 3 \
      --model "$OUT/plex_dual_color_plex/dual_color_plex_run" --compare-mle --compare-naive --out "$OUT/plex_dual_2060" \
      2>&1 | tee "$OUT/plex_dual_2060.md" ;;
  plex-biplane) run_plex biplane_plex ;;
  plex-quad) run_plex quad_plane --densities 0.03 0.14 0.331 0.65 3 ;;
  all) run_quick; run_acc 2d_gaussian; run_acc 3d_astigmatic --compare-mle; run_plex_throughput
       run_plex dual_color_plex; run_plex biplane_plex; run_plex quad_plane --densities 0.03 0.14 0.331 0.65 3 ;;
  *) echo "unknown section $SECTION"; exit 2 ;;
esac
