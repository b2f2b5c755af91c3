#!/usr/bin/env bash
# The main job: set up (if needed) and run the closed loop in simulation.
#   bash scripts/demo.sh                      # reach, 20 episodes, report in out/report.json
#   bash scripts/demo.sh --task pick --episodes 20 --report out/pick.json
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
export MUJOCO_GL="${MUJOCO_GL:-egl}"
if [ "$#" -eq 0 ]; then
  set -- --task reach --policy diffusion --episodes 20 --report out/report.json
fi
exec "${ARMPILOT_VENV:-.venv}/bin/armpilot" demo "$@"
