#!/usr/bin/env bash
# Rebuild the diffusion-policy checkpoints shipped in checkpoints/ (reach, push, and push_prefix: the
# push policy trained with committed action prefixes for transition:=prefix), from scratch:
# record demonstrations with the scripted teleoperator through the full graph (seeds 1000.., never
# the evaluation seeds 0..49), convert them to a LeRobotDataset v3, train on this CPU.
#   bash scripts/train_shipped.sh              # both tasks, ~25 min on 2 cores
#   bash scripts/train_shipped.sh reach        # one task
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
export MUJOCO_GL="${MUJOCO_GL:-egl}"
ARMPILOT="${ARMPILOT_VENV:-.venv}/bin/armpilot"
WORK="${ARMPILOT_WORK:-out/shipped}"
for task in "${@:-reach push}"; do
  for t in $task; do
    "$ARMPILOT" record --task "$t" --episodes 100 --seed 1000 --width 320 --height 240 --output "$WORK/bags_$t"
    "$ARMPILOT" convert "$WORK/bags_$t" --output "$WORK/dataset_$t" --overwrite
    "$ARMPILOT" train "$WORK/dataset_$t" --output "$WORK/policy_$t" --steps 3000 --batch-size 128 --seed 0 --threads 2
    mkdir -p "checkpoints/diffusion_$t"
    cp "$WORK/policy_$t"/{policy.safetensors,policy.json,loss.png,report.json} "checkpoints/diffusion_$t/"
    if [ "$t" = push ]; then  # training-time real-time chunking: up to 8 frames (0.57 s) of committed prefix
      "$ARMPILOT" train "$WORK/dataset_$t" --output "$WORK/policy_${t}_prefix" --steps 3000 --batch-size 128 --seed 0 \
        --threads 2 --prefix-frames 8
      mkdir -p "checkpoints/diffusion_${t}_prefix"
      cp "$WORK/policy_${t}_prefix"/{policy.safetensors,policy.json,loss.png,report.json} "checkpoints/diffusion_${t}_prefix/"
    fi
  done
done
