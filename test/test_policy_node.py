"""The policy node with the diffusion backend as its own process over DDS: candidates, NaN, bad checkpoints."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Pose, PoseArray
from sensor_msgs.msg import Image, JointState, PointCloud2
from std_msgs.msg import String

from armpilot.bringup import NodeFailed
from armpilot.graph import load_graphs, resolve
from armpilot.robot import CONTROLLED_JOINTS
from armpilot.ros_nodes import qos, topics
from armpilot.ros_nodes.candidate_conversions import candidates_from_msg
from armpilot.ros_nodes.conversions import sec_to_stamp
from diffusion_data import train_tiny
from graph_harness import running_graph



def policy_node(**arguments: str):
    """The sim graph's policy node on wall-clock time (no /clock in these tests)."""
    node = next(n for n in resolve(load_graphs()["sim"], {"policy": "diffusion", **arguments}) if n.name == "policy")
    return replace(node, parameters={**node.parameters, "use_sim_time": False})


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("policy_node")
    return train_tiny(root)


def _start_failure(node, log_dir: Path, within: float) -> NodeFailed:
    """Run ``node`` alone until it exits (it must, within ``within`` s); its NodeFailed."""
    with running_graph((node,), log_dir) as (graph, probe):
        deadline = time.monotonic() + within  # torch and diffusers load slowly on a busy 2-core machine
        with pytest.raises(NodeFailed) as failure:
            while time.monotonic() < deadline:
                graph.check()
                probe.spin_for(0.2)
    assert failure.value.code != 0
    return failure.value


@pytest.mark.graph
@pytest.mark.timeout(180)
def test_missing_checkpoint_stops_the_node_naming_it(tmp_path):
    missing = tmp_path / "no_such_checkpoint"
    failure = _start_failure(policy_node(checkpoint=str(missing)), tmp_path / "logs", 150)  # > 60 s with a CPU hog
    assert "no diffusion checkpoint" in str(failure) and str(missing) in str(failure)


@pytest.mark.graph
@pytest.mark.timeout(180)
def test_a_checkpoint_needing_a_feature_the_graph_cannot_feed_stops_the_node_naming_it(tmp_path, checkpoint):
    meta = json.loads((checkpoint / "policy.json").read_text())
    meta["features"]["observation.tracks"] = {"dtype": "float32", "shape": [32, 8, 3], "topic": "/perception/tracks"}
    forged = tmp_path / "tracks_policy"
    forged.mkdir()
    (forged / "policy.json").write_text(json.dumps(meta))
    (forged / "policy.safetensors").write_bytes((checkpoint / "policy.safetensors").read_bytes())
    failure = _start_failure(policy_node(checkpoint=str(forged)), tmp_path / "logs", 150)
    assert "'observation.tracks' from /perception/tracks" in str(failure)


@pytest.mark.graph
@pytest.mark.timeout(180)
@pytest.mark.parametrize("transition", ["rtc", "prefix"])
def test_a_transition_the_backend_cannot_do_stops_the_node_naming_it(tmp_path, checkpoint, transition):
    """rtc needs a backend that inpaints (not scripted); prefix a checkpoint trained with --prefix-frames."""
    arguments = {"policy": "scripted"} if transition == "rtc" else {"checkpoint": str(checkpoint)}
    failure = _start_failure(policy_node(transition=transition, **arguments), tmp_path / "logs", 150)
    assert f"transition '{transition}' needs" in str(failure)


def _joint_state(stamp: float, positions: np.ndarray) -> JointState:
    msg = JointState(name=list(CONTROLLED_JOINTS), position=[float(p) for p in positions])
    msg.header.stamp = sec_to_stamp(stamp)
    return msg


def _objects(stamp: float) -> PoseArray:
    msg = PoseArray(poses=[Pose()])
    msg.header.stamp = sec_to_stamp(stamp)
    msg.poses[0].position.x, msg.poses[0].position.z = 0.3, 0.05
    msg.poses[0].orientation.w = 1.0
    return msg


@pytest.mark.graph
@pytest.mark.timeout(180)
def test_candidates_from_the_diffusion_policy_and_nan_skips(tmp_path, checkpoint):
    node = policy_node(checkpoint=str(checkpoint), candidates="4")
    with running_graph((node,), tmp_path / "logs") as (graph, probe):
        joints = probe.create_publisher(JointState, topics.JOINT_STATES, qos.STATE_QOS)
        objects = probe.create_publisher(PoseArray, topics.PERCEPTION_OBJECTS, qos.STATE_QOS)
        episode = probe.create_publisher(String, topics.SIM_EPISODE, qos.LATCHED_QOS)
        received: list[PointCloud2] = []
        status: dict[str, str] = {}
        probe.create_subscription(PointCloud2, topics.POLICY_CANDIDATES, received.append, qos.COMMAND_QOS)

        def on_diagnostics(msg: DiagnosticArray) -> None:
            status.update({kv.key: kv.value for s in msg.status if s.name == "armpilot: policy" for kv in s.values})

        probe.create_subscription(DiagnosticArray, topics.DIAGNOSTICS, on_diagnostics, qos.STATE_QOS)
        probe.spin_until(lambda: joints.get_subscription_count() > 0 and episode.get_subscription_count() > 0,
                         30, "the policy node's subscriptions")
        start = time.time()
        episode.publish(String(data=json.dumps({"episode": 0, "seed": 0, "task": "reach", "start": start,
                                                "goal": [0.3, 0.0, 0.05]})))
        q = np.array([0.0, -0.3, 1.6, 0.0, 1.2, 0.0, 0.04])

        def feed(positions: np.ndarray, seconds: float) -> None:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                now = time.time()
                joints.publish(_joint_state(now, positions))
                objects.publish(_objects(now))
                probe.spin_for(0.02)

        deadline = time.monotonic() + 30
        while not received and time.monotonic() < deadline:
            feed(q, 0.2)
        graph.check()
        assert received, "no candidates from the diffusion policy node"
        table = candidates_from_msg(received[-1])
        assert table.positions.shape[0] == 4 and table.positions.shape[2] == 7
        assert np.all(np.isfinite(table.positions)) and np.all(table.times > 0)
        stamp = received[-1].header.stamp.sec + received[-1].header.stamp.nanosec * 1e-9
        assert stamp + table.times[0] > time.time() - 0.5  # anchored on a fresh observation, past points dropped
        bad = q.copy()
        bad[2] = np.nan
        count = len(received)
        feed(bad, 1.5)
        probe.spin_until(lambda: int(status.get("skipped_nan", 0)) > 0, 10, "skipped_nan in /diagnostics")
        assert len(received) <= count + 1  # at most one chunk that was already being computed
        assert float(status["inference_ms_p50"]) > 0
        graph.check()


@pytest.mark.graph
@pytest.mark.timeout(240)
def test_a_seeing_checkpoint_gets_the_camera_cloud_and_tracks_and_waits_for_all(tmp_path):
    from armpilot.features import COLOR, STATE
    from armpilot.perception.tracks import TRACK_DTYPE
    from armpilot.ros_nodes.conversions import image_to_msg, pointcloud_to_msg
    from diffusion_data import IMAGE_SIDE, goal_cloud, goal_image

    seeing = train_tiny(tmp_path / "seeing", steps=5, obs_keys=(STATE,), image_keys=(COLOR,),
                        image_size=IMAGE_SIDE, image_crop=IMAGE_SIDE - 4, use_points=True, use_tracks=True)
    with running_graph((policy_node(checkpoint=str(seeing)),), tmp_path / "logs") as (graph, probe):
        joints = probe.create_publisher(JointState, topics.JOINT_STATES, qos.STATE_QOS)
        objects = probe.create_publisher(PoseArray, topics.PERCEPTION_OBJECTS, qos.STATE_QOS)
        episode = probe.create_publisher(String, topics.SIM_EPISODE, qos.LATCHED_QOS)
        camera = probe.create_publisher(Image, topics.COLOR_IMAGE, qos.CAMERA_QOS)
        cloud = probe.create_publisher(PointCloud2, topics.PERCEPTION_POINTS, qos.CAMERA_QOS)
        tracks = probe.create_publisher(PointCloud2, topics.PERCEPTION_TRACKS, qos.CAMERA_QOS)
        received: list[PointCloud2] = []
        probe.create_subscription(PointCloud2, topics.POLICY_CANDIDATES, received.append, qos.COMMAND_QOS)
        probe.spin_until(lambda: all(p.get_subscription_count() > 0 for p in (camera, cloud, tracks)),
                         60, "the policy node subscribing to the camera, the cloud and the tracks")
        episode.publish(String(data=json.dumps({"episode": 0, "seed": 0, "task": "reach", "start": time.time(),
                                                "goal": [0.3, 0.0, 0.05]})))
        q = np.array([0.0, -0.3, 1.6, 0.0, 1.2, 0.0, 0.04])
        points = np.nan_to_num(goal_cloud(0.3))[:64]
        track = np.zeros(8, TRACK_DTYPE)  # one track, steps -7..0, moving along y
        track["track_id"], track["step"], track["x"], track["y"] = 3, np.arange(-7, 1), 0.4, np.linspace(0, 0.2, 8)
        log = tmp_path / "logs" / "policy.log"

        def feed(with_camera: bool, with_cloud: bool, with_tracks: bool) -> None:
            now = time.time()
            joints.publish(_joint_state(now, q))
            objects.publish(_objects(now))
            if with_camera:
                camera.publish(image_to_msg(goal_image(0.3), "rgb8", now))
            if with_cloud:
                cloud.publish(pointcloud_to_msg(points, now, "base_link"))
            if with_tracks:
                tracks.publish(pointcloud_to_msg(track, now, "base_link"))
            probe.spin_for(0.05)

        def warned(with_cloud: bool, named: tuple[str, ...], unnamed: tuple[str, ...]) -> bool:
            """Feeds the camera (and the cloud); whether a warning line names every topic of ``named``
            and none of ``unnamed``."""
            feed(True, with_cloud, False)
            lines = log.read_text().splitlines() if log.is_file() else []
            return any("nothing on" in line and all(t in line for t in named) and not any(t in line for t in unnamed)
                       for line in lines)

        missing = (topics.PERCEPTION_POINTS, topics.PERCEPTION_TRACKS)
        probe.spin_until(lambda: warned(False, missing, ()), 60, "the node naming the missing cloud and tracks")
        probe.spin_until(lambda: warned(True, missing[1:], missing[:1]), 60, "the node naming the missing tracks")
        assert not received, "no candidates while a sensor the checkpoint needs is missing"
        probe.spin_until(lambda: feed(True, True, True) or received, 60, "candidates once all three flow")
        graph.check()
