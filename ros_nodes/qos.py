"""Named QoS profiles, in one place, so publishers and subscribers always match.

=============== ============================ =======================================
Profile         Policy                       Topics
=============== ============================ =======================================
``CAMERA_QOS``  reliable, keep last 2,       camera color/depth images and their
                volatile                     camera_info (realsense2_camera's default)
``SENSOR_QOS``  best effort, keep last 5,    small high-rate sensor streams that may
                volatile                     drop samples (``qos_profile_sensor_data``)
``STATE_QOS``   reliable, keep last 10,      ``/joint_states``, task success,
                volatile                     privileged object poses, diagnostics
``COMMAND_QOS`` reliable, keep last 10,      joint trajectory commands (policy ->
                volatile                     safety node -> controller)
``LATCHED_QOS`` reliable, transient local,   slow "latest value" topics that late
                keep last 1                  joiners must get (episode info)
``CLOCK_QOS``   best effort, keep last 1,    ``/clock`` (simulation time)
                volatile
=============== ============================ =======================================

Why cameras are reliable: measured here, a 640x480 rgb8 image (0.9 MB) sent
best effort between two processes arrived at 0.2-1.8 Hz of 15 Hz (fragments
lost), reliable at the full 15.6 Hz; keep-last 2 bounds the queue so a slow
reader gets fresh frames, not a backlog. Compatibility: a best-effort
subscriber accepts a reliable publisher, not the reverse. ``CLOCK_QOS`` is the
profile rclpy's ``TimeSource`` subscribes ``/clock`` with (``QoSProfile(depth=1,
reliability=BEST_EFFORT)`` in ``rclpy/time_source.py``; rclcpp's ``ClockQoS`` is
the same), so ``use_sim_time`` nodes receive the simulator's clock.
"""

from __future__ import annotations

from typing import Any, Callable

from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSPolicyKind, QoSProfile, ReliabilityPolicy

CAMERA_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=2,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)
"""Camera images and camera_info: every frame delivered, at most two queued."""

SENSOR_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=5,
    reliability=ReliabilityPolicy.BEST_EFFORT,
    durability=DurabilityPolicy.VOLATILE,
)
"""Camera streams: drop stale frames rather than queue or retransmit them."""

STATE_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=10,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)
"""Robot/world state such as ``/joint_states``."""

COMMAND_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=10,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)
"""Commands (JointTrajectory chunks): every message must arrive, none replayed."""

LATCHED_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)
"""Latest-value topics: late subscribers get the last message."""

CLOCK_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    reliability=ReliabilityPolicy.BEST_EFFORT,
    durability=DurabilityPolicy.VOLATILE,
)
"""``/clock``: matches rclpy ``TimeSource``'s subscription."""


def relaxed(profile: QoSProfile, policy: int) -> QoSProfile | None:
    """``profile`` with the incompatible ``policy`` (a ``QoSPolicyKind``) asking for less: volatile instead of
    transient local, best effort instead of reliable; None for a policy this package never sets."""
    if policy == QoSPolicyKind.DURABILITY and profile.durability != DurabilityPolicy.VOLATILE:
        return QoSProfile(history=profile.history, depth=profile.depth, reliability=profile.reliability,
                          durability=DurabilityPolicy.VOLATILE)
    if policy == QoSPolicyKind.RELIABILITY and profile.reliability != ReliabilityPolicy.BEST_EFFORT:
        return QoSProfile(history=profile.history, depth=profile.depth, reliability=ReliabilityPolicy.BEST_EFFORT,
                          durability=profile.durability)
    return None


def subscribe_any_publisher(node: Any, msg_type: type, topic: str, callback: Callable[[Any], None],
                            profile: QoSProfile) -> list:
    """``node.create_subscription`` with ``profile`` that also hears publishers offering less.

    A user's client may not offer what armpilot's profile asks: ``ros2 topic pub`` or RViz's goal tool publish
    a goal volatile (the latched ``/policy/goal`` subscription never matched them), Gazebo's camera plugins
    publish best effort. When a publisher on ``topic`` is incompatible, a second subscription asking only
    for what it lacks (``relaxed``) is added and a warning names the topic and the policy. A message from a
    publisher that both match arrives twice: for the latest-value and sensor topics this is used on, that
    is the same value again. Returns the subscriptions (the list grows as fallbacks are added).
    """
    subscriptions: list = []
    asked = {_key(profile)}

    def add(asking: QoSProfile) -> None:
        events = SubscriptionEventCallbacks(incompatible_qos=lambda event: on_incompatible(asking, event))
        subscriptions.append(node.create_subscription(msg_type, topic, callback, asking, event_callbacks=events))

    def on_incompatible(asking: QoSProfile, event: Any) -> None:
        fallback = relaxed(asking, int(event.last_policy_kind))
        if fallback is None or _key(fallback) in asked:
            return
        asked.add(_key(fallback))
        policy = QoSPolicyKind(int(event.last_policy_kind)).name.lower()
        missed = ": a value published before this node started is not received" \
            if fallback.durability != asking.durability else ""
        node.get_logger().warning(f"a publisher on {topic} offers less {policy} than {_describe(asking)}; also "
                                  f"listening {_describe(fallback)}{missed}")
        add(fallback)

    add(profile)
    return subscriptions


def report_incompatible(node: Any, topic: str, profile: QoSProfile, consequence: str) -> Callable[[Any], None]:
    """An ``incompatible_qos`` event callback for a subscription that keeps its ``profile`` (the safety node's
    inputs, the recorder's): a publisher offering less is logged as an error naming the topic, the policy and
    ``consequence`` (rclpy's own line names neither)."""
    def report(event: Any) -> None:
        policy = QoSPolicyKind(int(event.last_policy_kind)).name.lower()
        node.get_logger().error(f"a publisher on {topic} offers less {policy} than {_describe(profile)}: nothing it "
                                f"sends arrives; {consequence}")
    return report


def _key(profile: QoSProfile) -> tuple:
    return profile.reliability, profile.durability


def _describe(profile: QoSProfile) -> str:
    return f"{profile.reliability.name.lower()}, {profile.durability.name.lower()}"


__all__ = ["CAMERA_QOS", "SENSOR_QOS", "STATE_QOS", "COMMAND_QOS", "LATCHED_QOS", "CLOCK_QOS", "relaxed",
           "report_incompatible", "subscribe_any_publisher"]
