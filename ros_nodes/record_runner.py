"""``armpilot record``: the scripted teleoperator collects demonstrations through the live graph.

The task experts drive the arm the way a person would (proposals through the
safety node), the recorder node writes one MCAP bag per episode, and this
runner starts, stops or discards each episode over the recorder's services.

With ``--policy handover`` a learned policy drives first, for a time drawn
from the episode's seed; then this runner hands the episode over to the
expert on ``/policy/handover`` and starts the recorder: the bags hold the
expert's corrections from the states the learned policy really reaches.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from std_msgs.msg import Int64
from tqdm import tqdm

from armpilot.evaluation import episode_summary
from armpilot.recording.config import LINGER_S, MAX_HANDOVER_S, MAX_LINGER_S
from armpilot.robot_profile import DEFAULT_ROBOT, load_profile
from armpilot.ros_nodes import qos, topics
from armpilot.ros_nodes.demo_runner import graph_session
from armpilot.tasks import task_for_robot

#: Wall seconds for the recorder to discover the graph (and /clock) before the first episode.
WARM_UP_S = 2.0
#: Sim seconds between the handover and the recorder's start: the learned policy's executing chunk gives way.
HANDOVER_FLUSH_S = 0.3
#: Wall seconds the handover waits for the sim to reach it (a loaded 2-core machine runs the sim at ~0.2x).
MAX_HANDOVER_WALL_S = 120.0


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
    checkpoint: str = ""
    handover_within: float = 0.0


class Handover:
    """``--policy handover``: lets the learned policy drive for a drawn time, then hands over and starts the
    recorder (the ``started`` hook of each episode)."""

    def __init__(self, node, within: float) -> None:
        self.node, self.within = node, within
        self.publisher = node.create_publisher(Int64, topics.POLICY_HANDOVER, qos.COMMAND_QOS)
        deadline = time.monotonic() + 30.0
        while self.publisher.get_subscription_count() == 0 and time.monotonic() < deadline:
            node.spin_for(0.1)
        if self.publisher.get_subscription_count() == 0:
            raise RuntimeError(f"no policy node subscribes to {topics.POLICY_HANDOVER} after 30 s")
        self.at_s = 0.0  # this episode's handover, sim seconds after its start
        self.recording_at_s: float | None = None  # when the recorder started, sim s after the episode's start
        self.policy_succeeded = False  # the learned policy finished the task before the handover

    def started(self, seed: int) -> None:
        """Drive with the learned policy until U(0, within) sim seconds (drawn from ``seed``) after the episode's
        start, then hand over and start recording (unless the learned policy succeeded first: nothing is recorded
        then). ``at_s`` and ``recording_at_s`` (None: not started) are the sim times measured when each happened."""
        self.recording_at_s = None
        drawn = float(np.random.default_rng(seed).uniform(0.0, self.within))
        start = float(self.node.episode_info.get("start", self.node.sim_time))
        self.node.spin_sim_for(start + drawn - self.node.sim_time, settle=0.0, until=lambda: self.node.success,
                               max_wall=MAX_HANDOVER_WALL_S)
        self.at_s = self.node.sim_time - start
        self.policy_succeeded = self.node.success
        if self.policy_succeeded:
            return
        self.publisher.publish(Int64(data=int(self.node.episode_info["episode"])))
        self.node.spin_sim_for(HANDOVER_FLUSH_S, settle=0.0, max_wall=MAX_HANDOVER_WALL_S)
        self.policy_succeeded = self.node.success
        if not self.policy_succeeded:
            self.recording_at_s = self.node.sim_time - start
            self.node.trigger(topics.RECORDER_START)


def _finish_episode(node, result, options: RecordOptions, progress) -> dict:
    """Records ``options.linger`` s more after a success, then keeps or discards the bag; its report entry."""
    lingered = 0.0
    if result.success:  # the expert goes on (a push to within 8 mm, then lifts): recorded too
        lingered = node.spin_sim_for(options.linger)
        if lingered < options.linger - 0.05:
            progress.write(f"episode {result.index}: recorded {lingered:.2f} of {options.linger} s past success "
                           "(the sim fell behind)")
    keep = result.success or options.keep_failures
    answer = node.trigger(topics.RECORDER_STOP if keep else topics.RECORDER_DISCARD)
    # success_at_stop False after a success: the task came undone in the linger (or MuJoCo reset the sim)
    return {"seed": result.seed, "success": result.success, "kept": keep, "recorder": answer,
            "lingered_s": round(lingered, 3), "success_at_stop": node.success_now}


def run_record(options: RecordOptions) -> dict:
    """Collect ``options.episodes`` episodes; returns (and writes to OUTPUT/record_report.json) a summary."""
    if not 0.0 <= options.linger <= MAX_LINGER_S:
        raise ValueError(f"linger must be within [0, {MAX_LINGER_S}] s of sim time, got {options.linger}")
    handing_over = options.policy == "handover"
    if not 0.0 <= options.handover_within <= MAX_HANDOVER_S or (options.handover_within > 0) != handing_over:
        raise ValueError(f"handover_within must be within (0, {MAX_HANDOVER_S}] s with policy 'handover' and 0 "
                         f"without, got {options.handover_within} with '{options.policy}'")
    task = task_for_robot(options.task, load_profile(options.robot))
    options.output.mkdir(parents=True, exist_ok=True)
    values = {"task": options.task, "policy": options.policy, "seed": str(options.seed), "width": str(options.width),
              "height": str(options.height), "output": str(options.output.resolve()), "robot": options.robot,
              "scene": options.scene, "object_source": options.object_source, "push_jitter": str(options.push_jitter),
              **({"checkpoint": options.checkpoint} if options.checkpoint else {})}
    results, bags = [], []
    with graph_session("record", values, options.domain_id, options.output / "logs") as (graph, node):
        # the recorder must have discovered every publisher and the clock before the first episode
        node.wait_for_service(topics.RECORDER_START)
        node.spin_for(WARM_UP_S)
        handover = Handover(node, options.handover_within) if handing_over else None
        max_duration = task.max_duration + options.handover_within  # the expert's time starts at the handover
        progress = tqdm(range(options.episodes), desc=f"recording {options.task}", unit="ep")
        for index in progress:
            seed = options.seed + index
            result = node.run_episode(index, seed, max_duration, started=(
                partial(handover.started, seed) if handover else partial(node.trigger, topics.RECORDER_START)))
            if handover and handover.policy_succeeded:  # nothing was recorded: no correction to learn from
                bag = {"seed": seed, "success": True, "kept": False,
                       "recorder": "not started: the learned policy succeeded before the handover"}
            else:
                bag = _finish_episode(node, result, options, progress)
            if handover:
                recording = handover.recording_at_s
                bag.update(handover_s=round(handover.at_s, 3),
                           recording_from_s=None if recording is None else round(recording, 3))
            bags.append(bag)
            results.append(result)
            graph.check()
            progress.set_postfix(kept=sum(b["kept"] for b in bags))
    report = {"task": options.task, "linger_s": options.linger, "handover_within_s": options.handover_within,
              **episode_summary(results), "bags": bags,
              **({"policy_succeeded_before_handover": sum("not started" in b["recorder"] for b in bags)}
                 if handover else {}),
              "output": str(options.output), "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
    (options.output / "record_report.json").write_text(json.dumps(report, indent=2))
    return report
