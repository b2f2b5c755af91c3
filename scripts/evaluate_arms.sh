#!/usr/bin/env bash
# The scripted experts on every vendor arm, through the full multi-process graph: 20 seeded episodes
# of each (robot, task) pair that the arm can do (the UR5 profile has no gripper: reach only).
# Reports and contact sheets land in out/arms/<robot>_<task>.json and ..._media/episodes.png.
#   bash scripts/evaluate_arms.sh                 # ~12 min on 2 cores
#   bash scripts/evaluate_arms.sh panda:pick      # one pair
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
export MUJOCO_GL="${MUJOCO_GL:-egl}"
ARMPILOT="${ARMPILOT_VENV:-.venv}/bin/armpilot"
OUT="${ARMPILOT_WORK:-out/arms}"
for pair in "${@:-panda:reach panda:pick ur5:reach so101:reach so101:pick}"; do
  for p in $pair; do
    robot="${p%%:*}"; task="${p##*:}"
    "$ARMPILOT" demo --robot "$robot" --task "$task" --policy scripted --episodes 20 --no-video \
        --report "$OUT/${robot}_${task}.json" || echo "[evaluate_arms] $robot $task failed" >&2
  done
done
