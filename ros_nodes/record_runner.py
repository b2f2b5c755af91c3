"""``armpilot record``: the scripted teleoperator collects demonstrations through the live graph.

The task experts drive the arm the way a person would (proposals through the
safety node), the recorder node writes one MCAP bag per episode, and this
runner starts, stops or discards each episode over the recorder's services.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from armpilot.evaluation import episode_summary
from armpilot.recording.config import LINGER_S, MAX_LINGER_S
from armpilot.robot_profile import DEFAULT_ROBOT, load_profile
from armpilot.ros_nodes import topics
from armpilot.ros_nodes.demo_runner import graph_session
from armpilot.tasks import get_task

#: Wall seconds for the recorder to discover the graph (and /clock) before the first episode.
WARM_UP_S = 2.0


@dataclass(frozen=True)
class RecordOptions:
    """What ``armpilot record`` collects (see ``armpilot record --help``)."""

    task: str
    output: Path
    episodes: int = 20
    seed: int = 0
    policy: str = "scripted"
    keep_failures: bool = False
    width: int = 640
    height: int = 480
    domain_id: int | None = None
    robot: str = DEFAULT_ROBOT
    scene: str = "nominal"
    object_source: str = "perception"
    push_jitter: float = 0.0
    linger: float = LINGER_S


def run_record(options: RecordOptions) -> dict:
    """Collect ``options.episodes`` episodes; returns (and writes to OUTPUT/record_report.json) a summary."""
    if not 0.0 <= options.linger <= MAX_LINGER_S:
        raise ValueError(f"linger must be within [0, {MAX_LINGER_S}] s of sim time, got {options.linger}")
    task = get_task(options.task, load_profile(options.robot).reach)
    options.output.mkdir(parents=True, exist_ok=True)
    values = {"task": options.task, "policy": options.policy, "seed": str(options.seed), "width": str(options.width),
              "height": str(options.height), "output": str(options.output.resolve()), "robot": options.robot,
              "scene": options.scene, "object_source": options.object_source,
              "push_jitter": str(options.push_jitter)}
    results, bags = [], []
    with graph_session("record", values, options.domain_id, options.output / "logs") as (graph, node):
        # the recorder must have discovered every publisher and the clock before the first episode
        node.wait_for_service(topics.RECORDER_START)
        node.spin_for(WARM_UP_S)
        progress = tqdm(range(options.episodes), desc=f"recording {options.task}", unit="ep")
        for index in progress:
            result = node.run_episode(index, options.seed + index, task.max_duration,
                                      started=lambda: node.trigger(topics.RECORDER_START))
            lingered = 0.0
            if result.success:  # the expert goes on (a push to within 8 mm, then lifts): recorded too
                lingered = node.spin_sim_for(options.linger)
                if lingered < options.linger - 0.05:
                    progress.write(f"episode {index}: recorded {lingered:.2f} of {options.linger} s past success "
                                   "(the sim fell behind)")
            keep = result.success or options.keep_failures
            answer = node.trigger(topics.RECORDER_STOP if keep else topics.RECORDER_DISCARD)
            # success_at_stop False after a success: the task came undone in the linger (or MuJoCo reset the sim)
            bags.append({"seed": result.seed, "success": result.success, "kept": keep, "recorder": answer,
                         "lingered_s": round(lingered, 3), "success_at_stop": node.success_now})
            results.append(result)
            graph.check()
            progress.set_postfix(kept=sum(b["kept"] for b in bags))
    report = {"task": options.task, "linger_s": options.linger, **episode_summary(results), "bags": bags,
              "output": str(options.output), "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
    (options.output / "record_report.json").write_text(json.dumps(report, indent=2))
    return report
