#!/usr/bin/env bash
# The CUDA path measured in one run, on a machine with an NVIDIA GPU:
#   1. CPU/CUDA agreement: the unit test (tiny fake model) and the default model on the real
#      s2-virginia stack (CPU fp32 as the reference, CUDA fp32 and bf16 against it);
#   2. predict_bench on the 10000 x 10000 nine-band scene with the default model and with a
#      U-Net-ResNet34 (random weights), bf16: end to end, the model alone, stages, peak GPU memory.
# Needs python3 with torch (CUDA) and geoseg's dependencies, and the s2-virginia bands under
# $GEOSEG_SHARED_DATA (default ../shared/data). Results go to $OUT (default /tmp/geoseg-cuda).
#
# Usage: OUT=/tmp/cuda benchmarks/cuda_check.sh
set -euo pipefail
OUT=${OUT:-/tmp/geoseg-cuda}
PY=${PYTHON:-python3}
WORK=${WORK:-/tmp/geoseg-cuda-scenes}
mkdir -p "$OUT" "$WORK"
export PYTHONUNBUFFERED=1
cd "$(dirname "$0")/.."
step() { echo "== $(date +%T) $*"; }

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
torch.cuda.get_device_name(), 'cores', torch.get_num_threads())" | tee -a "$OUT/gpu.txt"

step "CPU/CUDA agreement, unit test"
"$PY" -m pytest -q -p no:cacheprovider "tests/test_scene_io.py::test_cpu_and_cuda_agree" -rs

step "scenes"
"$PY" benchmarks/scenes.py stack --nine --out "$WORK/virginia9.tif"
"$PY" benchmarks/scenes.py large --nine --height 10000 --width 10000 --out "$WORK/large9.tif"
"$PY" benchmarks/random_model.py --encoder resnet34 --out "$WORK/unet-r34.pt"

step "predict_bench, default model, bf16"
"$PY" benchmarks/predict_bench.py "$WORK/large9.tif" --device cuda --precision bf16 \
    --ceiling-tiles 128 --json "$OUT/bench_default.json"

step "predict_bench, U-Net-ResNet34, bf16"
"$PY" benchmarks/predict_bench.py "$WORK/large9.tif" --model "$WORK/unet-r34.pt" --device cuda \
    --precision bf16 --ceiling-tiles 128 --json "$OUT/bench_unet_r34.json"

step "CPU/CUDA agreement, default model on the s2-virginia stack"
"$PY" benchmarks/precision_agreement.py "$WORK/virginia9.tif" \
    --runs cpu:fp32,cuda:fp32,cuda:bf16 --json "$OUT/agreement_default.json"

step "done"
