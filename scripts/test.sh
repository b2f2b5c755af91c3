#!/usr/bin/env bash
# The tests: set up (if needed), then the whole suite (the long closed-loop evaluations
# are marked slow; run them with: bash scripts/test.sh -m slow).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
export MUJOCO_GL="${MUJOCO_GL:-egl}"
exec "${ARMPILOT_VENV:-.venv}/bin/python" -m pytest "$@"
