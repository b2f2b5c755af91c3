"""Datasets from an arm whose gripper has a controller (and a driver) of its own: two drivers' joint states
merged in one order, the action from the safety node's copy of each command, a user's profile file found again,
and an episode in another joint order skipped."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic_bags import write_episode

from armpilot.dataset.bag_reader import read_episode
from armpilot.dataset.convert import convert
from armpilot.ros_nodes import topics


def test_a_gripper_on_its_own_controller_reaches_the_state_and_the_action(tmp_path):
    """Session 31: the arm controller's commands leave out a gripper that has its own controller, and its driver
    publishes its joint state apart: the state merges the two drivers' messages, the action comes from the safety
    node's copy of each command (``/safety/commanded``), which carries the gripper's column."""
    from synthetic_bags import JOINTS

    split = read_episode(write_episode(tmp_path / "split", separate_gripper=True))
    whole = read_episode(write_episode(tmp_path / "whole"))
    assert split.joint_names == whole.joint_names == JOINTS
    gripper_first = read_episode(write_episode(tmp_path / "gripper_first", separate_gripper=True, gripper_first=True))
    assert gripper_first.joint_names == JOINTS, "whichever driver speaks first, the episodes share one joint order"
    states, reference = split.topics[topics.JOINT_STATES], whole.topics[topics.JOINT_STATES]
    assert states.values.shape[1] == 7 and states.stamps[0] == reference.stamps[1]  # once the gripper was read
    at = np.searchsorted(reference.stamps, states.stamps)
    assert np.allclose(states.values[:, :6], reference.values[at, :6])
    last = np.r_[states.stamps[1:] != states.stamps[:-1], True]  # the gripper's message follows the arm's
    odd = at % 2 == 1
    assert np.allclose(states.values[last & odd, 6], reference.values[at[last & odd], 6])
    assert np.isin(states.values[:, 6], reference.values[1::2, 6]).all(), "between its messages: held"
    commands, full = split.topics[topics.CONTROLLER_COMMAND], whole.topics[topics.CONTROLLER_COMMAND]
    assert commands.values.shape[1:] == full.values.shape[1:] and len(commands.stamps) == len(full.stamps) - 1
    assert np.allclose(commands.values, full.values[1:]), "the copy without the gripper's column is left out"
    assert np.allclose(split.command_grid.values, whole.command_grid.values[1:])


def test_a_users_profile_file_is_found_from_what_the_recording_stored(tmp_path):
    """A user's profile is no shipped name: conversion found no velocity limits and fell back to base_link for its
    base frame. The recorder stores where the profile was loaded from; the converter loads it from there."""
    from robot_variants import profile_file

    from armpilot.dataset.convert import recorded_base_frame
    from armpilot.dataset.demo_speed import recorded_velocity_limits
    from armpilot.robot_profile import (PROFILE_SOURCE_KEY, ROBOT_KEY, RobotDescriptionError,
                                        load_recorded_profile, robot_identity)

    path = profile_file("armpilot_gripper_position", tmp_path)
    own = load_recorded_profile({ROBOT_KEY: "armpilot_gripper_position", PROFILE_SOURCE_KEY: str(path)})
    assert own.gripper.commanded_separately
    stored = {**robot_identity(own), PROFILE_SOURCE_KEY: str(path)}
    limits, unknown = recorded_velocity_limits(stored)
    assert not unknown and limits["gripper_joint"] == pytest.approx(0.1)
    assert recorded_base_frame(stored) == own.base_frame
    with pytest.raises(RobotDescriptionError):
        load_recorded_profile({ROBOT_KEY: "armpilot_gripper_position", PROFILE_SOURCE_KEY: str(tmp_path / "gone")})
    assert recorded_velocity_limits({**stored, PROFILE_SOURCE_KEY: ""})[1]


def test_an_episode_in_another_joint_order_is_skipped_naming_both_orders(tmp_path, monkeypatch):
    """Columns are written by position: an episode whose joints differ from the first one's would scramble them."""
    from dataclasses import replace

    import armpilot.dataset.convert as module

    for k in range(2):
        write_episode(tmp_path / "bags" / f"episode_00000{k}", duration=1.0)
    read = module.read_episode_or_its_readable_part

    def second_reordered(folder, summary):
        episode = read(folder, summary)
        return replace(episode, joint_names=episode.joint_names[::-1]) if folder.name.endswith("1") else episode

    monkeypatch.setattr(module, "read_episode_or_its_readable_part", second_reordered)
    summary = convert(tmp_path / "bags", tmp_path / "out", fps=15, progress=False)
    assert summary.episodes == 1 and "not the dataset's" in summary.skipped["episode_000001"]
