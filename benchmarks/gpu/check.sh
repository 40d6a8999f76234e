#!/usr/bin/env bash
# Run THERE, on the GPU machine (device tool: carry [".whl"], timeout_s 600), after
# benchmarks/gpu/fetch_wheels.sh here. One prepared script, about 5 minutes: the CUDA-vs-CPU
# equality test of the batched env, then bench-speed on the GPU (float32 and bfloat16, N up to
# 1,048,576), results into $OUT (benchmarks/results/speed_gpu.json when copied back).
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1 MUJOCO_GL=egl
OUT="${OUT:-/tmp/out}"; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpu.txt"
python3 -m pytest -q -p no:cacheprovider tests/test_vector.py -k "cuda or device" 2>&1 | tee "$OUT/cuda_tests.log"
python3 -m neural_sim.cli bench-speed NeuralSim/Cheetah-v0 NeuralSim/HalfCheetah-v5 --batch-sizes 1 1024 \
  --repeats 3 --no-shimmy-vector --no-envpool --bfloat16 --json "$OUT/speed_gpu.json" 2>&1 | tee "$OUT/bench.log"
