"""Replay: the player's order and pacing (pure), and the player node over DDS."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from itertools import islice
from pathlib import Path

import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from armpilot.graph import load_graphs, resolve
from armpilot.recording.config import QOS_PRESETS
from armpilot.recording.player import EpisodePlayer, PlayerError
from armpilot.recording.replay_report import Command, mean_abs_difference

TS = get_typestore(Stores.ROS2_KILTED)
T = TS.types
JS, EPISODE, CMD, IMG = "/joint_states", "/sim/episode", "/arm_controller/joint_trajectory", \
    "/camera/camera/color/image_raw"
TYPES = {JS: "sensor_msgs/msg/JointState", EPISODE: "std_msgs/msg/String",
         CMD: "trajectory_msgs/msg/JointTrajectory", IMG: "sensor_msgs/msg/Image"}
PRESET = {JS: "state", EPISODE: "latched", CMD: "command", IMG: "camera"}


def _joint_state(t_ns: int):
    stamp = T["builtin_interfaces/msg/Time"](sec=t_ns // 10**9, nanosec=t_ns % 10**9)
    return T["sensor_msgs/msg/JointState"](header=T["std_msgs/msg/Header"](stamp=stamp, frame_id=""),
                                           name=["j1"], position=np.array([t_ns / 1e9]),
                                           velocity=np.zeros(0), effort=np.zeros(0))


def _message(topic: str, t_ns: int):
    if topic == JS:
        return _joint_state(t_ns)
    if topic == EPISODE:
        return T["std_msgs/msg/String"](data=json.dumps({"task": "reach", "seed": 3}))
    if topic == CMD:
        return T["trajectory_msgs/msg/JointTrajectory"](header=T["std_msgs/msg/Header"](
            stamp=T["builtin_interfaces/msg/Time"](sec=0, nanosec=0), frame_id=""), joint_names=["j1"], points=[])
    return T["sensor_msgs/msg/Image"](header=T["std_msgs/msg/Header"](
        stamp=T["builtin_interfaces/msg/Time"](sec=0, nanosec=0), frame_id=""), height=1, width=1,
        encoding="mono8", is_bigendian=0, step=1, data=np.zeros(1, np.uint8))


def write_bag(folder: Path, rows: list[tuple[str, int]]) -> Path:
    """A bag with ``rows`` (topic, receive time ns) written in the given order."""
    with Writer(folder, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conns = {t: writer.add_connection(t, TYPES[t], typestore=TS, offered_qos_profiles=[QOS_PRESETS[PRESET[t]]])
                 for t in dict.fromkeys(t for t, _ in rows)}
        for topic, t_ns in rows:
            writer.write(conns[topic], t_ns, TS.serialize_cdr(_message(topic, t_ns), TYPES[topic]))
    return folder


S = 10**9


@pytest.fixture
def bag(tmp_path: Path) -> Path:
    rows = [(EPISODE, 5 * S)] + [(t, 5 * S + k * S // 10) for k in range(11) for t in (JS, CMD, IMG)]
    return write_bag(tmp_path / "episode_000000", rows)


def test_schedule_follows_recorded_pace_and_filters_outputs(bag: Path) -> None:
    player = EpisodePlayer(bag)
    assert set(player.topics) == {JS, EPISODE, IMG}  # the recorded command is regenerated, not played
    assert player.topics[EPISODE].qos == "latched" and player.topics[JS].qos == "state"
    items = list(player.schedule(100.0))
    assert len(items) == 1 + 2 * 11 and CMD not in {i.message.topic for i in items}
    for item in items:
        assert item.due == pytest.approx(100.0 + (item.message.t_ns - 5 * S) / 1e9)
    assert [i.due for i in items] == sorted(i.due for i in items)
    assert items[0].message.topic == EPISODE


def test_rate_two_halves_the_gaps_and_topics_select(bag: Path) -> None:
    items = list(EpisodePlayer(bag, [JS, CMD]).schedule(0.0, rate=2.0))
    assert {i.message.topic for i in items} == {JS, CMD}
    assert items[-1].due == pytest.approx(0.5)
    with pytest.raises(ValueError, match="rate"):
        next(EpisodePlayer(bag).schedule(0.0, rate=0.0))
    with pytest.raises(PlayerError, match="episode_000000.*no topic"):
        EpisodePlayer(bag, ["/nope"])


def test_loop_restarts_after_the_last_message(bag: Path) -> None:
    items = list(islice(EpisodePlayer(bag, [JS]).schedule(0.0, loop=True), 33))
    assert [i.loop_pass for i in items] == [0] * 11 + [1] * 11 + [2] * 11
    assert items[11].due == pytest.approx(1.0) and items[21].due == pytest.approx(2.0)
    assert items[11].message.t_ns == 5 * S and not any(i.jumped for i in items)


def test_backwards_jump_is_warned_and_sent_at_once(tmp_path: Path) -> None:
    stamps = [0, S // 10, S // 10, 2 * S // 10, S // 20, 3 * S // 20]  # a duplicate, then back 0.15 s
    folder = write_bag(tmp_path / "episode_000004", [(JS, t) for t in stamps])
    warnings: list[str] = []
    items = list(EpisodePlayer(folder, warn=warnings.append).schedule(0.0))
    assert [i.message.t_ns for i in items] == stamps  # recorded (receive) order, not sorted
    assert [i.due for i in items] == pytest.approx([0.0, 0.1, 0.1, 0.2, 0.2, 0.3])
    assert [i.jumped for i in items] == [False] * 4 + [True, False]
    assert len(warnings) == 1 and "episode_000004" in warnings[0] and "jumps back" in warnings[0]


def test_missing_and_truncated_bags_name_the_folder(bag: Path, tmp_path: Path) -> None:
    with pytest.raises(PlayerError, match="episode_000009 does not exist"):
        EpisodePlayer(tmp_path / "episode_000009")
    (tmp_path / "episode_000001").mkdir()
    with pytest.raises(PlayerError, match="episode_000001 has no metadata.yaml"):
        EpisodePlayer(tmp_path / "episode_000001")
    mcap = next(bag.glob("*.mcap"))
    mcap.write_bytes(mcap.read_bytes()[:-200])
    with pytest.raises(PlayerError, match=str(bag)):
        list(EpisodePlayer(bag).messages())


def test_agreement_matches_nearest_stamp() -> None:
    recorded = [Command(k * S // 10, {"a": 0.1 * k, "b": 0.0}) for k in range(10)]
    replayed = [Command(k * S // 10 + S // 100, {"a": 0.1 * k + 0.02}) for k in range(10)] + [Command(50 * S, {"a": 0})]
    diff, matched = mean_abs_difference(recorded, replayed)
    assert matched == 10 and diff == pytest.approx(0.02)
    assert mean_abs_difference(recorded, []) == (None, 0)


def test_replay_graph_is_unconnected_and_on_sim_time() -> None:
    nodes = {n.name: n for n in resolve(load_graphs()["replay"], {"bag": "/data/episode_000002", "rate": "2"})}
    assert nodes["player"].parameters == {"bag": "/data/episode_000002", "rate": 2.0}
    assert ("/arm_controller/joint_trajectory", "/replay/arm_controller/joint_trajectory") in nodes["safety"].remappings
    assert all(nodes[n].parameters["use_sim_time"] is True for n in ("perception", "tracks", "policy", "safety"))


@pytest.mark.graph
@pytest.mark.timeout(120)
def test_player_node_publishes_recorded_stamps_and_clock(tmp_path: Path) -> None:
    import rclpy
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import JointState
    from std_msgs.msg import String

    from armpilot.bringup import ros_environment
    from armpilot.graph import NodeSpec, ros_arguments
    from armpilot.paths import share_dir
    from armpilot.ros_nodes import qos
    from graph_harness import Probe, unique_domain_id

    t0 = 1000 * S
    stamps = [t0 + k * S // 100 for k in range(151)]  # 100 Hz for 1.5 s
    folder = write_bag(tmp_path / "episode_000000", [(EPISODE, t0)] + [(JS, t) for t in stamps])
    env = ros_environment(unique_domain_id())
    spec = NodeSpec("player", "player_node", parameter_files=("player.yaml",),
                    parameters={"bag": str(folder), "wait_for_subscribers_s": 20.0})
    command = [sys.executable, "-m", "armpilot.ros_nodes.player_node"] + ros_arguments(spec, share_dir() / "config")
    keys = ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE", "FASTDDS_BUILTIN_TRANSPORTS")
    saved = {k: os.environ.get(k) for k in keys}
    os.environ.update({k: env[k] for k in keys})
    log = open(tmp_path / "player.log", "wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    rclpy.init()
    probe = Probe()
    try:
        joints: list[int] = []
        clock: list[int] = []
        episodes: list[str] = []
        probe.create_subscription(JointState, JS,
                                  lambda m: joints.append(m.header.stamp.sec * S + m.header.stamp.nanosec),
                                  qos.STATE_QOS)
        probe.create_subscription(Clock, "/clock", lambda m: clock.append(m.clock.sec * S + m.clock.nanosec),
                                  qos.CLOCK_QOS)
        probe.create_subscription(String, EPISODE, lambda m: episodes.append(m.data), qos.LATCHED_QOS)
        probe.spin_until(lambda: process.poll() is not None, 60.0, "the player to finish")
        probe.spin_for(0.3)
    finally:
        probe.executor_.shutdown()
        probe.destroy_node()
        rclpy.shutdown()
        if process.poll() is None:
            process.kill()
        process.wait()
        log.close()
        for key, value in saved.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)
    output = (tmp_path / "player.log").read_text()
    assert process.returncode == 0, output
    assert joints == stamps, output  # every message, with its recorded stamp, in order (reliable)
    assert json.loads(episodes[-1])["seed"] == 3
    assert len(clock) > 50 and clock == sorted(clock) and clock[0] >= t0 and clock[-1] == stamps[-1]
    assert f"{JS}=151" in output and f"{EPISODE}=1" in output
