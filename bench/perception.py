"""Benchmark perception: depth -> filtered cloud + objects, vs a straightforward Open3D pipeline;
motion tracks; a 4.8 MB cloud between two processes with and without LARGE_DATA transports.

One core: numpy/OpenMP/OpenCV are limited to one thread before they load.

    python bench/perception.py            # table
    python bench/perception.py --json     # one JSON object of figures
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"
os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402
from figures import print_figures  # noqa: E402  (bench/ is on sys.path when run as a script)

CLOUD_POINTS = 300_000  # x y z rgb float32 = 4.8 MB
TRANSFER_TOPIC = "/bench/cloud"


def frames_per_second(step, seconds: float) -> float:
    step()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step()
        count += 1
    return count / (time.perf_counter() - start)


def sim_frame():
    """A 640x480 colour + depth frame of the pick scene, its intrinsics and camera pose."""
    from armpilot.perception.geometry import Intrinsics, camera_pose_from_urdf
    from armpilot.robot import ArmModel, HOME_POSITION
    from armpilot.sim.scene import CameraConfig
    from armpilot.sim.world import SimWorld
    from armpilot.tasks import get_task

    arm = ArmModel()
    world = SimWorld(None, get_task("pick"), CameraConfig(640, 480))
    world.reset(0)
    world.step(HOME_POSITION, 5)
    color, depth = world.render()
    intrinsics = Intrinsics(*world.intrinsics(), 640, 480)
    world.close()
    return arm, color, depth, intrinsics, camera_pose_from_urdf(arm)


def pipeline_figures(seconds: float) -> dict[str, float]:
    import open3d as o3d

    from armpilot.perception.cloud import CloudPipeline
    from armpilot.perception.config import PerceptionConfig
    from armpilot.perception.self_filter import RobotBoxes
    from armpilot.robot import HOME_POSITION

    arm, color, depth, intr, pose = sim_frame()
    pipeline = CloudPipeline(PerceptionConfig(), intr, pose)
    arm_boxes = RobotBoxes(arm)(HOME_POSITION)
    ours = frames_per_second(lambda: pipeline.process(depth, color, arm_boxes), seconds)
    o3d_intr = o3d.camera.PinholeCameraIntrinsic(intr.width, intr.height, intr.fx, intr.fy, intr.cx, intr.cy)
    extrinsic = np.linalg.inv(pose)
    depth_image = o3d.geometry.Image(np.ascontiguousarray(depth))

    def open3d_baseline() -> None:
        cloud = o3d.geometry.PointCloud.create_from_depth_image(depth_image, o3d_intr, extrinsic, depth_scale=1.0)
        down = cloud.voxel_down_sample(0.01)
        cloud.segment_plane(0.008, 3, 64)  # on the full cloud, as a first attempt would
        down.cluster_dbscan(0.02, 4)

    baseline = frames_per_second(open3d_baseline, seconds)
    return {"pipeline_fps": ours, "open3d_baseline_fps": baseline, "pipeline_vs_open3d_ratio": ours / baseline}


def tracks_figures(seconds: float) -> dict[str, float]:
    try:
        import cv2

        from armpilot.perception.tracks import MotionTracker, TracksConfig
    except ImportError:
        return {}
    cv2.setNumThreads(1)
    rng = np.random.default_rng(0)
    texture = cv2.GaussianBlur((rng.random((520, 680)) * 255).astype(np.uint8), (0, 0), 2)
    tracker = MotionTracker(TracksConfig(max_points=200))
    frames = [texture[k % 20 : k % 20 + 480, k % 30 : k % 30 + 640].copy() for k in range(40)]
    state = {"k": 0}

    def step() -> None:
        state["k"] += 1
        tracker.update(frames[state["k"] % 40], state["k"] / 30.0, None)

    return {"tracks_fps_200_points": frames_per_second(step, seconds)}


def publish_clouds(count: int) -> None:
    """Child process: publish ``count`` clouds stamped with wall time, 5 per second."""
    import rclpy

    from armpilot.ros_nodes import qos
    from armpilot.ros_nodes.conversions import pointcloud_to_msg
    from sensor_msgs.msg import PointCloud2

    rclpy.init()
    node = rclpy.create_node("bench_cloud_publisher")
    publisher = node.create_publisher(PointCloud2, TRANSFER_TOPIC, qos.CAMERA_QOS)
    cloud = np.zeros(CLOUD_POINTS, [("x", "f4"), ("y", "f4"), ("z", "f4"), ("rgb", "f4")])
    msg = pointcloud_to_msg(cloud, 0.0, "base_link")
    deadline = time.time() + 10
    while node.count_subscribers(TRANSFER_TOPIC) == 0 and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    for _ in range(count):
        now = time.time()
        msg.header.stamp.sec, msg.header.stamp.nanosec = int(now), int((now % 1) * 1e9)
        publisher.publish(msg)
        time.sleep(0.2)
    time.sleep(1.0)
    node.destroy_node()
    rclpy.shutdown()


def transfer_latency_ms(large_data: bool, count: int, domain: int) -> float:
    """Median publish -> receive latency of a 4.8 MB cloud between two processes, ms."""
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    env.pop("FASTDDS_BUILTIN_TRANSPORTS", None)
    if large_data:
        env["FASTDDS_BUILTIN_TRANSPORTS"] = "LARGE_DATA"
    receiver = subprocess.Popen([sys.executable, __file__, "--receive", str(count)], env=env,
                                stdout=subprocess.PIPE, text=True)
    publisher = subprocess.Popen([sys.executable, __file__, "--publish", str(count)], env=env)
    out, _ = receiver.communicate(timeout=60)
    publisher.wait(timeout=30)
    return float(out.strip().splitlines()[-1])


def receive_clouds(count: int) -> None:
    """Child process: print the median latency (ms) of ``count`` clouds."""
    import rclpy

    from armpilot.ros_nodes import qos
    from sensor_msgs.msg import PointCloud2

    rclpy.init()
    node = rclpy.create_node("bench_cloud_receiver")
    latencies: list[float] = []

    def on_cloud(msg: PointCloud2) -> None:
        latencies.append(time.time() - (msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9))

    node.create_subscription(PointCloud2, TRANSFER_TOPIC, on_cloud, qos.CAMERA_QOS)
    deadline = time.time() + 30
    while len(latencies) < count and time.time() < deadline:
        rclpy.spin_once(node, timeout_sec=0.1)
    print(1e3 * float(np.median(latencies)) if latencies else float("nan"))
    node.destroy_node()
    rclpy.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--seconds", type=float, default=2.0, help="measuring time per figure")
    parser.add_argument("--clouds", type=int, default=15, help="clouds per transfer measurement")
    parser.add_argument("--publish", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--receive", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.publish:
        return publish_clouds(args.publish)
    if args.receive:
        return receive_clouds(args.receive)
    figures = pipeline_figures(args.seconds)
    figures.update(tracks_figures(args.seconds))
    domain = 100 + os.getpid() % 100
    figures["cloud_4.8MB_transfer_ms_default"] = transfer_latency_ms(False, args.clouds, domain)
    figures["cloud_4.8MB_transfer_ms_large_data"] = transfer_latency_ms(True, args.clouds, domain)
    print_figures(figures, args.json)


if __name__ == "__main__":
    main()
