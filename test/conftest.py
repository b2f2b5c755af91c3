"""Shared fixtures: the arm model and per-test ROS isolation."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("MUJOCO_GL", "egl")

from armpilot.robot import ArmModel  # noqa: E402


@pytest.fixture(scope="session")
def arm() -> ArmModel:
    """The arm's pinocchio model from the package URDF."""
    return ArmModel()


@pytest.fixture(scope="module")
def bag(tmp_path_factory):
    """A synthetic RealSense recording (.db3) of known frames (see test/realsense_bags.py)."""
    from realsense_bags import record_bag

    path = tmp_path_factory.mktemp("realsense") / "synthetic.db3"
    record_bag(path)
    assert path.is_file() and path.stat().st_size > 0
    return path
