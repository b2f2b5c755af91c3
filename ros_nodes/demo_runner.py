"""``armpilot demo``: bring up the sim graph, run seeded episodes, report what happened."""

from __future__ import annotations

import json
import os
import platform
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from armpilot.bringup import GraphSupervisor, ros_environment
from armpilot.evaluation import EpisodeResult, contact_sheet, episode_summary, format_summary
from armpilot.graph import load_graphs, remapped, resolve
from armpilot.robot_profile import DEFAULT_ROBOT, load_profile
from armpilot.ros_nodes import topics
from armpilot.tasks import task_for_robot

#: Episodes whose first and last frames go into the contact sheet.
SHEET_EPISODES = 6


@dataclass(frozen=True)
class DemoOptions:
    """What ``armpilot demo`` runs (see ``armpilot demo --help``)."""

    task: str = "reach"
    policy: str = "scripted"
    episodes: int = 20
    seed: int = 0
    report: Path = Path("out/report.json")
    media: Path | None = None
    width: int = 640
    height: int = 480
    camera_rate: float = 15.0
    domain_id: int | None = None
    video: bool = True
    min_success: float = 0.0
    extra_arguments: dict[str, str] = field(default_factory=dict)


def transition_arguments(transition: str, delay_ms: float) -> dict[str, str]:
    """Graph arguments for a chunk ``transition`` under an injected inference delay, ms.

    The delay slows proposals down by as much, so the safety node's proposal
    timeout grows with it (the policy node's observation budget does so itself).
    """
    values = {"transition": transition, "delay_ms": str(delay_ms)}
    if delay_ms > 0:
        from armpilot.safety.limits import SafetyConfig

        values["proposal_timeout"] = str(SafetyConfig.proposal_timeout + delay_ms * 1e-3)
    return values


class _VideoRecorder:
    """Writes the frames of one episode to an MP4 (OpenCV's mp4v codec)."""

    def __init__(self, path: Path, fps: float) -> None:
        self.path, self.fps, self.writer = path, fps, None

    def __call__(self, frame: np.ndarray) -> None:
        if self.writer is None:
            fourcc = cv2.VideoWriter_fourcc(*"mp4v")
            self.writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, (frame.shape[1], frame.shape[0]))
        self.writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()


@contextmanager
def graph_session(graph_name: str, values: dict[str, str], domain_id: int | None, log_dir: Path):
    """Bring up a graph of config/graph.yaml and an evaluator node in this process; tear both down."""
    env = ros_environment(domain_id)
    keys = ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE", "FASTDDS_BUILTIN_TRANSPORTS")
    os.environ.update({k: env[k] for k in keys if k in env})
    nodes = resolve(load_graphs()[graph_name], values)
    import rclpy

    from armpilot.ros_nodes.evaluator import EvaluatorNode

    with GraphSupervisor(nodes, env, log_dir) as graph:
        rclpy.init()
        node = EvaluatorNode(command_topic=remapped(nodes, "safety", topics.CONTROLLER_COMMAND))
        try:
            node.wait_until_ready(timeout=120.0, policy=any(n.name == "policy" for n in nodes), alive=graph.check,
                                  safety=any(n.name == "safety" for n in nodes))
            graph.check()
            yield graph, node
        finally:
            node.destroy_node()
            rclpy.shutdown()


def run_demo(options: DemoOptions) -> dict:
    """Run the closed loop in separate processes over DDS and write the report.

    Returns:
        The report (also written as JSON to ``options.report``).

    Raises:
        armpilot.bringup.NodeFailed: a node of the graph died (named, with its last log lines).
    """
    robot = options.extra_arguments.get("robot", DEFAULT_ROBOT)
    task = task_for_robot(options.task, load_profile(robot))
    media = options.media or options.report.parent / f"{options.report.stem}_media"
    media.mkdir(parents=True, exist_ok=True)
    options.report.parent.mkdir(parents=True, exist_ok=True)
    values = {"task": options.task, "policy": options.policy, "seed": str(options.seed),
              "width": str(options.width), "height": str(options.height), "camera_rate": str(options.camera_rate),
              **options.extra_arguments}
    results: list[EpisodeResult] = []
    frames: list[tuple[str, np.ndarray]] = []
    wall_start = time.monotonic()
    with graph_session("sim", values, options.domain_id, media / "logs") as (graph, node):
        sim_start = node.sim_time
        wall_loop = time.monotonic()
        progress = tqdm(range(options.episodes), desc=f"{options.task} episodes", unit="ep")
        for index in progress:
            first = index == 0 and options.video
            video = _VideoRecorder(media / "episode_0.mp4", options.camera_rate) if first else None
            if video:
                node.frame_listeners.append(video)
            result = node.run_episode(index, options.seed + index, task.max_duration)
            if video:
                node.frame_listeners.remove(video)
                video.close()
            if index < SHEET_EPISODES and node.latest_frame is not None:
                verdict = "success" if result.success else "fail"
                frames.append((f"ep {index} seed {result.seed}: {verdict} {result.sim_duration_s:.1f}s",
                               node.latest_frame))
            results.append(result)
            graph.check()
            progress.set_postfix(success=f"{sum(r.success for r in results)}/{len(results)}")
        sim_elapsed = node.sim_time - sim_start
        wall_elapsed = time.monotonic() - wall_loop
        rates = node.topic_rates()
        latency = node.latency.summary_ms()
        switches = node.switches.summary()
        safety = dict(node.safety_counts)
        policy_status = dict(node.policy_status)
    report = {
        "task": options.task,
        "policy": options.policy,
        "arguments": values,
        **episode_summary(results),
        "command_latency_ms": latency,
        "chunk_switches": switches,
        "topic_rates_hz": rates,
        "real_time_factor": sim_elapsed / wall_elapsed if wall_elapsed > 0 else 0.0,
        "camera": {"width": options.width, "height": options.height, "rate_hz": options.camera_rate},
        "safety": safety,
        "policy_node": policy_status,
        "wall_time_s": round(time.monotonic() - wall_start, 2),
        "media": {"contact_sheet": str(media / "episodes.png"),
                  "video": str(media / "episode_0.mp4") if options.video else None,
                  "logs": str(media / "logs")},
        "host": {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count()},
    }
    if frames:
        cv2.imwrite(str(media / "episodes.png"), cv2.cvtColor(contact_sheet(frames, columns=3), cv2.COLOR_RGB2BGR))
    options.report.write_text(json.dumps(report, indent=2))
    print(format_summary(report))
    print(f"report: {options.report}\nmedia:  {media}")
    return report
