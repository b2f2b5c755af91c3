#!/usr/bin/env bash
# The scripted experts on every vendor arm, through the full multi-process graph: 20 seeded episodes
# of each (robot, task) pair that the arm can do (the UR5 profile has no gripper: reach only), then reach on
# the vendor profiles in test/profiles (a robot given as a profile YAML works the same way).
# Reports and contact sheets land in out/arms/<robot>_<task>.json and ..._media/episodes.png.
#   bash scripts/evaluate_arms.sh                                  # ~20 min on 2 cores
#   bash scripts/evaluate_arms.sh panda:pick                       # one pair
#   bash scripts/evaluate_arms.sh test/profiles/z1.yaml:reach      # a profile of your own
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
export MUJOCO_GL="${MUJOCO_GL:-egl}"
ARMPILOT="${ARMPILOT_VENV:-.venv}/bin/armpilot"
OUT="${ARMPILOT_WORK:-out/arms}"
VENDOR="test/profiles/kinova_j2s6s200.yaml:reach test/profiles/z1.yaml:reach test/profiles/xarm7.yaml:reach
        test/profiles/tiago.yaml:reach test/profiles/pr2_right.yaml:reach"
for pair in "${@:-panda:reach panda:pick ur5:reach so101:reach so101:pick $VENDOR}"; do
  for p in $pair; do
    robot="${p%%:*}"; task="${p##*:}"; name="$(basename "$robot" .yaml)"
    "$ARMPILOT" demo --robot "$robot" --task "$task" --policy scripted --episodes 20 --no-video \
        --report "$OUT/${name}_${task}.json" || echo "[evaluate_arms] $robot $task failed" >&2
  done
done
