"""The safety node over DDS on arms armpilot ships no profile for (``test/profiles/``), given as a profile path the
way a user gives theirs: it starts (the Z1's URDF names a fixed joint like its link, which stopped every node
before session 26), forwards a valid chunk in the profile's joint order with its stop after it, within the
limits, and an e-stop sends a hold that brakes to rest within them."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from sensor_msgs.msg import JointState, PointCloud2
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from armpilot.graph import NodeSpec
from armpilot.robot import ArmModel
from armpilot.robot_profile import load_profile
from armpilot.ros_nodes import conversions as conv
from armpilot.ros_nodes import qos, topics
from armpilot.ros_nodes.candidate_conversions import candidates_to_msg
from armpilot.safety.limits import finite_derivatives
from graph_harness import running_graph

pytestmark = [pytest.mark.graph, pytest.mark.timeout(180)]
PROFILES = Path(__file__).parent / "profiles"


def _points(msg: JointTrajectory) -> tuple[np.ndarray, np.ndarray]:
    times = np.array([p.time_from_start.sec + p.time_from_start.nanosec * 1e-9 for p in msg.points])
    return times, np.array([list(p.positions) for p in msg.points])


@pytest.mark.parametrize("name", ["z1", "kinova_j2s6s200"])
def test_the_safety_node_runs_an_arm_it_was_never_shipped_with(tmp_path, name):
    path = PROFILES / f"{name}.yaml"
    profile = load_profile(str(path))
    limits = ArmModel(profile).limits
    joints = profile.joints
    home = np.asarray(profile.home, float)
    nodes = (NodeSpec("safety", "safety_node", parameter_files=("safety.yaml",), parameters={"robot": str(path)}),)
    with running_graph(nodes, tmp_path) as (_graph, probe):
        states = probe.create_publisher(JointState, topics.JOINT_STATES, qos.STATE_QOS)
        proposals = probe.create_publisher(PointCloud2, topics.POLICY_CANDIDATES, qos.COMMAND_QOS)
        sent: list[JointTrajectory] = []
        probe.create_subscription(JointTrajectory, topics.CONTROLLER_COMMAND, sent.append, qos.COMMAND_QOS)
        probe.create_timer(0.01, lambda: states.publish(conv.joint_state_to_msg(joints, home, stamp=time.time())))
        step = np.zeros(len(joints))
        step[0] = 0.005  # rad per 0.1 s on the first joint: 0.05 rad/s, gentle on any arm
        times = 0.1 * np.arange(1, 11)

        def propose() -> None:
            if not any(m.header.stamp.sec for m in sent):  # until one chunk went through
                proposals.publish(candidates_to_msg(joints, times, (home + np.outer(np.arange(1, 11), step))[None],
                                                    time.time()))

        probe.create_timer(0.2, propose)
        probe.spin_until(lambda: any(m.header.stamp.sec for m in sent), 60, f"a chunk forwarded on the {name}")
        chunk = next(m for m in sent if m.header.stamp.sec)
        assert tuple(chunk.joint_names) == joints
        t, q = _points(chunk)
        assert len(t) > 10, "the chunk goes out with its stop after it"
        assert np.all((q >= limits.lower - 1e-9) & (q <= limits.upper + 1e-9))
        assert np.all(np.abs(np.diff(q, axis=0)) / np.diff(t)[:, None] <= limits.velocity + 1e-9)
        acceleration, jerk = finite_derivatives(t, q)
        assert np.all(np.abs(acceleration) <= limits.acceleration + 1e-6)
        assert np.all(np.abs(jerk) <= limits.jerk + 1e-6)
        assert probe.call(probe.create_client(Trigger, "/safety/estop"), Trigger.Request(), "/safety/estop").success
        probe.spin_until(lambda: any(m.header.stamp.sec == 0 and m.header.stamp.nanosec == 0 for m in sent), 10,
                         "the e-stop hold")
        hold = next(m for m in sent if m.header.stamp.sec == 0 and m.header.stamp.nanosec == 0)
        assert tuple(hold.joint_names) == joints
        t, q = _points(hold)
        velocities = np.array([list(p.velocities) for p in hold.points])
        assert np.allclose(velocities[-1], 0.0)
        assert np.all((q >= limits.lower - 1e-9) & (q <= limits.upper + 1e-9))
        assert np.all(np.abs(velocities) <= limits.velocity + 1e-9)


@pytest.mark.parametrize("name", ["pr2_right", "tiago", "g1_right"])
def test_no_pair_only_passive_joints_move_is_checked(name):
    """Session 30 (iCub): a humanoid's hip against its torso, both moved only by passive joints sagging in the sim,
    refused arm chunks the arm could never change. Every checked pair has a link a commanded joint moves."""
    from armpilot.safety.workspace import WorkspaceChecker

    from robot_variants import profile

    checker = WorkspaceChecker(ArmModel(profile(name)))
    model, objects = checker.model, checker.geometry.geometryObjects
    commanded = {model.getJointId(n) for n in checker.arm.joint_names}
    moved = [bool(commanded & set(model.supports[g.parentJoint])) for g in objects]
    assert checker.geometry.collisionPairs and all(moved[p.first] or moved[p.second]
                                                   for p in checker.geometry.collisionPairs)
