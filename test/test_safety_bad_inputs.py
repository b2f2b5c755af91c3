"""Inputs for which the safety node forwarded a command that breaks the arm's limits, or stopped verifying
without a named reason (found by an adversarial review in session 28): a joint state stamped far from the node's
clock, a chunk whose command cannot be encoded, a send that fails in the verifier thread, bytes that are not a
message. Each test says what happened before and fails on that code."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

from armpilot.rejections import Reason
from armpilot.robot import ArmModel
from armpilot.ros_nodes import conversions as conv
from armpilot.safety.limits import SafetyConfig, check_chunk
from armpilot.safety.state_tracking import ArmState, CommandedPath
from armpilot.safety.supervisor import Supervisor
from robot_variants import profile

CFG = SafetyConfig()
NOW = 1000.0


def _arm(name: str = "armpilot"):
    p = profile(name)
    return p, ArmModel(p).limits


def _fake_node(lim, now: float):
    """What ``SafetyNode.on_joint_state`` touches, with the node's own state objects."""
    rejected: list[tuple[str, str]] = []
    held: list[tuple[str, str]] = []
    node = SimpleNamespace(
        lock=threading.RLock(), config=CFG, limits=lim,
        state=ArmState(lim.names, (), lim.continuous),
        supervisor=Supervisor(CFG.proposal_timeout, CFG.joint_state_timeout),
        now=lambda: now, reject=lambda r, d: rejected.append((r, d)), hold=lambda r, d: held.append((r, d)),
        early_episode=None)
    return node, rejected, held


@pytest.mark.parametrize("offset", [-100.0, 100.0], ids=["stamped_100s_ago", "stamped_100s_ahead"])
def test_a_joint_state_stamped_long_ago_never_becomes_the_measured_arm(offset):
    """A replayed bag on /joint_states (old header stamps) next to the arm's driver. Its states are refused as
    "not the arm alive" (``stale``), but ``on_joint_state`` has already stored them as the measured arm, and the
    jump check widens its reach by the stamp difference (100 s at the velocity limit), so the two sources are
    never seen. A chunk checked against the replayed pose then passes, while the controller is 1 rad away: the
    controller is told to cover 1 rad in 0.1 s. Expected: a state that old (or that far ahead) never replaces
    the measured arm (and/or is a jump), and a chunk from the replayed pose is refused. The same with a state
    stamped 100 s ahead (a publisher on another clock): counted as alive, stored, and no jump either."""
    from ros_nodes.safety_node import SafetyNode

    p, lim = _arm()
    node, rejected, _held = _fake_node(lim, NOW)
    a = p.home.copy()
    b = a.copy()
    b[0] += 1.0  # the replayed pose
    live = conv.joint_state_to_msg(lim.names, a, np.zeros(len(a)), stamp=NOW - 0.01)
    replayed = conv.joint_state_to_msg(lim.names, b, np.zeros(len(b)), stamp=NOW + offset)
    SafetyNode.on_joint_state(node, live)
    path = CommandedPath(lim.velocity * CFG.tracking_allowance, lim.continuous)
    path.command(NOW - 0.2, NOW - 0.2, np.array([0.1, 0.2]), np.vstack([a, a]), a)  # the controller holds a
    SafetyNode.on_joint_state(node, replayed)
    if offset < 0:
        assert any(reason == Reason.STALE for reason, _ in rejected), "the replayed state is reported as stale"
    measured = node.state.positions
    refusal = node.supervisor.refusal(time.monotonic(), NOW)
    verdict = check_chunk(CFG, lim, lim.names, NOW, np.array([0.1, 0.2, 0.3]), np.vstack([b, b, b]), NOW,
                          measured, reference=path.reference(NOW, measured), reference_velocity=path.velocity(NOW))
    assert refusal is not None or not verdict.accepted, (
        f"a chunk 1 rad from the controller, 0.1 s ahead, was accepted (measured arm now "
        f"{'the replayed pose' if np.allclose(measured, b) else measured}; jump seen: "
        f"{node.state.jump(lim, CFG.tracking_allowance)!r})")


def test_a_chunk_whose_command_cannot_be_encoded_is_refused_not_accepted():
    """A teleop chunk whose time_from_start is near the int32 limit of builtin_interfaces/Duration (a valid
    message) and that ends moving. ``check_chunk`` accepts it and appends the stop after it, which pushes the
    last time past 2**31 s; in the node, ``forward`` then raises ConversionError in ``joint_trajectory_to_msg``
    outside ``verify_loop``'s try (after ``path.command`` and ``supervisor.accepted``), which ends the verifier
    thread: every later proposal is queued and never checked, with no reason named. Expected: refused with a
    named reason (the command as sent must fit a JointTrajectory, or such horizons are refused outright)."""
    p, lim = _arm()
    start = 2.0**31 - 0.25
    times = start + np.array([0.0, 0.1, 0.2])
    positions = np.tile(p.home, (3, 1))
    positions[1:, 0] += [0.01, 0.02]  # ends moving: a stop is appended after it
    verdict = check_chunk(CFG, lim, lim.names, NOW, times, positions, NOW, p.home)
    if verdict.accepted:
        try:
            conv.joint_trajectory_to_msg(lim.names, verdict.sent_times, verdict.sent_positions, None,
                                         conv.sec_to_stamp(verdict.stamp))
        except conv.ConversionError as error:
            raise AssertionError(f"accepted a chunk the node cannot send: {error}") from error


def test_the_verifier_thread_survives_a_command_that_fails_to_send():
    """``verify_loop`` catches errors of the check but not of ``forward`` (building and sending the command:
    ``joint_trajectory_to_msg`` raises ConversionError for a time past int32, see the test above). One such
    error ends the verifier thread: every later proposal waits in ``pending`` forever, nothing names why, and the
    arm is held by ``proposal_timeout`` at best. Expected: the proposal is refused (``internal_error``) and
    verification goes on."""
    from ros_nodes.safety_node import SafetyNode

    rejected: list[tuple[str, str]] = []
    forwarded: list[str] = []

    def forward(verdict):
        if verdict == "unsendable":
            raise conv.ConversionError("time 2147483648.0 s does not fit the int32 'sec' field")
        forwarded.append(verdict)

    node = SimpleNamespace(pending={}, pending_ready=threading.Condition(), verify_ms_max=0.0, superseded=0,
                           get_logger=lambda: SimpleNamespace(error=lambda *_: None),
                           reject=lambda r, d: rejected.append((r, d)), forward=forward)
    worker = threading.Thread(target=SafetyNode.verify_loop, args=(node,), daemon=True)
    worker.start()
    SafetyNode.submit(node, "/teleop/joint_trajectory", lambda: "unsendable")
    time.sleep(0.2)
    SafetyNode.submit(node, "/policy/candidates", lambda: "next proposal")
    deadline = time.monotonic() + 2.0
    while not forwarded and time.monotonic() < deadline:
        time.sleep(0.01)
    assert worker.is_alive(), "the verifier thread died on an error while forwarding"
    assert forwarded == ["next proposal"], "a proposal after the failed one was never checked"


def test_a_message_that_does_not_deserialize_is_refused_as_malformed_not_a_crash():
    """Proposals are taken raw (``raw=True``) and deserialized in ``decode``; bytes that are not a valid CDR
    PointCloud2 / JointTrajectory (any node can publish raw bytes: ``Publisher.publish(bytes)``) make
    ``deserialize_message`` raise RMWError, a RuntimeError, out of the subscription callback: the executor's
    spin raises, ``run_node`` sends the shutdown hold and the safety node exits. One message stops the only
    path to the arm. Expected: refused and counted as ``malformed``; the node keeps running."""
    from sensor_msgs.msg import PointCloud2
    from trajectory_msgs.msg import JointTrajectory

    from armpilot.safety.input_bounds import InputBounds
    from ros_nodes.safety_node import SafetyNode

    rejected: list[tuple[str, str]] = []
    node = SimpleNamespace(bounds=InputBounds(), reject=lambda r, d: rejected.append((r, d)))
    garbage = b"\x00\x01\x00\x00" + b"\xff" * 40
    for msg_type in (PointCloud2, JointTrajectory):
        try:
            decoded = SafetyNode.decode(node, garbage, msg_type)
        except Exception as error:  # noqa: BLE001
            raise AssertionError(f"{msg_type.__name__}: {error!r} escapes the callback") from error
        assert decoded is None
    assert [reason for reason, _ in rejected] == [Reason.MALFORMED, Reason.MALFORMED]


@pytest.mark.parametrize("count", [2**31, 2**32 - 1])
def test_a_candidate_table_whose_field_count_numpy_refuses_is_malformed_not_a_crash(count):
    """Session 30's audit: 16 bytes (1 x 1 x 1, within every bound) with ``PointField.count`` = 2**31 made numpy
    raise a plain ValueError in ``cloud_dtype``, which ``on_candidates`` did not catch: the safety node died."""
    import array

    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import PointCloud2, PointField

    from armpilot.safety.input_bounds import InputBounds
    from ros_nodes.safety_node import SafetyNode

    msg = PointCloud2(height=1, width=1, point_step=16, row_step=16, is_bigendian=False)
    msg.fields = [PointField(name="time_from_start", offset=0, datatype=PointField.FLOAT64, count=1),
                  PointField(name="joint1", offset=8, datatype=PointField.FLOAT64, count=count)]
    msg.data = array.array("B", bytes(16))
    rejected: list[tuple[str, str]] = []
    node = SimpleNamespace(bounds=InputBounds(), reject=lambda r, d: rejected.append((r, d)))
    node.decode = lambda raw, msg_type: SafetyNode.decode(node, raw, msg_type)
    SafetyNode.on_candidates(node, serialize_message(msg))
    assert [reason for reason, _ in rejected] == [Reason.MALFORMED] and "joint1" in rejected[0][1]
