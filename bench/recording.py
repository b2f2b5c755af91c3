"""Recording throughput: color + depth + a 100k-point cloud at 30 Hz through a recorder node process.

A publisher process sends 640x480 rgb8, 640x480 16UC1 and a 100k-point
PointCloud2 (x, y, z, rgb: 1.6 MB) at 30 Hz for ``--seconds``; the recorder
node (its own process) records them; this process starts/stops the episode.
Reports messages published vs recorded, MB/s written, the recorder's CPU share
(/proc/<pid>/stat utime+stime over the interval), and a baseline: the same
bytes written to a plain file by one process.

    python bench/recording.py            # table
    python bench/recording.py --json     # one JSON object of figures
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mcap.reader import make_reader

from figures import print_figures  # bench/ is on sys.path when run as a script
from armpilot.graph import NodeSpec

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "test"))
from graph_harness import running_graph  # noqa: E402

COLOR, DEPTH = "/camera/camera/color/image_raw", "/camera/camera/aligned_depth_to_color/image_raw"
CLOUD = "/perception/points"

PUBLISHER = """
import json, sys, time
import numpy as np, rclpy
from sensor_msgs.msg import Image, PointCloud2, PointField
from armpilot.ros_nodes import qos
rclpy.init()
node = rclpy.create_node("bench_publisher")
pubs = {t: node.create_publisher(c, t, qos.CAMERA_QOS) for t, c in
        (("%s", Image), ("%s", Image), ("%s", PointCloud2))}
color = Image(height=480, width=640, encoding="rgb8", step=1920, data=np.zeros(921600, np.uint8).tobytes())
depth = Image(height=480, width=640, encoding="16UC1", step=1280, data=np.zeros(614400, np.uint8).tobytes())
fields = [PointField(name=n, offset=4 * i, datatype=7, count=1) for i, n in enumerate("xyz")] + [
    PointField(name="rgb", offset=12, datatype=7, count=1)]
cloud = PointCloud2(height=1, width=100000, fields=fields, point_step=16, row_step=1600000, is_dense=True,
                    data=np.zeros(1600000, np.uint8).tobytes())
msgs = dict(zip(pubs, (color, depth, cloud)))
while not all(p.get_subscription_count() for p in pubs.values()):
    rclpy.spin_once(node, timeout_sec=0.05)
print("READY", flush=True)
sys.stdin.readline()
sent = {t: 0 for t in pubs}
t0 = time.monotonic(); k = 0
while time.monotonic() - t0 < %f:
    k += 1
    for t, p in pubs.items():
        p.publish(msgs[t]); sent[t] += 1
    time.sleep(max(0.0, t0 + k / 30.0 - time.monotonic()))
print(json.dumps(sent), flush=True)
"""


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def baseline(total_bytes: int, message_bytes: int, folder: Path) -> float:
    """Seconds one process takes to write ``total_bytes`` to a plain file in message-sized writes (+fsync)."""
    block = bytes(message_bytes)
    t0 = time.perf_counter()
    with open(folder / "baseline.bin", "wb") as handle:
        for _ in range(max(1, total_bytes // message_bytes)):
            handle.write(block)
        handle.flush()
        os.fsync(handle.fileno())
    return time.perf_counter() - t0


def run(seconds: float) -> dict:
    from std_srvs.srv import Trigger

    work = Path(tempfile.mkdtemp(prefix="armpilot_bench_rec_"))
    out = work / "episodes"
    spec = NodeSpec("recorder", "recorder_node", parameters={
        "output_dir": str(out), "topics": f"['{COLOR}', '{DEPTH}', '{CLOUD}']",
        "types": "['sensor_msgs/msg/Image', 'sensor_msgs/msg/Image', 'sensor_msgs/msg/PointCloud2']",
        "qos_profiles": "['camera', 'camera', 'camera']"})
    with running_graph((spec,), work / "logs") as (supervisor, probe):
        publisher = subprocess.Popen([sys.executable, "-c", PUBLISHER % (COLOR, DEPTH, CLOUD, seconds)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=os.environ)
        try:
            assert publisher.stdout.readline().startswith("READY")  # type: ignore[union-attr]
            calls = {}
            for name in ("start", "stop"):
                calls[name] = probe.create_client(Trigger, f"/recorder/{name}")
            probe.spin_until(calls["start"].service_is_ready, 20, "/recorder/start")

            def call(name: str) -> None:
                future = calls[name].call_async(Trigger.Request())
                probe.spin_until(future.done, 20, f"/recorder/{name}")
                assert future.result().success, future.result().message
            call("start")
            pid = supervisor.pids()["recorder"]
            cpu0, t0 = cpu_seconds(pid), time.monotonic()
            publisher.stdin.write("GO\n")  # type: ignore[union-attr]
            publisher.stdin.flush()  # type: ignore[union-attr]
            sent = json.loads(publisher.stdout.readline())  # type: ignore[union-attr]
            probe.spin_for(0.5)
            cpu1, t1 = cpu_seconds(pid), time.monotonic()
            call("stop")
        finally:
            publisher.kill()
            publisher.wait()
    bag = out / "episode_000000"
    with open(next(bag.glob("*.mcap")), "rb") as handle:
        summary = make_reader(handle).get_summary()
    recorded = {summary.channels[c].topic: n for c, n in summary.statistics.channel_message_counts.items()}
    size = sum(f.stat().st_size for f in bag.iterdir())
    base_s = baseline(size, 1_000_000, work)
    shutil.rmtree(work, ignore_errors=True)
    elapsed = t1 - t0
    figures = {
        "seconds": round(elapsed, 2),
        "published": sent, "recorded": recorded,
        "dropped": {t: sent[t] - recorded.get(t, 0) for t in sent},
        "bag_mb": round(size / 1e6, 1),
        "recorder_mb_per_s": round(size / 1e6 / elapsed, 1),
        "recorder_cpu_share": round((cpu1 - cpu0) / elapsed, 2),
        "baseline_plain_file_mb_per_s": round(size / 1e6 / base_s, 1),
    }
    figures["recorder_vs_baseline_ratio"] = round(
        figures["recorder_mb_per_s"] / figures["baseline_plain_file_mb_per_s"], 3)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--seconds", type=float, default=5.0, help="publishing time, s")
    args = parser.parse_args()
    figures = run(args.seconds)
    print_figures(figures, args.json)


if __name__ == "__main__":
    main()
