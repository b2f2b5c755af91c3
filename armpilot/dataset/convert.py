"""Recorded episode bags -> one LeRobotDataset v3.0 (``armpilot convert``).

Each ``episode_*`` folder is read (``bag_reader``), put on the dataset clock
by the shared resampler (joint state linearly interpolated, everything else
sample-and-hold, never a sample from after the tick) and appended to the
dataset. A bad episode is skipped with its reason; the others still convert.
Motion tracks (``/perception/tracks``) and the cloud (``/perception/points``)
are optional: see ``tracks_feature`` and ``points_feature`` for when their
features are written.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from armpilot.robot_profile import PROFILE_SOURCE_KEY, ROBOT_KEY, URDF_HASH_KEY
from armpilot.ros_nodes import topics

from .bag_reader import OBJECT_TOPIC, BagDamaged, BagError, EpisodeStreams, bag_custom_data, read_episode
from .command_reference import reference_actions
from .demo_speed import max_joint_speeds, recorded_velocity_limits, speed_warning, too_fast
from .lerobot_v3 import EpisodeFrames, LeRobotV3Writer
from .resampler import NS_PER_S, ResampleError, Stream, hold_indices, resample
from .points_feature import POINTS_TOPIC, bag_has_points, points_on_ticks
from .tracks_feature import TRACKS_TOPIC, bag_has_tracks, tracks_on_ticks


@dataclass
class ConversionSummary:
    """What ``convert`` did: counts, seconds, skipped episodes with reasons."""

    output: Path
    episodes: int = 0
    frames: int = 0
    seconds: float = 0.0
    skipped: dict[str, str] = field(default_factory=dict)
    recovered: dict[str, str] = field(default_factory=dict)
    max_staleness_s: dict[str, float] = field(default_factory=dict)
    max_speed: dict[str, float] = field(default_factory=dict)  # joint -> largest recorded |dq/dt|, rad/s
    speed_check: str = ""  # the demonstrations against the robot's velocity limits

    def lines(self) -> list[str]:
        """A printable summary."""
        out = [f"dataset: {self.output}", f"episodes: {self.episodes}", f"frames: {self.frames}",
               f"seconds: {self.seconds:.1f}", f"skipped: {len(self.skipped)}"]
        out += [f"  {name}: {reason}" for name, reason in self.skipped.items()]
        out += [f"recovered (only the readable part converted): {len(self.recovered)}"] if self.recovered else []
        out += [f"  {name}: {note}" for name, note in self.recovered.items()]
        out += [f"max staleness {topic}: {s * 1e3:.1f} ms" for topic, s in self.max_staleness_s.items()]
        out += [self.speed_check] if self.speed_check else []
        return out


def episode_frames(episode: EpisodeStreams, fps: float) -> tuple[EpisodeFrames, dict[str, float]]:
    """Resamples an episode onto ``fps`` ticks; returns frames and worst staleness (s) per topic.

    Raises:
        ResampleError: a clock jump or no overlap between topics (names the topic).
    """
    t = episode.topics
    streams = [Stream(topics.JOINT_STATES, t[topics.JOINT_STATES].stamps, t[topics.JOINT_STATES].values, True)]
    for topic in (topics.CONTROLLER_COMMAND, topics.COLOR_IMAGE, topics.DEPTH_IMAGE, OBJECT_TOPIC):
        streams.append(Stream(topic, t[topic].stamps, t[topic].values))
    out = resample(streams, fps)
    success = np.zeros(out.ticks.shape, bool)
    if topics.SIM_TASK_SUCCESS in t:
        data = t[topics.SIM_TASK_SUCCESS]
        idx = hold_indices(data.stamps, out.ticks)
        success = np.where(idx >= 0, data.values[np.maximum(idx, 0)], False).astype(bool)
    tracks, tracks_mask, tracks_stale = tracks_on_ticks(t.get(TRACKS_TOPIC), out.ticks)
    staleness = out.max_staleness_s()
    points, points_mask, points_stale = points_on_ticks(t.get(POINTS_TOPIC), out.ticks)
    for topic, stale in ((TRACKS_TOPIC, tracks_stale), (POINTS_TOPIC, points_stale)):
        if stale is not None:
            staleness[topic] = stale
    v = out.values
    action = v[topics.CONTROLLER_COMMAND]
    if episode.command_grid is not None:  # smooth and causal: see command_reference
        action = reference_actions(episode.command_grid.stamps, episode.command_grid.values, out.ticks)
    frames = EpisodeFrames(
        task=episode.task, timestamp=((out.ticks - out.ticks[0]) / NS_PER_S).astype(np.float32),
        state=v[topics.JOINT_STATES].astype(np.float32), action=action.astype(np.float32),
        object=v[OBJECT_TOPIC].astype(np.float32), success=success,
        color=v[topics.COLOR_IMAGE], depth=v[topics.DEPTH_IMAGE], tracks=tracks, tracks_mask=tracks_mask,
        points=points, points_mask=points_mask,
        goal=None if episode.goal is None else np.tile(episode.goal.astype(np.float32), (len(out.ticks), 1)))
    return frames, staleness


def find_episodes(bag_dir: Path) -> list[Path]:
    """Sorted ``episode_*`` folders of ``bag_dir`` (or ``bag_dir`` itself if it is one)."""
    bag_dir = Path(bag_dir)
    if not bag_dir.is_dir():
        raise FileNotFoundError(f"{bag_dir} is not a folder")
    if bag_dir.name.startswith("episode_") and (bag_dir / "metadata.yaml").exists():
        return [bag_dir]
    return sorted(p for p in bag_dir.glob("episode_*") if p.is_dir())


#: robot_type of a dataset whose bags name no robot (recorded before robot profiles).
UNKNOWN_ROBOT = "unknown"


def recorded_robot(folders: list[Path]) -> dict[str, str]:
    """The robot identity the episodes were recorded with ({} if none names one).

    Raises:
        ValueError: episodes of different robots (or URDFs) in one dataset, naming two of them.
    """
    seen: dict[tuple[str, str], Path] = {}
    sources = set()
    for folder in folders:
        custom = bag_custom_data(folder)
        if ROBOT_KEY in custom:
            seen.setdefault((custom[ROBOT_KEY], custom.get(URDF_HASH_KEY, "")), folder)
            sources.add(custom.get(PROFILE_SOURCE_KEY, ""))
    if len(seen) > 1:
        (a, fa), (b, fb) = list(seen.items())[:2]
        raise ValueError(f"episodes of different robots in one dataset: {fa.name} is {a[0]} (URDF {a[1]}), "
                         f"{fb.name} is {b[0]} (URDF {b[1]}); convert them separately")
    if not seen:
        return {}
    (name, urdf_hash), = seen
    source = {PROFILE_SOURCE_KEY: sources.pop()} if len(sources) == 1 and "" not in sources else {}
    return {ROBOT_KEY: name, URDF_HASH_KEY: urdf_hash, **source}


def recorded_base_frame(robot: dict[str, str]) -> str:
    """The recorded robot profile's base frame (``base_link`` when the bags name none or it does not load here)."""
    from armpilot.robot_profile import RobotDescriptionError, load_recorded_profile

    try:
        return load_recorded_profile(robot).base_frame if ROBOT_KEY in robot else "base_link"
    except (RobotDescriptionError, OSError):
        return "base_link"


def check_speeds(max_speed: dict[str, float], robot: dict[str, str]) -> str:
    """The summary line on the demonstrations' joint speeds against the recorded robot's velocity limits."""
    limits, unknown = recorded_velocity_limits(robot)
    if unknown:
        return f"joint speeds not checked: {unknown}"
    fast = too_fast(max_speed, limits)
    return speed_warning(fast) or f"joint speeds within the velocity limits of '{robot[ROBOT_KEY]}'"


def refuse_output_over_input(bag_dir: Path, output: Path) -> None:
    """``output`` may be neither the bag folder, inside it, nor contain it (``--overwrite`` would delete bags)."""
    bags, out = bag_dir.resolve(), output.resolve()
    if out == bags or bags in out.parents or out in bags.parents:
        raise ValueError(f"the output {output} overlaps the input bags {bag_dir}; choose another folder")


def read_episode_or_its_readable_part(folder: Path, summary: ConversionSummary) -> EpisodeStreams:
    """``read_episode``; for a truncated or corrupt bag, the part before the damage (noted in ``summary``)."""
    try:
        return read_episode(folder)
    except BagDamaged as error:
        first_error = error
    from armpilot.recording.episode_bag import default_typestore
    from armpilot.recording.recovery import recover_copy

    with tempfile.TemporaryDirectory(prefix="armpilot-recovery-") as scratch:
        target = Path(scratch) / folder.name
        try:
            kept, note = recover_copy(folder, target, default_typestore())
            if kept == 0:
                raise BagError(f"no complete chunk ({note})")
            episode = read_episode(target)
        except Exception as error:  # noqa: BLE001 - the original error says what is wrong with the bag
            raise BagError(f"{first_error}; recovery failed too: {error}") from error
    summary.recovered[folder.name] = f"{kept} messages read before the damage ({note})"
    return episode


def convert(bag_dir: Path, output: Path, fps: int = 15, overwrite: bool = False,
            progress: bool = True) -> ConversionSummary:
    """Converts every episode under ``bag_dir`` into one dataset at ``output``.

    Raises:
        FileNotFoundError: no ``episode_*`` folder.
        DatasetWriteError: the output exists (without ``overwrite``) or cannot be written.
        ValueError: no episode could be converted (reasons in the message).
    """
    from tqdm import tqdm

    folders = find_episodes(bag_dir)
    if not folders:
        raise FileNotFoundError(f"no episode_* folder in {bag_dir}")
    refuse_output_over_input(Path(bag_dir), Path(output))
    summary = ConversionSummary(Path(output))
    writer = LeRobotV3Writer(output, fps, None, overwrite)  # fails fast on an existing/unwritable output
    writer.with_tracks = any(bag_has_tracks(f) for f in folders)
    writer.with_points = any(bag_has_points(f) for f in folders)
    robot = recorded_robot(folders)
    writer.robot_type = robot.get(ROBOT_KEY, UNKNOWN_ROBOT)
    writer.base_frame = recorded_base_frame(robot)
    intrinsics: dict[str, float] = {}
    try:
        for folder in tqdm(folders, desc="converting", unit="episode", disable=not progress):
            try:
                episode = read_episode_or_its_readable_part(folder, summary)
                if writer.joint_names and tuple(episode.joint_names) != tuple(writer.joint_names):
                    raise BagError(f"{folder}: joints {list(episode.joint_names)}, not the dataset's "
                                   f"{list(writer.joint_names)} (another robot, or another joint order)")
                frames, staleness = episode_frames(episode, fps)
            except (BagError, ResampleError) as exc:
                reason = str(exc)
                summary.skipped[folder.name] = reason if str(folder) in reason else f"{folder}: {reason}"
                continue
            writer.joint_names = writer.joint_names or episode.joint_names
            intrinsics = intrinsics or episode.intrinsics
            writer.add_episode(frames)
            summary.episodes += 1
            summary.frames += len(frames)
            summary.seconds += len(frames) / fps
            for topic, s in staleness.items():
                summary.max_staleness_s[topic] = max(s, summary.max_staleness_s.get(topic, 0.0))
            for name, speed in zip(episode.joint_names, max_joint_speeds(frames.timestamp, frames.state)):
                summary.max_speed[name] = max(float(speed), summary.max_speed.get(name, 0.0))
        if summary.episodes == 0:
            raise ValueError("no episode could be converted:\n" + "\n".join(summary.skipped.values()))
        summary.speed_check = check_speeds(summary.max_speed, robot)
        writer.finalize({"source_bags": str(Path(bag_dir).resolve()),
                         "camera_intrinsics": intrinsics, "armpilot_robot": robot})
    except BaseException:
        writer.abort()
        raise
    return summary
