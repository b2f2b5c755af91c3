"""Shared fixtures: the arm model and per-test ROS isolation."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("MUJOCO_GL", "egl")

from armpilot.paths import urdf_path  # noqa: E402
from armpilot.robot import ArmModel  # noqa: E402


@pytest.fixture(scope="session")
def arm() -> ArmModel:
    """The arm's pinocchio model from the package URDF."""
    return ArmModel(urdf_path())
