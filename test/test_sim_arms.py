"""The sim runs any arm: one inside a larger robot (TIAGo, PR2) holds its pose, reports every joint the safety
node needs, and the scripted expert reaches with it; a separate gripper is reported; URDF inertias MuJoCo refuses
are made physical."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from armpilot.robot import ArmModel
from armpilot.sim.scene import make_inertias_physical
from armpilot.sim.world import SimWorld
from armpilot.tasks import get_task
from armpilot.tasks.demonstrations import run_expert_episode
from armpilot.tasks.experts import ScriptedExpert

from robot_variants import profile


@pytest.mark.parametrize("name", ["tiago", "pr2_right", "talos_right"])
def test_an_arm_inside_a_larger_robot_holds_home_and_reports_every_joint(name):
    """Before: MuJoCo refused the URDFs' inertias; with them fixed by hand, the shoulder's hull pressed on the torso
    (TIAGo's arm_1_joint stuck 0.4 rad off, the PR2's arm drifting 1.5 rad) and /joint_states lacked the torso
    and head, so the safety node refused every chunk (joint_state_mismatch). TALOS (session 29): its mesh URIs
    (package:///) did not resolve and the floor, 0.75 m under its pelvis, bent its knees 1.28 rad."""
    p = profile(name)
    arm = ArmModel(p)
    world = SimWorld(p, get_task("reach", p.reach), render=False)
    world.reset(0)
    names, start, _, _ = world.joint_state()
    assert set(names) == set(p.joints) | set(arm.passive_joints), "every movable, non-mimic joint is reported"
    reported = dict(zip(names, start))
    for joint, value in p.passive_positions.items():
        assert reported[joint] == pytest.approx(value), f"{joint} stands where passive_joints puts it"
    for _ in range(50):
        world.step(p.home, 10)  # 1 s holding home
    _, held, _, _ = world.joint_state()
    drift = np.abs(held - start)
    assert drift.max() < 0.01, f"{names[int(np.argmax(drift))]} drifted {drift.max():.3f} holding home"
    np.testing.assert_allclose(world.tcp_position(), arm.tcp_pose(world.joint_positions())[:3, 3], atol=2e-3)


def test_the_expert_reaches_with_an_arm_inside_a_larger_robot():
    p = profile("tiago")
    world = SimWorld(p, get_task("reach", p.reach), render=False)
    expert = ScriptedExpert(ArmModel(p), get_task("reach"))
    assert sum(run_expert_episode(world, expert, seed).success for seed in range(3)) >= 2


def test_a_separate_gripper_is_reported_and_held_open():
    p = profile("armpilot_six")
    world = SimWorld(p, get_task("reach", p.reach), render=False)
    world.reset(1)
    names, positions, _, _ = world.joint_state()
    assert names == p.joints + (p.gripper.joint,)
    assert positions[-1] == pytest.approx(p.gripper.open, abs=1e-6)


def test_inertias_mujoco_refuses_are_made_physical():
    xml = """<mujoco><worldbody>
      <body name="flat"><joint type="hinge"/><inertial pos="0 0 0" mass="0.1" diaginertia="0.001 0.001 0.01"/>
        <geom type="sphere" size="0.01" contype="0" conaffinity="0"/></body>
      <body name="negative" pos="0 0 1"><joint type="hinge"/>
        <inertial pos="0 0 0" mass="0.1" fullinertia="2e-8 3e-8 4e-8 6e-8 1e-8 8e-9"/>
        <geom type="sphere" size="0.01" contype="0" conaffinity="0"/></body>
      <body name="fine" pos="0 0 2"><joint type="hinge"/><inertial pos="0 0 0" mass="1" diaginertia="1 1 1"/>
        <geom type="sphere" size="0.01" contype="0" conaffinity="0"/></body>
    </worldbody></mujoco>"""
    spec = mujoco.MjSpec.from_string(xml)
    with pytest.raises(ValueError, match="inertia"):
        spec.compile()
    assert sorted(make_inertias_physical(spec)) == ["flat", "negative"]
    model = spec.compile()
    assert np.all(model.body_inertia[1:] > 0)
    assert model.body_inertia[model.body("fine").id].tolist() == [1.0, 1.0, 1.0]


def _on_a_raised_table(height: float = 0.75):
    """armpilot's arm on a pedestal ``height`` m tall, the base frame on the floor below it, the table top level
    with the arm's mount: a profile a user of a mobile manipulator or a humanoid writes (base on the floor)."""
    from pathlib import Path

    import yaml

    from armpilot.robot_profile import load_profile, profile_from_dict

    bare = load_profile("armpilot")
    tag_end = bare.urdf_xml.index(">", bare.urdf_xml.index("<robot")) + 1
    pedestal = ('<link name="floor"/><joint name="pedestal" type="fixed"><parent link="floor"/>'
                f'<child link="base_link"/><origin xyz="0 0 {height}"/></joint>')
    raw = yaml.safe_load((Path(__file__).parent.parent / "config" / "robots" / "armpilot.yaml").read_text())
    raw.update(base_frame="floor", table_z=height, workspace_min=[-0.3, -0.7, height - 0.05],
               workspace_max=[1.0, 0.7, height + 1.2])
    xml = bare.urdf_xml[:tag_end] + pedestal + bare.urdf_xml[tag_end:]
    return profile_from_dict(raw, Path(bare.source).parent, robot_description=xml, source="raised")


@pytest.mark.parametrize("task", ["push", "pick"])
def test_tasks_stand_on_a_raised_table(task):
    """``table_z`` moved only the table: boxes were placed, goals drawn and success judged at z = 0, 0.75 m under
    the table top (the PR2 with a table at 0.5 m: every reach 0.4-1.4 m off). Now the regions, the goal pad,
    the distractors and the tests of resting and lifting stand on the table, and the expert pushes at its top."""
    p = _on_a_raised_table()
    world = SimWorld(p, get_task(task, p.reach, p.table_z), render=False, scene="randomized")
    init = world.reset(3)
    box_bottom = world.object_pose()[0][2] - world.episode_task.object_half_size
    assert abs(box_bottom - p.table_z) < 0.005 and abs(init.goal_position[2] - p.table_z) < 0.1
    expert = ScriptedExpert(ArmModel(p), get_task(task))
    assert sum(run_expert_episode(world, expert, seed).success for seed in range(3)) >= 2


def test_the_perception_crop_box_covers_every_task_region_of_every_arm():
    from armpilot.perception.config import PerceptionConfig
    from armpilot.tasks import TASKS, get_task

    from robot_variants import ALL_PROFILES

    for p in [profile(name) for name in ALL_PROFILES] + [_on_a_raised_table()]:
        low, high = PerceptionConfig().box(p.reach, p.table_z)
        for name in TASKS:
            task = get_task(name, p.reach, p.table_z)  # the regions, whatever the gripper
            margin = task.object_half_size
            assert np.all(np.array(task.region_low) - margin >= np.array(low) - 1e-9), (p.name, name)
            assert np.all(np.array(task.region_high) + margin <= np.array(high) + 1e-9), (p.name, name)


def test_a_planar_arm_is_refused_by_the_sim_naming_why():
    """ASR's two-joint arm moves its tip in one horizontal plane: every reach ran to its time limit, unexplained."""
    from armpilot.robot_profile import RobotDescriptionError

    p = profile("asr_twodof")
    assert not ArmModel(p).tcp_moves_in_3d() and ArmModel(profile("so101")).tcp_moves_in_3d()
    with pytest.raises(RobotDescriptionError, match="fewer than three directions"):
        SimWorld(p, get_task("reach", p.reach), render=False)


def test_the_gripper_effort_key_sets_the_sims_squeeze():
    """TIAGo Pro's gripper has a 0.1 N m URDF effort: its jaws closed to 0.39 rad in the pick's grasp pause and the
    box slipped (0/6). ``gripper: {effort: ...}`` sets the sim's servo and MuJoCo's joint force cap."""
    from dataclasses import replace

    from armpilot.sim.scene import build_scene
    from armpilot.sim.scene import CameraConfig

    p = profile("armpilot")
    strong = replace(p, gripper=replace(p.gripper, effort=7.5))
    model = build_scene(strong, get_task("pick", p.reach), CameraConfig()).compile()
    actuator = model.actuator(p.gripper.joint)
    assert np.allclose(actuator.forcerange, [-7.5, 7.5])
    assert np.allclose(model.jnt_actfrcrange[model.joint(p.gripper.joint).id], [-7.5, 7.5])


@pytest.mark.parametrize("name", ["ur5", "armpilot_six"])
def test_a_grasping_task_on_an_arm_whose_gripper_armpilot_cannot_close_is_refused(name):
    """Session 30: a Kinova with its fingers on a separate controller ran pick 0/6, 339 of 355 chunks accepted and
    nothing refused: no node commanded a separate gripper (the sim held it open). Unless the profile gives the gripper a
    command, the task is refused, naming the fix."""
    from armpilot.tasks import task_for_robot

    with pytest.raises(ValueError, match="closes a gripper.*give the gripper a command"):
        task_for_robot("pick", profile(name))
    assert task_for_robot("reach", profile(name)).name == "reach"
    assert task_for_robot("pick", profile("armpilot_own_gripper")).name == "pick"


def test_an_arm_facing_away_from_the_sims_tasks_is_named():
    """Session 30 (iCub, whose base frame faces backward: reach 0/2 with no word why): the sim warns."""
    from dataclasses import replace

    from armpilot.robot import ArmModel
    from armpilot.sim.scene import facing_away

    from robot_variants import ALL_PROFILES

    away = [name for name in ALL_PROFILES if facing_away(ArmModel(profile(name)))]
    assert away == ["ur5_pedestal"], "UR's 'base' frame is half a turn from base_link: that home is behind it"
    armpilot = profile("armpilot")
    turned = replace(armpilot, home=np.array(armpilot.home) + np.eye(len(armpilot.home))[0] * np.pi)
    assert "behind the base" in facing_away(ArmModel(turned))
