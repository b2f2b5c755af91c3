"""Write small synthetic episode bags (rosbag2 + MCAP) with the recorder's topics.

``/perception/tracks`` carries a ``TRACK_DTYPE`` table (see ``track_table``)
packed with a padded point_step of ``TRACK_POINT_STEP`` bytes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from armpilot.ros_nodes import topics
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

JOINTS = tuple(f"joint{i}" for i in range(1, 7)) + ("gripper",)
TS = get_typestore(Stores.LATEST)
T = TS.types
ALL_TOPICS = {
    topics.JOINT_STATES: "sensor_msgs/msg/JointState",
    topics.CONTROLLER_COMMAND: "trajectory_msgs/msg/JointTrajectory",
    topics.SAFETY_COMMANDED: "trajectory_msgs/msg/JointTrajectory",
    topics.COLOR_IMAGE: "sensor_msgs/msg/Image",
    topics.DEPTH_IMAGE: "sensor_msgs/msg/Image",
    topics.COLOR_INFO: "sensor_msgs/msg/CameraInfo",
    topics.PERCEPTION_OBJECTS: "geometry_msgs/msg/PoseArray",
    topics.SIM_TASK_SUCCESS: "std_msgs/msg/Bool",
    topics.SIM_EPISODE: "std_msgs/msg/String",
    topics.PERCEPTION_TRACKS: "sensor_msgs/msg/PointCloud2",
    topics.PERCEPTION_POINTS: "sensor_msgs/msg/PointCloud2",
}
N_SYNTH_TRACKS, TRACK_HISTORY, TRACK_POINT_STEP = 36, 10, 32
TRACK_FIELDS = (("track_id", 0, 6), ("step", 4, 5), ("u", 8, 7), ("v", 12, 7), ("x", 16, 7), ("y", 20, 7),
                ("z", 24, 7))  # name, offset, PointField datatype (UINT32=6, INT32=5, FLOAT32=7)
_TRACK_ROW = np.dtype({"names": [f[0] for f in TRACK_FIELDS], "offsets": [f[1] for f in TRACK_FIELDS],
                       "formats": ["<u4", "<i4"] + ["<f4"] * 5, "itemsize": TRACK_POINT_STEP})


def track_id(i: int) -> int:
    """Track i's id (a permutation of 1..41, so ids do not follow i)."""
    return (i * 17) % 41 + 1


def track_xyz(i: int, frame: int) -> np.ndarray:
    """(3,) base_link position of track i at camera frame ``frame`` (linear motion); NaN z = no depth."""
    xyz = np.array([0.3 + 0.01 * i + 0.002 * frame, -0.2 + 0.01 * i - 0.003 * frame, 0.02 + 0.001 * (i + frame)],
                   np.float32)
    if i % 4 == 1 and frame % 3 == 0:
        xyz[2] = np.nan
    return xyz


def track_alive(i: int, frame: int) -> bool:
    """Track i is born at frame i % 5; tracks with i % 7 == 3 die after frame 20 + i."""
    return i % 5 <= frame and not (i % 7 == 3 and frame > 20 + i)


def track_table(frame: int) -> np.ndarray:
    """The tracks message at camera frame ``frame``: rows (track, step) of the live tracks, in reverse order."""
    rows = []
    for i in range(N_SYNTH_TRACKS):
        if not track_alive(i, frame):
            continue
        for step in range(0, -min(frame - i % 5 + 1, TRACK_HISTORY), -1):
            x, y, z = track_xyz(i, frame + step)
            rows.append((track_id(i), step, 10.0 + i, 20.0 + frame + step, x, y, z))
    table = np.zeros(len(rows), _TRACK_ROW)
    for r, row in enumerate(rows[::-1]):
        table[r] = row
    return table


def _cloud_msg(ns: int, table: np.ndarray, fields, dense: bool):
    """A PointCloud2 (rosbags type) of a structured ``table``; ``fields``: (name, offset, datatype) rows."""
    PF = T["sensor_msgs/msg/PointField"]
    step = table.dtype.itemsize
    return T["sensor_msgs/msg/PointCloud2"](
        header=_header(ns, "base_link"), height=1, width=len(table),
        fields=[PF(name=n, offset=o, datatype=d, count=1) for n, o, d in fields],
        is_bigendian=False, point_step=step, row_step=step * len(table),
        data=np.frombuffer(table.tobytes(), np.uint8).copy(), is_dense=dense)


def _tracks_msg(ns: int, frame: int):
    return _cloud_msg(ns, track_table(frame), TRACK_FIELDS, dense=False)


def cloud_points(frame: int) -> np.ndarray:
    """The ``/perception/points`` cloud at camera frame ``frame``: 40 + frame points, x = 0.01 * frame m."""
    xyz = np.zeros((40 + frame, 3), np.float32)
    xyz[:, 0] = 0.01 * frame
    xyz[:, 1] = np.arange(40 + frame) * 1e-3
    return xyz


def _points_msg(ns: int, frame: int):
    table = np.ascontiguousarray(cloud_points(frame).astype("<f4")).view([("x", "<f4"), ("y", "<f4"), ("z", "<f4")])
    return _cloud_msg(ns, table[:, 0], [(n, 4 * i, 7) for i, n in enumerate("xyz")], dense=True)  # 7: FLOAT32


def _header(ns: int, frame: str = ""):
    return T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=ns // 10**9, nanosec=ns % 10**9),
                                    frame_id=frame)


def _image(ns: int, img: np.ndarray, encoding: str):
    h, w = img.shape[:2]
    data = np.ascontiguousarray(img).view(np.uint8).reshape(-1)
    return T["sensor_msgs/msg/Image"](header=_header(ns, "camera_color_optical_frame"), height=h, width=w,
                                      encoding=encoding, is_bigendian=0, step=data.size // h, data=data)


def _pose(xyz):
    P = T["geometry_msgs/msg/Pose"]
    return P(position=T["geometry_msgs/msg/Point"](x=xyz[0], y=xyz[1], z=xyz[2]),
             orientation=T["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0))


def joint_positions(t: float) -> np.ndarray:
    """(7,) smooth synthetic joint positions at time t (s)."""
    return np.sin(t + np.arange(7) * 0.3) * 0.5


def write_episode(folder: Path, duration: float = 2.0, start: float = 100.0, task: str = "pick",
                  size: tuple[int, int] = (48, 64), skip: Iterable[str] = (), object_delay: float = 0.0,
                  success_at: float | None = 1.5, command_lag: float | None = None,
                  reset_at: float | None = None, separate_gripper: bool = False, gripper_first: bool = False) -> Path:
    """Writes one episode bag: joints 100 Hz, commands 10 Hz, camera, objects, tracks and cloud 15 Hz.

    Color pixel (0, 0) red channel encodes the camera frame number (mod 256);
    depth is ``1000 + 10 * frame`` mm with a horizontal ramp. Commands are stamped zero (start on
    receipt) unless ``command_lag``: then each is stamped that many seconds before it is written, as
    a chunk anchored on its observation, and every third is a zero-stamped hold (stamps go back).
    ``reset_at``: the sim's episode announcement says the episode began that many seconds after ``start``
    (what came before is the previous episode's tail, as a recorder lagging the sim takes in).
    ``separate_gripper``: the gripper on a controller of its own: its driver publishes its joint state in messages of
    its own (50 Hz), the arm controller's commands leave it out and the safety node's copy on /safety/commanded
    carries it (the first copy, a hold before any gripper command, without it); ``gripper_first``: its driver's
    messages come first, before the arm's of the same instant.
    """
    skip = set(skip)
    h, w = size
    msgs: list[tuple[int, str, object]] = []
    t0 = int(start * 1e9)

    def add(t: float, topic: str, msg: object) -> None:
        if topic not in skip:
            msgs.append((t0 + round(t * 1e9), topic, msg))

    for k in range(int(duration * 100) + 1):
        t = k / 100
        ns = t0 + round(t * 1e9)
        split = 6 if separate_gripper else 7
        gripper_state = T["sensor_msgs/msg/JointState"](header=_header(ns), name=[JOINTS[6]],
                                                        position=joint_positions(t)[6:], velocity=np.zeros(1),
                                                        effort=np.zeros(0))
        if separate_gripper and gripper_first and k % 2 == 0:
            add(t, topics.JOINT_STATES, gripper_state)
        add(t, topics.JOINT_STATES, T["sensor_msgs/msg/JointState"](
            header=_header(ns), name=list(JOINTS[:split]), position=joint_positions(t)[:split],
            velocity=np.zeros(split), effort=np.zeros(0)))
        if separate_gripper and not gripper_first and k % 2 == 1:
            add(t, topics.JOINT_STATES, gripper_state)
    for k in range(int(duration * 10) + 1):
        t = k / 10
        ns = t0 + round(t * 1e9)
        Pt = T["trajectory_msgs/msg/JointTrajectoryPoint"]
        D = T["builtin_interfaces/msg/Duration"]
        points = [Pt(positions=joint_positions(t + 0.1 * (i + 1))[::-1].copy(), velocities=np.zeros(0),
                     accelerations=np.zeros(0), effort=np.zeros(0), time_from_start=D(sec=0, nanosec=10**8 * (i + 1)))
                  for i in range(4)]
        stamp = 0 if command_lag is None or k % 3 == 2 else ns - round(command_lag * 1e9)
        command = T["trajectory_msgs/msg/JointTrajectory"](header=_header(stamp), joint_names=list(JOINTS[::-1]),
                                                         points=points)
        if not separate_gripper:
            add(t, topics.CONTROLLER_COMMAND, command)
            continue
        if k > 0:
            add(t, topics.SAFETY_COMMANDED, command)
        arm_points = [Pt(positions=p.positions[1:].copy(), velocities=np.zeros(0), accelerations=np.zeros(0),
                         effort=np.zeros(0), time_from_start=p.time_from_start) for p in points]
        add(t, topics.CONTROLLER_COMMAND, T["trajectory_msgs/msg/JointTrajectory"](
            header=_header(stamp), joint_names=list(JOINTS[-2::-1]), points=arm_points))
    ramp = np.arange(w, dtype=np.uint16)[None, :].repeat(h, 0)
    for k in range(int(duration * 15) + 1):
        t = k / 15
        ns = t0 + round(t * 1e9)
        color = np.zeros((h, w, 3), np.uint8)
        color[..., 1] = 128
        color[..., 2] = (np.arange(w) * 4 % 256)[None, :]
        color[0, 0, 0] = k % 256
        add(t, topics.COLOR_IMAGE, _image(ns, color, "rgb8"))
        add(t, topics.DEPTH_IMAGE, _image(ns, (1000 + 10 * k + ramp).astype("<u2"), "16UC1"))
        add(t, topics.PERCEPTION_TRACKS, _tracks_msg(ns, k))
        add(t, topics.PERCEPTION_POINTS, _points_msg(ns, k))
        if t >= object_delay:
            add(t, topics.PERCEPTION_OBJECTS, T["geometry_msgs/msg/PoseArray"](
                header=_header(ns, "base_link"), poses=[_pose((0.4, 0.01 * k, 0.05))]))
    K = np.array([50.0, 0, w / 2, 0, 50.0, h / 2, 0, 0, 1])
    add(0.0, topics.COLOR_INFO, T["sensor_msgs/msg/CameraInfo"](
        header=_header(t0), height=h, width=w, distortion_model="plumb_bob", d=np.zeros(5), k=K,
        r=np.eye(3).ravel(), p=np.zeros(12), binning_x=0, binning_y=0,
        roi=T["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)))
    episode = {"task": task, "seed": 0, "goal": [0.45, 0.1, 0.05]}
    if reset_at is not None:
        episode["start"] = start + reset_at
    add(0.0, topics.SIM_EPISODE, T["std_msgs/msg/String"](data=json.dumps(episode)))
    for k in range(int(duration * 10) + 1):
        add(k / 10, topics.SIM_TASK_SUCCESS, T["std_msgs/msg/Bool"](
            data=success_at is not None and k / 10 >= success_at))
    msgs.sort(key=lambda m: m[0])
    with Writer(folder, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conns = {topic: writer.add_connection(topic, msgtype, typestore=TS)
                 for topic, msgtype in ALL_TOPICS.items() if topic not in skip}
        for ns, topic, msg in msgs:
            writer.write(conns[topic], ns, TS.serialize_cdr(msg, ALL_TOPICS[topic]))
    return folder
