"""Teleop: differential IK, input mappings, chunk streaming, and the node driving the sim over DDS."""

from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np
import pytest

from armpilot.robot import ARM_JOINTS, GRIPPER_CLOSED, GRIPPER_OPEN, HOME_POSITION
from armpilot.teleop.diff_ik import DiffIk, DiffIkConfig
from armpilot.teleop.inputs import (
    DISCARD,
    KEYBOARD_HELP,
    MOTION_KEYS,
    START,
    STOP,
    Gripper,
    JoyMapper,
    JoyMapping,
    KeyboardMapper,
    SpaceMouseMapper,
    SpaceMouseUnavailable,
    TeleopCommand,
    open_spacemouse,
)
from armpilot.teleop.streamer import ChunkStreamer, TeleopConfig

N = len(ARM_JOINTS)
DT = 0.05


@pytest.fixture(scope="module")
def ik(arm) -> DiffIk:
    return DiffIk(arm)


def _run(ik: DiffIk, q: np.ndarray, twist, steps: int) -> list[np.ndarray]:
    out, target = [q], None
    for _ in range(steps):
        q, target = ik.step(q, np.asarray(twist, float), DT, target)
        out.append(q)
    return out


# ------------------------------------------------------------------ diff IK
def test_plus_x_twist_moves_the_tcp_along_x_and_keeps_orientation(arm, ik):
    start = arm.tcp_pose(HOME_POSITION)
    q = _run(ik, HOME_POSITION.copy(), [0.1, 0, 0, 0, 0, 0], 20)[-1]  # 1 s at 0.1 m/s
    end = arm.tcp_pose(q)
    moved = end[:3, 3] - start[:3, 3]
    assert moved[0] == pytest.approx(0.1, abs=5e-3)
    assert np.linalg.norm(moved[1:]) < 2e-3
    assert np.abs(end[:3, :3] - start[:3, :3]).max() < 1e-3
    assert q[-1] == HOME_POSITION[-1], "the gripper is not the IK's business"


def test_rotation_twist_turns_the_tool_about_the_base_z_axis(arm, ik):
    start = arm.tcp_pose(HOME_POSITION)
    q = _run(ik, HOME_POSITION.copy(), [0, 0, 0, 0, 0, 0.2], 10)[-1]  # 0.1 rad about z
    end = arm.tcp_pose(q)
    rel = end[:3, :3] @ start[:3, :3].T
    assert np.arctan2(rel[1, 0], rel[0, 0]) == pytest.approx(0.1, abs=5e-3)
    assert np.linalg.norm(end[:3, 3] - start[:3, 3]) < 2e-3


def test_zero_twist_keeps_the_joints(ik):
    q, target = ik.step(HOME_POSITION, np.zeros(6), DT)
    assert np.array_equal(q, HOME_POSITION) and target is None


@pytest.mark.parametrize("joint, side", [(2, 1), (1, -1), (4, 1), (5, 1)])
def test_near_a_joint_limit_the_joint_never_crosses_it(arm, ik, joint, side):
    lim = arm.limits
    q0 = HOME_POSITION.copy()
    q0[joint] = (lim.upper if side > 0 else lim.lower)[joint] - side * 0.06
    for axis in range(6):
        for sign in (1.0, -1.0):
            twist = np.zeros(6)
            twist[axis] = sign * (0.3 if axis < 3 else 1.5)
            for q in _run(ik, q0.copy(), twist, 60):
                assert np.all(np.isfinite(q))
                assert np.all(q[:N] >= lim.lower[:N] - 1e-9) and np.all(q[:N] <= lim.upper[:N] + 1e-9)
                inside = (q[:N] >= np.minimum(ik.lower, q0[:N]) - 1e-9) & (q[:N] <= np.maximum(ik.upper, q0[:N]) + 1e-9)
                assert inside.all(), "joints stay within the margins (or no further out than they started)"


def test_joint_speed_stays_within_the_scaled_urdf_velocity_limits(arm, ik):
    qs = _run(ik, HOME_POSITION.copy(), [1.0, -1.0, 1.0, 2.0, 2.0, 2.0], 20)  # far more than the arm can do
    speeds = np.abs(np.diff(np.array(qs)[:, :N], axis=0)) / DT
    assert np.all(speeds <= arm.limits.velocity[:N] * ik.config.velocity_scale + 1e-9)


@pytest.mark.parametrize("q_arm", [np.zeros(6), np.array([0.0, -1.57, 0.0, 0.0, 0.0, 0.0]),
                                   np.array([0.3, -0.3, 1.6, 0.0, 0.0, 0.0])])
def test_singular_configurations_stay_finite(arm, ik, q_arm):
    q0 = np.concatenate([q_arm, [GRIPPER_OPEN]])
    for axis in range(6):
        twist = np.zeros(6)
        twist[axis] = 0.2
        qs = np.array(_run(ik, q0, twist, 10))
        assert np.all(np.isfinite(qs))
        assert np.all(np.abs(np.diff(qs, axis=0))[:, :N] <= arm.limits.velocity[:N] * DT + 1e-9)


def test_config_validation():
    with pytest.raises(ValueError, match="velocity_scale"):
        DiffIkConfig(velocity_scale=1.5)
    with pytest.raises(ValueError, match="device"):
        TeleopConfig(device="wiimote")


# ------------------------------------------------------------------ inputs
def test_keyboard_keys_map_to_twist_gripper_speed_and_events():
    kb = KeyboardMapper(hold_s=0.3)
    cmd = kb.command("w", 0.0)
    assert np.array_equal(cmd.twist, [1, 0, 0, 0, 0, 0])
    assert np.array_equal(kb.command("", 0.2).twist, [1, 0, 0, 0, 0, 0]), "a press lasts hold_s"
    assert not np.any(kb.command("", 0.5).twist), "and then stops"
    for key, (axis, sign) in MOTION_KEYS.items():
        assert KeyboardMapper().command(key, 0.0).twist[axis] == sign
        assert KeyboardMapper().command(key.upper(), 0.0).twist[axis] == sign
    cmd = kb.command(" ++-123hq", 20.0)
    assert cmd.gripper is Gripper.TOGGLE and cmd.speed_steps == 1
    assert cmd.events == (START, STOP, DISCARD) and cmd.show_help and cmd.quit
    assert "space" in KEYBOARD_HELP and "q quit" in KEYBOARD_HELP


def test_keyboard_opposite_keys_cancel():
    assert not np.any(KeyboardMapper().command("ws", 0.0).twist)


def test_joy_axes_deadzone_and_button_edges():
    joy = JoyMapper(JoyMapping(joy_deadzone=0.1))
    axes = [0.05, 1.0, 0.0, -0.55, 0.0, 0.0]  # axis 1 -> vx, axis 0 -> vy (in the deadzone), axis 3 -> wz
    buttons = [1, 0, 0, 0, 0, 0, 0, 1]
    cmd = joy.command(axes, buttons)
    assert cmd.twist == pytest.approx([1.0, 0.0, 0.0, 0.0, 0.0, -0.5])
    assert cmd.gripper is Gripper.TOGGLE and cmd.events == (START,)
    held = joy.command(axes, buttons)
    assert held.gripper is Gripper.NONE and held.events == (), "buttons act once per press"
    cmd = joy.command([], [0, 1, 0, 0, 1, 1, 1, 0])
    assert not np.any(cmd.twist) and cmd.events == (STOP, DISCARD) and cmd.speed_steps == 0
    nan_axis = joy.command([0.0, float("nan"), 0.0, float("inf")], [])
    assert np.all(nan_axis.twist == 0.0), "a broken axis reads as centred: NaN reached the IK and killed the node"


def test_joy_mapping_is_configurable_and_validated():
    joy = JoyMapper(JoyMapping(joy_axes=(-1, -1, 2, -1, -1, -1), joy_axis_scale=(1, 1, -1, 1, 1, 1), joy_deadzone=0.0))
    assert joy.command([0.0, 0.0, 0.4], []).twist == pytest.approx([0, 0, -0.4, 0, 0, 0])
    with pytest.raises(ValueError, match="joy_axes"):
        JoyMapping(joy_axes=(0, 1))


def test_spacemouse_state_maps_to_twist_and_buttons():
    mouse = SpaceMouseMapper(deadzone=0.0)
    state = SimpleNamespace(x=0.0, y=0.5, z=-0.2, roll=0.0, pitch=0.0, yaw=0.3, buttons=[1, 0])
    cmd = mouse.command(state)
    assert cmd.twist == pytest.approx([0.5, 0.0, -0.2, 0.0, 0.0, -0.3])
    assert cmd.gripper is Gripper.TOGGLE
    state.buttons = [0, 1]
    assert mouse.command(state).events == (START,)
    state.buttons = [0, 0]
    mouse.command(state)
    state.buttons = [0, 1]
    assert mouse.command(state).events == (STOP,)


def test_missing_spacemouse_says_what_was_looked_for_and_how_to_fix_it():
    try:
        import pyspacemouse  # noqa: F401
    except ImportError:
        with pytest.raises(SpaceMouseUnavailable) as error:
            open_spacemouse()
        text = str(error.value)
        for needle in ("pyspacemouse", "hidapi", "udev", "plug", "device:=joy"):
            assert needle in text
    else:
        pytest.skip("pyspacemouse is installed here")


# ------------------------------------------------------------------ streamer
def test_streamer_is_idle_without_input_and_streams_a_timed_chunk_when_moving(ik):
    streamer = ChunkStreamer(ik, TeleopConfig())
    assert streamer.tick(np.zeros(6), HOME_POSITION) is None
    chunk = streamer.tick(np.array([1.0, 0, 0, 0, 0, 0]), HOME_POSITION)
    assert chunk.shape == (3, len(HOME_POSITION))
    assert np.allclose(TeleopConfig().times, [0.05, 0.10, 0.15])
    xs = [ik.arm.tcp_pose(q)[0, 3] for q in chunk]
    assert np.diff(xs) == pytest.approx([0.005, 0.005], abs=5e-4)  # 0.1 m/s * 0.05 s
    assert np.allclose(streamer.commanded, chunk[0])


def test_streamer_integrates_from_the_commanded_state_and_resyncs_when_behind(ik):
    streamer = ChunkStreamer(ik, TeleopConfig())
    first = streamer.tick(np.array([1.0, 0, 0, 0, 0, 0]), HOME_POSITION)
    lagging = HOME_POSITION.copy()  # the arm has not moved yet: a small lag is ignored
    second = streamer.tick(np.array([1.0, 0, 0, 0, 0, 0]), lagging)
    assert np.allclose(second[0], first[1], atol=1e-6)
    far = HOME_POSITION.copy()
    far[0] += 0.5
    third = streamer.tick(np.array([1.0, 0, 0, 0, 0, 0]), far)
    assert abs(third[0][0] - far[0]) < 0.05, "re-synced to the measured arm"


def test_streamer_moves_the_gripper_at_its_rate_then_goes_idle(ik):
    config = TeleopConfig()
    streamer = ChunkStreamer(ik, config)
    measured = HOME_POSITION.copy()
    streamer.apply(TeleopCommand(gripper=Gripper.TOGGLE), measured)
    assert streamer.gripper_goal == GRIPPER_CLOSED
    chunks = []
    while (chunk := streamer.tick(np.zeros(6), measured)) is not None:
        chunks.append(chunk)
        measured = chunk[0].copy()
        assert len(chunks) < 50
    steps = np.abs(np.diff([c[0][-1] for c in chunks]))
    assert np.all(steps <= config.gripper_speed * config.point_spacing + 1e-12)
    assert measured[-1] == pytest.approx(GRIPPER_CLOSED)
    assert np.allclose(measured[:N], HOME_POSITION[:N]), "the arm does not move for the gripper"


def test_speed_scale_steps(ik):
    streamer = ChunkStreamer(ik, TeleopConfig(speed_step=2.0, max_speed_scale=3.0))
    streamer.apply(TeleopCommand(speed_steps=1), HOME_POSITION)
    assert streamer.speed_scale == 2.0
    streamer.apply(TeleopCommand(speed_steps=5), HOME_POSITION)
    assert streamer.speed_scale == 3.0
    assert streamer.scaled_twist(np.array([1.0, 0, 0, 0, 0, 1.0])) == pytest.approx([0.3, 0, 0, 0, 0, 1.5])


# ------------------------------------------------------------------ over DDS
@pytest.mark.graph
@pytest.mark.timeout(120)
def test_joy_drives_the_sim_arm_along_x_through_the_safety_node_and_stops(arm, tmp_path):
    from armpilot.ros_nodes import qos, topics
    from graph_harness import running_graph, sim_graph_nodes
    from sensor_msgs.msg import Joy

    from armpilot.graph import NodeSpec

    teleop = NodeSpec("teleop", "teleop_node", parameter_files=("teleop.yaml",),
                      parameters={"device": "joy", "use_sim_time": True})
    nodes = sim_graph_nodes(drop=("policy", "perception", "tracks")) + (teleop,)
    with running_graph(nodes, tmp_path) as (graph, probe):
        joy_pub = probe.create_publisher(Joy, topics.JOY, qos.SENSOR_QOS)
        probe.spin_until(lambda: probe.joints is not None, 60, "joint states from the sim")
        probe.spin_until(lambda: joy_pub.get_subscription_count() > 0, 60, "the teleop node subscribing /joy")
        probe.spin_for(1.0)  # the teleop node's own /joint_states subscription
        start = arm.tcp_pose(probe.joints[:len(HOME_POSITION)])

        def moved() -> np.ndarray:
            return arm.tcp_pose(probe.joints[:len(HOME_POSITION)])[:3, 3] - start[:3, 3]

        def send(vx: float, seconds: float, until=lambda: False) -> None:
            end = time.monotonic() + seconds
            while time.monotonic() < end and not until():
                joy_pub.publish(Joy(axes=[0.0, vx, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], buttons=[0] * 8))
                probe.spin_for(0.05)

        # held until the tool has gone 5 cm (1.5 s at 0.1 m/s unloaded), bounded: a loaded CI machine lags
        send(1.0, 30.0, until=lambda: moved()[0] > 0.05)
        graph.check()
        assert moved()[0] > 0.05, f"the tool should move +x at 0.1 m/s while the stick is held, moved {moved()}"
        offset = moved()
        assert abs(offset[1]) < 0.02 and abs(offset[2]) < 0.02
        send(0.0, 0.5)
        probe.spin_for(0.5)
        before = probe.joints.copy()
        probe.spin_for(0.5)
        assert np.allclose(probe.joints, before, atol=2e-3), "released: the arm stands still"
