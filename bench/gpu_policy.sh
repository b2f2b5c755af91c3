#!/usr/bin/env bash
# Policy latency on a GPU machine that has PyTorch but not this venv (the device tool's H100/H200):
# install the pure-Python wheels carried in .whl (diffusers, transforms3d, importlib_metadata), put
# armpilot's pure packages on the path without ROS, and run bench/policy.py on cuda and on the CPU.
set -euo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
mkdir -p /tmp/pkg && cp -r armpilot /tmp/pkg/ && rm -rf /tmp/pkg/armpilot/policies && cp -r policies /tmp/pkg/armpilot/policies
export PYTHONPATH=/tmp/site:/tmp/pkg PYTHONUNBUFFERED=1
OUT="${OUT:-out}"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
cd bench
python3 policy.py --checkpoint ../checkpoints/diffusion_reach --device cuda --repeats 100 | tee "$OUT/gpu_policy.txt"
python3 policy.py --checkpoint ../checkpoints/diffusion_reach --device cuda --repeats 100 --json > "$OUT/gpu_policy.json"
python3 policy.py --checkpoint ../checkpoints/diffusion_reach --device cpu --threads 1 --repeats 30 | tee "$OUT/gpu_host_cpu1.txt"
