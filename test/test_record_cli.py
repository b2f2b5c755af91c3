"""``armpilot record`` -> bags two readers agree on -> ``armpilot convert`` -> the training loader."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from mcap.reader import make_reader
from rosbags.highlevel import AnyReader

from armpilot.dataset.loader import LeRobotV3Dataset
from graph_harness import unique_domain_id

ARMPILOT = str(Path(sys.executable).parent / "armpilot")
JOINT_STATE_HZ = 125.0
#: Sim seconds recorded after success (the default is 0.5 s).
LINGER_S = 1.5


def record(output: Path, episodes: int, *extra: str) -> dict:
    command = [ARMPILOT, "record", "--task", "reach", "--episodes", str(episodes), "--output", str(output),
               "--width", "160", "--height", "120", "--domain-id", str(unique_domain_id()), *extra]
    result = subprocess.run(command, capture_output=True, text=True, timeout=1500)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads((output / "record_report.json").read_text())


def check_bag(folder: Path) -> dict[str, int]:
    """Per-topic counts from rosbags, mcap and metadata.yaml must agree; returns them."""
    with AnyReader([folder]) as reader:
        by_rosbags: dict[str, int] = {}
        joint_stamps: list[float] = []  # sim time: a loaded machine slows the sim's wall rate, not this one
        for connection, _, raw in reader.messages():
            by_rosbags[connection.topic] = by_rosbags.get(connection.topic, 0) + 1
            if connection.topic == "/joint_states":
                stamp = reader.deserialize(raw, connection.msgtype).header.stamp
                joint_stamps.append(stamp.sec + stamp.nanosec * 1e-9)
        duration_s = max(joint_stamps) - min(joint_stamps)
    (mcap_file,) = folder.glob("*.mcap")
    by_mcap: dict[str, int] = {}
    with open(mcap_file, "rb") as stream:
        for _, channel, _ in make_reader(stream).iter_messages():
            by_mcap[channel.topic] = by_mcap.get(channel.topic, 0) + 1
    metadata = yaml.safe_load((folder / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    by_metadata = {t["topic_metadata"]["name"]: t["message_count"] for t in metadata["topics_with_message_count"]}
    assert by_rosbags == by_mcap == {k: v for k, v in by_metadata.items() if v}
    assert by_rosbags["/joint_states"] == pytest.approx(JOINT_STATE_HZ * duration_s, rel=0.15)
    for topic in ("/camera/camera/color/image_raw", "/perception/objects", "/arm_controller/joint_trajectory",
                  "/sim/task_success", "/sim/episode"):
        assert by_rosbags.get(topic, 0) > 0, f"{folder.name}: no {topic}"
    return by_rosbags


@pytest.mark.graph
@pytest.mark.timeout(600)
def test_record_two_episodes_read_back_convert_and_load(tmp_path):
    report = record(tmp_path / "bags", 2, "--linger", str(LINGER_S))
    assert report["episodes"] == 2 and report["successes"] == 2 and report["linger_s"] == LINGER_S
    folders = sorted((tmp_path / "bags").glob("episode_*"))
    assert [f.name for f in folders] == ["episode_000000", "episode_000001"]
    for folder in folders:
        check_bag(folder)
    result = subprocess.run([ARMPILOT, "convert", str(tmp_path / "bags"), "--output", str(tmp_path / "dataset")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    dataset = LeRobotV3Dataset(tmp_path / "dataset")
    assert len(dataset) > 20
    sample = dataset[0]
    assert tuple(sample["observation.state"].shape) == (2, 7) and tuple(sample["action"].shape) == (16, 7)
    frames = pq.read_table(tmp_path / "dataset/data/chunk-000/file-000.parquet").to_pydict()
    fps = json.loads((tmp_path / "dataset/meta/info.json").read_text())["fps"]
    for episode in (0, 1):  # --linger: the bag goes on after success (0.5 s by default)
        success = [s for e, s in zip(frames["episode_index"], frames["next.success"]) if e == episode]
        after = len(success) - success.index(True)
        assert after >= 0.8 * LINGER_S * fps, f"episode {episode}: {after} frames after success"


@pytest.mark.graph
@pytest.mark.timeout(600)
def test_record_with_handover_records_only_the_experts_part_after_the_learned_policy_drove(tmp_path):
    checkpoint = Path(__file__).resolve().parents[1] / "checkpoints" / "diffusion_push_points"
    report = record(tmp_path / "bags", 2, "--task", "push", "--policy", "handover", "--checkpoint", str(checkpoint),
                    "--object-source", "privileged", "--handover-within", "3", "--keep-failures", "--seed", "7")
    assert report["handover_within_s"] == 3.0 and len(report["bags"]) == 2
    assert report["policy_succeeded_before_handover"] == sum(not b["kept"] for b in report["bags"])
    for bag in report["bags"]:
        assert 0.0 <= bag["handover_s"] <= 3.0 + 0.1  # measured: the last /clock tick may pass the drawn time
    recorded = [b for b in report["bags"] if b["kept"]]
    assert recorded, report["bags"]  # both seeds drawn so that the learned policy has not finished by then
    for bag, folder in zip(recorded, sorted((tmp_path / "bags").glob("episode_*"))):
        with AnyReader([folder]) as reader:
            starts, first_state = [], None
            for connection, _, raw in reader.messages():
                msg = reader.deserialize(raw, connection.msgtype)
                if connection.topic == "/sim/episode":
                    starts.append(json.loads(msg.data)["start"])
                elif connection.topic == "/joint_states" and first_state is None:
                    first_state = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        # the recorder started at the handover plus the flush, not at the episode's start; the joint states
        # its subscription held when it started (keep last 10 at 100 Hz) may be up to 0.1 s older
        assert bag["recording_from_s"] >= bag["handover_s"] + 0.25, bag
        assert first_state - starts[-1] >= bag["recording_from_s"] - 0.15, (bag, starts, first_state)
    log = "".join(p.read_text() for p in (tmp_path / "bags" / "logs").rglob("*policy*"))
    assert log.count("handed over to the second backend") == len(recorded)


def test_record_refuses_a_handover_time_without_the_handover_policy(tmp_path):
    result = subprocess.run([ARMPILOT, "record", "--task", "push", "--output", str(tmp_path), "--handover-within",
                             "2"], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "--handover-within" in result.stderr and not list(tmp_path.iterdir())


def test_record_refuses_a_linger_out_of_range(tmp_path):
    result = subprocess.run([ARMPILOT, "record", "--task", "reach", "--output", str(tmp_path), "--linger", "-1"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "--linger" in result.stderr and not list(tmp_path.iterdir())


@pytest.mark.slow
@pytest.mark.timeout(3000)
def test_record_twenty_episodes_unattended(tmp_path):
    report = record(tmp_path / "bags", 20)
    kept = [b for b in report["bags"] if b["kept"]]
    folders = sorted((tmp_path / "bags").glob("episode_*"))
    assert len(folders) == len(kept) >= 19
    for folder in folders:
        check_bag(folder)
