"""``armpilot record``: its options and the call into the record runner (rclpy is imported only to run)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from armpilot.policies.registry import BACKENDS
from armpilot.recording.config import HANDOVER_WITHIN_S, LINGER_S, MAX_HANDOVER_S, MAX_LINGER_S
from armpilot.robot_profile import DEFAULT_ROBOT
from armpilot.sim.scenes import SCENES
from armpilot.tasks import TASKS


def _seconds_within(low: float, high: float) -> Callable[[str], float]:
    """An argparse type: sim seconds within [low, high]."""

    def seconds(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text} s is not within [{low}, {high}] s")
        return value

    return seconds


_linger_seconds = _seconds_within(0.0, MAX_LINGER_S)


def add_record_parser(sub, robot_choice: Callable[[str], str]) -> None:
    """The ``record`` sub-command on ``sub`` (argparse sub-parsers); ``robot_choice`` checks ``--robot``."""
    record = sub.add_parser(
        "record", help="collect demonstrations: the scripted teleoperator drives the graph, one MCAP bag per episode",
        description="Bring up the sim graph with the recorder node; the task expert drives the arm through the "
        "safety node like a person would; each seeded episode becomes OUTPUT/episode_NNNNNN (rosbag2, MCAP). "
        "Failed episodes are discarded unless --keep-failures.")
    record.add_argument("--robot", type=robot_choice, default=DEFAULT_ROBOT,
                        help=f"robot profile (default: {DEFAULT_ROBOT})")
    record.add_argument("--task", choices=sorted(TASKS), default="reach", help="task (default: reach)")
    record.add_argument("--policy", choices=BACKENDS, default="scripted",
                        help="who drives (default: the scripted expert); handover: the diffusion --checkpoint "
                             "drives first, then the expert, and only the expert's part is recorded (corrections "
                             "from the states the learned policy reaches, DAgger-style; see --handover-within)")
    record.add_argument("--checkpoint", default="", metavar="DIR",
                        help="--policy diffusion or handover: the checkpoint folder (default: the one shipped for "
                             "the task)")
    record.add_argument("--handover-within", type=_seconds_within(0.0, MAX_HANDOVER_S), default=None, metavar="S",
                        help="--policy handover: each episode the learned policy drives for a time drawn uniformly "
                             "in [0, S] sim seconds from the episode's seed, then the expert takes over and the "
                             "recorder starts; an episode the learned policy finishes first is not kept (default: "
                             f"{HANDOVER_WITHIN_S} with --policy handover)")
    record.add_argument("--episodes", type=int, default=20, help="episodes to record (default: 20)")
    record.add_argument("--seed", type=int, default=0, help="seed of the first episode")
    record.add_argument("--scene", choices=SCENES, default="nominal",
                        help="what varies per episode (default: nominal; randomized for training data)")
    record.add_argument("--object-source", choices=("perception", "privileged"), default="perception",
                        help="where the expert sees the task object: perception (it reports the largest object "
                             "first: a larger distractor fools the expert) or privileged (the sim's ground truth, "
                             "for demonstrations among distractors; the bags still hold what perception saw)")
    record.add_argument("--push-jitter", type=float, default=0.0, metavar="M",
                        help="push: start each push about M metres (std) sideways of the box-to-goal line, so "
                             "that the demonstrations show the expert steering back; needs --object-source "
                             "privileged, the expert steers from the sim's ground truth only (default: 0)")
    record.add_argument("--linger", type=_linger_seconds, default=LINGER_S, metavar="S",
                        help="sim seconds recorded after the task succeeds: whoever drives goes on (with "
                             "--object-source privileged the push expert goes on to 8 mm from the goal, then "
                             "lifts), so the demonstrations show what to do near the goal, not only how to reach "
                             f"it (default: {LINGER_S}, at most {MAX_LINGER_S})")
    record.add_argument("--output", type=Path, required=True, help="folder for the bags")
    record.add_argument("--keep-failures", action="store_true", help="keep the bags of failed episodes too")
    record.add_argument("--width", type=int, default=320, help="camera width, px (default: 320)")
    record.add_argument("--height", type=int, default=240, help="camera height, px (default: 240)")
    record.add_argument("--domain-id", type=int, default=None, help="ROS_DOMAIN_ID (default: from the environment)")


def record_from_args(args: argparse.Namespace) -> int:
    """Runs ``armpilot record`` and prints what it kept."""
    from armpilot.ros_nodes.record_runner import RecordOptions, run_record

    within = args.handover_within
    if within is not None and (args.policy != "handover" or within == 0):
        raise SystemExit(f"armpilot record: error: --handover-within {within} needs --policy handover and a time "
                         "above 0 s")
    if within is None:
        within = HANDOVER_WITHIN_S if args.policy == "handover" else 0.0
    report = run_record(RecordOptions(args.task, args.output, args.episodes, args.seed, args.policy,
                                      args.keep_failures, args.width, args.height, args.domain_id, args.robot,
                                      args.scene, args.object_source, args.push_jitter, args.linger,
                                      args.checkpoint, within))
    print(f"recorded {sum(b['kept'] for b in report['bags'])} of {report['episodes']} episodes "
          f"(success rate {report['success_rate']:.2f}) into {report['output']}")
    return 0
