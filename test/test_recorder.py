"""Episode recorder: bags read back by rosbags and mcap, numbering, discard, errors, crash recovery,
and the recorder node over real DDS."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from mcap.reader import make_reader
from rclpy.serialization import serialize_message
from rosbags.highlevel import AnyReader
from rosbags.typesys.store import SerdeError
from sensor_msgs.msg import Image, JointState

from armpilot.recording import EpisodeRecorder, RecorderConfig, RecordingError, TopicSpec, read_cdr
from armpilot.recording.config import QOS_PRESETS
from armpilot.recording.episode_bag import default_typestore

JS, IMG, EP = "/joint_states", "/camera/camera/color/image_raw", "/sim/episode"
TOPICS = (TopicSpec(JS, "sensor_msgs/msg/JointState", "state"), TopicSpec(IMG, "sensor_msgs/msg/Image", "camera"),
          TopicSpec(EP, "std_msgs/msg/String", "latched"))


def joint_state(i: int, full: bool = True) -> bytes:
    n = 3
    msg = JointState(name=["j1", "j2", "j3"], position=[float(i), 0.5, -0.5])
    if full:
        msg.velocity, msg.effort = [0.1] * n, [0.0] * n
    return bytes(serialize_message(msg))


def image(i: int, width: int = 64, height: int = 48) -> bytes:
    data = np.full(height * width * 3, i % 256, np.uint8).tobytes()
    return bytes(serialize_message(Image(height=height, width=width, encoding="rgb8", step=width * 3, data=data)))


def record(rec: EpisodeRecorder, n_js: int, n_img: int, t0: int = 10**9) -> Path:
    rec.start()
    for i in range(n_js):
        rec.write(JS, joint_state(i, full=i % 2 == 0), t0 + i * 10**7)
    for i in range(n_img):
        rec.write(IMG, image(i), t0 + i * 66 * 10**6)
    return rec.stop()


def rosbags_counts(bag: Path) -> tuple[Counter, dict]:
    """Messages per topic read with rosbags, and the last message of each type deserialised."""
    counts: Counter = Counter()
    last = {}
    with AnyReader([bag], default_typestore=default_typestore()) as reader:
        for connection, _, raw in reader.messages():
            counts[connection.topic] += 1
            last[connection.msgtype] = read_cdr(reader.typestore, raw, connection.msgtype)
    return counts, last


def mcap_counts(bag: Path) -> Counter:
    """Messages per topic read with mcap's reader (summary-free iteration) and its statistics."""
    counts: Counter = Counter()
    (file,) = bag.glob("*.mcap")
    with open(file, "rb") as handle:
        reader = make_reader(handle)
        for _, channel, _ in reader.iter_messages():
            counts[channel.topic] += 1
        summary = reader.get_summary()
    stats = {summary.channels[cid].topic: n for cid, n in summary.statistics.channel_message_counts.items() if n}
    assert stats == dict(counts)
    return counts


def test_bag_reads_back_with_rosbags_and_mcap(tmp_path: Path) -> None:
    rec = EpisodeRecorder(tmp_path, TOPICS)
    bag = record(rec, 40, 7)
    assert bag == tmp_path / "episode_000000" and sorted(p.name for p in bag.iterdir()) == [
        "episode_000000.mcap", "metadata.yaml"]
    assert not list(tmp_path.glob(".*partial"))
    counts, last = rosbags_counts(bag)
    assert counts == {JS: 40, IMG: 7}
    assert list(last["sensor_msgs/msg/JointState"].name) == ["j1", "j2", "j3"]
    assert last["sensor_msgs/msg/JointState"].position[0] == 39.0
    img = last["sensor_msgs/msg/Image"]
    assert (img.width, img.height, img.encoding, int(img.data[0])) == (64, 48, "rgb8", 6)
    assert mcap_counts(bag) == {JS: 40, IMG: 7}
    meta = (bag / "metadata.yaml").read_text()
    assert "storage_identifier: mcap" in meta and "message_count: 47" in meta and "reliability: reliable" in meta
    assert rec.stats.messages[JS] == 40 and rec.stats.finished_episodes == 1 and not rec.stats.recording


def test_chunks_carry_crcs_and_a_flipped_byte_is_caught(tmp_path: Path) -> None:
    from mcap.records import Chunk
    from mcap.stream_reader import CRCValidationError, StreamReader

    from armpilot.dataset.bag_reader import BagError, read_episode

    rec = EpisodeRecorder(tmp_path, TOPICS, chunk_interval_s=0.0)  # a chunk per message
    bag = record(rec, 40, 7)
    (file,) = bag.glob("*.mcap")
    with open(file, "rb") as handle:
        chunks = [r for r in StreamReader(handle, emit_chunks=True).records if isinstance(r, Chunk)]
    assert len(chunks) > 10 and all(c.uncompressed_crc != 0 for c in chunks)
    data = bytearray(file.read_bytes())
    target = data.find(b"rgb8", len(data) // 2)  # inside a late chunk's (uncompressed) image
    data[target + 40] ^= 0xFF
    file.write_bytes(bytes(data))
    with open(file, "rb") as handle, pytest.raises(CRCValidationError):
        for _ in StreamReader(handle, validate_crcs=True).records:
            pass
    with pytest.raises(BagError, match="(?i)crc"):
        read_episode(bag)


def test_mcap_ros2_decoder_reads_the_bag(tmp_path: Path) -> None:
    from mcap_ros2.decoder import DecoderFactory

    bag = record(EpisodeRecorder(tmp_path, TOPICS), 4, 2)
    with open(bag / "episode_000000.mcap", "rb") as handle:
        decoded = [(c.topic, m) for _, c, _, m in make_reader(handle, decoder_factories=[DecoderFactory()])
                   .iter_decoded_messages()]
    assert [t for t, _ in decoded].count(JS) == 4 and decoded[-1][1].width == 64
    assert [m.position[0] for t, m in decoded if t == JS] == [0.0, 1.0, 2.0, 3.0]


def test_fastdds_padding_needs_tolerant_read() -> None:
    """A JointState without velocities carries trailing alignment bytes rosbags' strict check rejects."""
    store = default_typestore()
    with pytest.raises(SerdeError):
        store.deserialize_cdr(joint_state(1, full=False), "sensor_msgs/msg/JointState")
    assert read_cdr(store, joint_state(1, full=False), "sensor_msgs/msg/JointState").position[0] == 1.0
    assert store.deserialize_cdr(joint_state(1), "sensor_msgs/msg/JointState").position[0] == 1.0


def test_numbering_continues_and_discard_deletes(tmp_path: Path) -> None:
    rec = EpisodeRecorder(tmp_path, TOPICS)
    record(rec, 2, 0)
    partial = rec.start()
    rec.write(JS, joint_state(0), 1)
    assert partial == tmp_path / ".episode_000001.partial" and partial.is_dir()
    assert rec.discard() == partial and not partial.exists()
    with pytest.raises(RecordingError, match="not recording"):
        rec.stop()
    assert rec.write(JS, joint_state(0), 1) is False
    assert record(rec, 1, 0).name == "episode_000001"
    reopened = EpisodeRecorder(tmp_path, TOPICS)
    assert record(reopened, 1, 0).name == "episode_000002"
    assert reopened.recovered == []


def test_latched_and_qos_presets_mirror_qos_module() -> None:
    from rclpy.qos import DurabilityPolicy, ReliabilityPolicy

    from armpilot.ros_nodes import qos

    for name, profile in {"camera": qos.CAMERA_QOS, "sensor": qos.SENSOR_QOS, "state": qos.STATE_QOS,
                          "command": qos.COMMAND_QOS, "latched": qos.LATCHED_QOS}.items():
        preset = QOS_PRESETS[name]
        assert preset.depth == profile.depth
        assert (preset.reliability.name == "RELIABLE") == (profile.reliability == ReliabilityPolicy.RELIABLE)
        assert (preset.durability.name == "TRANSIENT_LOCAL") == (profile.durability == DurabilityPolicy.TRANSIENT_LOCAL)


def test_config_validation() -> None:
    assert "/clock" not in RecorderConfig().topics and len(RecorderConfig().topic_specs()) == 15
    with pytest.raises(ValueError, match="same length"):
        RecorderConfig(topics=("/a",), types=(), qos_profiles=())
    with pytest.raises(ValueError, match="pkg/msg/Type"):
        RecorderConfig(topics=("/a",), types=("JointState",), qos_profiles=("state",))
    with pytest.raises(ValueError, match="qos 'fast'"):
        RecorderConfig(topics=("/a",), types=("std_msgs/msg/Bool",), qos_profiles=("fast",))


def test_unwritable_output_folder_is_named(tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(RecordingError, match=f"cannot create the output folder {blocker}/episodes"):
        EpisodeRecorder(blocker / "episodes", TOPICS)
    rec = EpisodeRecorder(tmp_path / "out", TOPICS)
    (tmp_path / "out").rename(tmp_path / "gone")  # the folder is replaced by a file (root ignores chmod)
    (tmp_path / "out").write_text("not a folder")
    with pytest.raises(RecordingError, match=r"cannot start episode_000000 in .*out/\.episode_000000\.partial"):
        rec.start()


class _FullDisk:
    """A file whose writes fail with ENOSPC."""

    def __init__(self, inner) -> None:
        self.inner = inner

    def write(self, _data) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name: str):
        return getattr(self.inner, name)


def test_disk_full_stops_episode_and_keeps_earlier(tmp_path: Path) -> None:
    first = record(EpisodeRecorder(tmp_path, TOPICS), 5, 1)
    rec = EpisodeRecorder(tmp_path, TOPICS)  # a new recorder (process): the earlier episode is still counted
    partial = rec.start()
    rec._writer.writer.storage.bio = _FullDisk(rec._writer.writer.storage.bio)  # type: ignore[union-attr]
    rec.write(JS, joint_state(0), 1)
    with pytest.raises(RecordingError, match=r"episode_000001 stopped: disk full \(ENOSPC\).*episode_000001\.partial; "
                                             r"1 earlier episode\(s\)"):
        rec.flush()
    assert not rec.recording and rec.write(JS, joint_state(0), 2) is False
    assert rosbags_counts(first)[0] == {JS: 5, IMG: 1}
    assert rec.discard() == partial and not partial.exists()


def test_a_full_disk_while_writing_the_latched_messages_is_a_failed_start_not_a_crash() -> None:
    """Before session 30 ``on_start`` wrote the latched messages (goal, episode, camera_info) outside its
    ``RecordingError`` handling: a disk that filled right then raised out of the service callback."""
    from types import SimpleNamespace

    from std_srvs.srv import Trigger

    from ros_nodes.recorder_node import RecorderNode

    def full(*_args) -> None:
        raise RecordingError("episode_000003 stopped: disk full (ENOSPC); 3 earlier episode(s) are intact")

    errors: list[str] = []
    node = SimpleNamespace(recorder=SimpleNamespace(start=lambda: Path("x.partial"), write=full),
                           latched={"/policy/goal": (b"goal", 1)}, now_ns=lambda: 5,
                           get_logger=lambda: SimpleNamespace(error=errors.append, info=errors.append))
    response = RecorderNode.on_start(node, Trigger.Request(), Trigger.Response())
    assert not response.success and "disk full" in response.message and errors == [response.message]




def crash_child_script(out: Path) -> str:
    return textwrap.dedent(f"""
        import sys
        from rclpy.serialization import serialize_message
        from sensor_msgs.msg import JointState
        from armpilot.recording import EpisodeRecorder, TopicSpec
        rec = EpisodeRecorder({str(out)!r}, [TopicSpec("{JS}", "sensor_msgs/msg/JointState", "state")],
                              chunk_interval_s=0.05)
        data = lambda i: bytes(serialize_message(JointState(name=["a"], position=[float(i)], velocity=[0.0],
                                                          effort=[0.0])))
        rec.start()
        for i in range(30):
            rec.write("{JS}", data(i), 10**9 + i)
        rec.stop()
        rec.start()
        i = 0
        while True:
            rec.write("{JS}", data(i), 2 * 10**9 + i)
            i += 1
            if i == 200:
                rec.flush()
                print("FLUSHED", i, flush=True)
    """)


def test_sigkilled_writer_leaves_earlier_episodes_and_recovers_partial(tmp_path: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", crash_child_script(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline()  # type: ignore[union-attr]
        assert line.startswith("FLUSHED"), line
        time.sleep(0.2)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL
    assert (tmp_path / ".episode_000001.partial").is_dir() and not (tmp_path / "episode_000001").exists()
    rec = EpisodeRecorder(tmp_path, TOPICS)
    assert rosbags_counts(tmp_path / "episode_000000")[0] == {JS: 30}
    (result,) = rec.recovered
    assert (result.episode, result.action, result.path) == (1, "recovered", tmp_path / "episode_000001")
    counts = rosbags_counts(result.path)[0]
    assert counts[JS] == result.messages >= 200 and mcap_counts(result.path) == counts
    assert "armpilot.recovered: 'true'" in (result.path / "metadata.yaml").read_text()
    assert not list(tmp_path.glob(".episode_*")) and record(rec, 1, 0).name == "episode_000002"


def test_unreadable_leftover_is_moved_aside_and_finished_one_renamed(tmp_path: Path) -> None:
    junk = tmp_path / ".episode_000003.partial" / "episode_000003"
    junk.mkdir(parents=True)
    (junk / "episode_000003.mcap").write_bytes(b"\x89MCAP0\r\n garbage")
    done = EpisodeRecorder(tmp_path / "src", TOPICS)
    bag = record(done, 3, 0)
    finished = tmp_path / ".episode_000004.partial"
    finished.mkdir()
    bag.rename(finished / "episode_000004")
    rec = EpisodeRecorder(tmp_path, TOPICS)
    actions = {r.episode: r.action for r in rec.recovered}
    assert actions == {3: "moved_aside", 4: "renamed"}
    assert len(list((tmp_path / ".crashed").glob("episode_000003-*"))) == 1
    assert rosbags_counts(tmp_path / "episode_000004")[0] == {JS: 3}
    assert rec.start().name == ".episode_000005.partial"
    rec.discard()


def _call(probe, client, what: str, resend_after: float = 5.0) -> str:
    from std_srvs.srv import Trigger

    response = probe.call(client, Trigger.Request(), what, resend_after=resend_after)
    if not response.success and response.message.startswith("already recording"):
        return response.message  # a resent start: the first one started the episode, its answer was lost
    assert response.success, response.message
    return response.message


@pytest.mark.graph
@pytest.mark.timeout(60)
def test_recorder_node_records_over_dds_and_survives_sigkill(tmp_path: Path) -> None:
    from std_srvs.srv import Trigger

    from armpilot.graph import NodeSpec
    from armpilot.ros_nodes import qos
    from graph_harness import running_graph

    out = tmp_path / "episodes"
    spec = NodeSpec("recorder", "recorder_node", parameters={
        "output_dir": str(out), "topics": f"['{JS}', '{IMG}']",
        "types": "['sensor_msgs/msg/JointState', 'sensor_msgs/msg/Image']",
        "qos_profiles": "['state', 'camera']", "chunk_interval_s": 0.2})
    with running_graph((spec,), tmp_path / "logs") as (supervisor, probe):
        pub_js = probe.create_publisher(JointState, JS, qos.STATE_QOS)
        pub_img = probe.create_publisher(Image, IMG, qos.CAMERA_QOS)
        sent = Counter()
        msg_js = JointState(name=["j1", "j2"], position=[0.1, 0.2], velocity=[0.0, 0.0], effort=[0.0, 0.0])
        data = np.zeros(320 * 240 * 3, np.uint8).tobytes()
        msg_img = Image(height=240, width=320, encoding="rgb8", step=960, data=data)

        def send(pub, msg, topic):
            pub.publish(msg)
            sent[topic] += 1
        probe.create_timer(0.01, lambda: send(pub_js, msg_js, JS))
        probe.create_timer(1 / 15, lambda: send(pub_img, msg_img, IMG))
        start = probe.create_client(Trigger, "/recorder/start")
        stop = probe.create_client(Trigger, "/recorder/stop")
        probe.spin_until(lambda: pub_js.get_subscription_count() and pub_img.get_subscription_count(), 20.0,
                         "the recorder's subscriptions")
        assert "episode_000000" in _call(probe, start, "start")
        before = sent.copy()
        probe.spin_for(2.0)
        during = {t: sent[t] - before[t] for t in (JS, IMG)}
        message = _call(probe, stop, "stop", resend_after=30.0)  # not resent: a second stop fails
        assert f"{out}/episode_000000" in message
        counts = rosbags_counts(out / "episode_000000")[0]
        assert mcap_counts(out / "episode_000000") == counts
        for topic in (JS, IMG):
            assert abs(counts[topic] - during[topic]) <= max(2, 0.1 * during[topic]), (topic, counts, during)
        _call(probe, start, "start")
        probe.spin_for(1.5)
        os.kill(supervisor.pids()["recorder"], signal.SIGKILL)
        probe.spin_for(0.2)
    assert rosbags_counts(out / "episode_000000")[0] == counts
    assert (out / ".episode_000001.partial").is_dir()
    (result,) = EpisodeRecorder(out, TOPICS[:2]).recovered
    assert result.action == "recovered" and result.messages > 50
    recovered = rosbags_counts(result.path)[0]
    assert sum(recovered.values()) == result.messages and recovered[JS] > 50


def test_robot_identity_travels_from_the_bag_to_the_dataset(tmp_path: Path) -> None:
    from armpilot.dataset.bag_reader import bag_custom_data
    from armpilot.dataset.convert import recorded_robot
    from armpilot.policies.diffusion_training import build_config
    from armpilot.robot_profile import ROBOT_KEY, load_profile, robot_identity

    identity = robot_identity(load_profile("panda"))
    first = record(EpisodeRecorder(tmp_path / "a", TOPICS, custom=identity), 3, 1)
    second = record(EpisodeRecorder(tmp_path / "a", TOPICS, custom=identity), 3, 1)
    assert bag_custom_data(first)[ROBOT_KEY] == "panda" and bag_custom_data(second) == bag_custom_data(first) | {
        "armpilot.episode": "1"}
    assert recorded_robot([first, second]) == identity
    other = record(EpisodeRecorder(tmp_path / "b", TOPICS, custom=robot_identity(load_profile("ur5"))), 3, 1)
    with pytest.raises(ValueError, match="different robots.*panda.*ur5"):
        recorded_robot([first, other])
    info = {"features": {"observation.state": {"names": list(load_profile("panda").joints)}}, "fps": 15}
    assert build_config({**info, "robot_type": "panda"}, {}).robot == "panda"
    assert build_config({**info, "robot_type": "armpilot_arm"}, {}).robot == "armpilot"
