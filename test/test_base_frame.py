"""``base_frame`` anywhere on the URDF's fixed tree: every pose and check is in it, never in the URDF's root.

An arm on a pedestal (a root link and a fixed joint above the arm's own base) with ``base_frame`` at the arm's
base must give the same kinematics, safety checks, self-filter boxes and sim as the bare arm; UR's ``base``
(turned half a turn from ``base_link``) must see the tool on the other side.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from armpilot.perception.geometry import camera_pose_from_urdf
from armpilot.perception.self_filter import RobotBoxes
from armpilot.robot import ArmModel
from armpilot.robot_profile import RobotDescriptionError, load_profile, profile_from_dict
from armpilot.safety.workspace import WorkspaceChecker

ROOT = Path(__file__).resolve().parent.parent
ROBOTS = ROOT / "config" / "robots"
PEDESTAL = ('<link name="pedestal"/><joint name="pedestal_mount" type="fixed"><parent link="pedestal"/>'
            '<child link="{base}"/><origin xyz="0.3 -0.2 0.75" rpy="0.1 -0.05 0.8"/></joint>')


def _raw(robot: str) -> dict:
    return yaml.safe_load((ROBOTS / f"{robot}.yaml").read_text())


def _on_a_pedestal(robot: str):
    """The shipped profile with its URDF mounted on a tilted, shifted pedestal link (the new URDF root)."""
    bare = load_profile(robot)
    tag_end = bare.urdf_xml.index(">", bare.urdf_xml.index("<robot")) + 1
    xml = bare.urdf_xml[:tag_end] + PEDESTAL.format(base=bare.base_frame) + bare.urdf_xml[tag_end:]
    return bare, profile_from_dict(_raw(robot), ROBOTS, robot_description=xml, source=robot)


def _samples(arm: ArmModel, count: int = 12) -> np.ndarray:
    rng = np.random.default_rng(3)
    low = np.where(np.isfinite(arm.limits.lower), arm.limits.lower, -np.pi)
    high = np.where(np.isfinite(arm.limits.upper), arm.limits.upper, np.pi)
    near_home = np.clip(arm.profile.home + rng.uniform(-0.2, 0.2, size=(count, len(low))), low, high)
    return np.concatenate([arm.profile.home[None], near_home, rng.uniform(low, high, size=(count, len(low)))])


@pytest.mark.parametrize("robot", ["armpilot", "panda"])
def test_a_pedestal_above_the_base_frame_changes_no_pose_or_check(robot):
    bare, mounted = _on_a_pedestal(robot)
    bare_arm, mounted_arm = ArmModel(bare), ArmModel(mounted)
    assert not np.allclose(mounted_arm.root_from_base, np.eye(4)), "the pedestal moves the base in the root"
    positions = _samples(bare_arm)
    for q in positions:
        np.testing.assert_allclose(mounted_arm.tcp_pose(q), bare_arm.tcp_pose(q), atol=1e-9)
    if bare.camera_frame:
        np.testing.assert_allclose(camera_pose_from_urdf(mounted_arm, bare.camera_frame),
                                   camera_pose_from_urdf(bare_arm, bare.camera_frame), atol=1e-9)
    at_home = WorkspaceChecker(bare_arm, self_collision=False).points(bare.home[None])[0]
    box = {"box_min": at_home.min(axis=0) - 0.2, "box_max": at_home.max(axis=0) + 0.2}  # some samples leave it
    bare_check, mounted_check = WorkspaceChecker(bare_arm, **box), WorkspaceChecker(mounted_arm, **box)
    np.testing.assert_allclose(mounted_check.points(positions), bare_check.points(positions), atol=1e-9)
    verdicts = [(bare_check.check(q[None]), mounted_check.check(q[None])) for q in positions]
    assert any(b is not None for b, _ in verdicts) and any(b is None for b, _ in verdicts), "both kinds sampled"
    for bare_verdict, mounted_verdict in verdicts:
        assert (bare_verdict is None) == (mounted_verdict is None)
        if bare_verdict is not None:
            assert bare_verdict.reason == mounted_verdict.reason
    bare_boxes, mounted_boxes = RobotBoxes(bare_arm)(positions[0]), RobotBoxes(mounted_arm)(positions[0])
    np.testing.assert_allclose(mounted_boxes.centres, bare_boxes.centres, atol=1e-9)
    np.testing.assert_allclose(mounted_boxes.rotations, bare_boxes.rotations, atol=1e-9)


def test_the_sim_puts_the_base_frame_at_its_origin():
    from armpilot.sim.world import SimWorld
    from armpilot.tasks import get_task

    bare, mounted = _on_a_pedestal("armpilot")
    seen = []
    for profile in (bare, mounted):
        world = SimWorld(profile, get_task("push"), render=False)
        world.reset(4)
        q = world.joint_positions()
        arm = ArmModel(profile)
        np.testing.assert_allclose(world.tcp_position(), arm.tcp_pose(q)[:3, 3], atol=1e-6)
        np.testing.assert_allclose(world.camera_optical_pose(), camera_pose_from_urdf(arm, profile.camera_frame),
                                   atol=1e-6)
        seen.append((world.tcp_position(), world.object_pose()[0], world.camera_optical_pose()))
        world.close()
    for bare_value, mounted_value in zip(*seen):
        np.testing.assert_allclose(mounted_value, bare_value, atol=1e-6)


def test_ur_base_sees_the_tool_half_a_turn_round():
    raw = _raw("ur5")
    base_link = ArmModel(load_profile("ur5"))
    base = ArmModel(profile_from_dict({**raw, "base_frame": "base"}, ROBOTS, source="ur5"))
    q = base_link.profile.home
    tool, turned = base_link.tcp_pose(q)[:3, 3], base.tcp_pose(q)[:3, 3]
    np.testing.assert_allclose(turned, [-tool[0], -tool[1], tool[2]], atol=1e-6)


@pytest.mark.parametrize("frame, message", [("shoulder_link", "moves with the revolute joint 'shoulder_pan_joint'"),
                                            ("no_such_link", "'no_such_link' is not a link")])
def test_a_base_frame_that_moves_or_is_missing_is_refused(frame, message):
    with pytest.raises(RobotDescriptionError, match=message):
        profile_from_dict({**_raw("ur5"), "base_frame": frame}, ROBOTS, source="ur5")


def test_every_node_labels_its_outputs_with_the_profiles_base_frame(tmp_path):
    """Over DDS, a Panda graph (base_frame ``panda_link0``): the cloud, the objects and the sim's poses say so,
    as RViz and TF need (they were labelled ``base_link``, a frame the Panda's URDF does not have)."""
    from geometry_msgs.msg import PoseArray
    from graph_harness import running_graph, sim_graph_nodes
    from sensor_msgs.msg import PointCloud2

    from armpilot.ros_nodes import qos, topics

    nodes = sim_graph_nodes(drop=("policy", "safety", "tracks", "robot_state_publisher"), robot="panda", task="push")
    frames: dict[str, set[str]] = {}
    with running_graph(nodes, tmp_path) as (_, probe):
        for msg_type, topic, profile in ((PointCloud2, topics.PERCEPTION_POINTS, qos.CAMERA_QOS),
                                         (PoseArray, topics.PERCEPTION_OBJECTS, qos.SENSOR_QOS),
                                         (PoseArray, topics.SIM_PRIVILEGED_OBJECTS, qos.SENSOR_QOS)):
            probe.create_subscription(msg_type, topic,
                                      lambda msg, t=topic: frames.setdefault(t, set()).add(msg.header.frame_id),
                                      profile)
        probe.spin_until(lambda: len(frames) == 3, 180, f"the perception and sim outputs (got {sorted(frames)})")
    assert all(labels == {"panda_link0"} for labels in frames.values()), frames
