#!/usr/bin/env bash
# A diffusion policy for the Franka Panda (robot profile 'panda'), from scratch: 100 recorded reach
# demonstrations through the full graph (seeds 1000..), converted, trained on this CPU, then evaluated
# on 50 seeded episodes (seeds 0..49) through the same graph. ~25 min on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
export MUJOCO_GL="${MUJOCO_GL:-egl}"
ARMPILOT="${ARMPILOT_VENV:-.venv}/bin/armpilot"
WORK="${ARMPILOT_WORK:-out/panda}"
"$ARMPILOT" record --robot panda --task reach --episodes 100 --seed 1000 --width 320 --height 240 --output "$WORK/bags"
"$ARMPILOT" convert "$WORK/bags" --output "$WORK/dataset" --overwrite
"$ARMPILOT" train "$WORK/dataset" --output "$WORK/policy" --steps 3000 --batch-size 128 --seed 0 --threads 2 \
    --relative-actions
"$ARMPILOT" evaluate --robot panda --task reach --checkpoint "$WORK/policy" --episodes 50 --candidates 1 \
    --width 320 --height 240 --no-video --report "$WORK/evaluation.json"
