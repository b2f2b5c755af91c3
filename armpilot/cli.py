"""The ``armpilot`` command: run the closed loop in simulation, bring up graphs, inspect them."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from typing import IO

from armpilot.graph import load_graphs, resolve
from armpilot.policies.diffusion_config import SAMPLERS
from armpilot.policies.policy_server import ServerConfig
from armpilot.policies.realtime import TRANSITIONS
from armpilot.policies.registry import BACKENDS
from armpilot.record_command import add_record_parser, record_from_args
from armpilot.robot_profile import DEFAULT_ROBOT, RobotDescriptionError, shipped_profiles
from armpilot.sim.scenes import SCENES
from armpilot.tasks import TASKS, TaskNotSupported
from armpilot.train_command import add_train_parser, add_train_vla_parser, train_from_args


def _robot_choice(text: str) -> str:
    """``--robot``: a shipped profile name or an existing profile YAML."""
    if text in shipped_profiles() or (text.endswith((".yaml", ".yml")) and Path(text).expanduser().is_file()):
        return text
    raise argparse.ArgumentTypeError(f"'{text}' is neither a shipped robot {sorted(shipped_profiles())} "
                                     f"nor a profile YAML file")


EXAMPLES = """examples:
  armpilot demo --task reach --policy scripted --episodes 20 --report out/report.json
  armpilot demo --task pick --episodes 5 --width 320 --height 240
  armpilot demo --task pick --candidates 16 --noise-std 0.02 --bad-probability 0.4 --bad-offset 0.3
  armpilot up sim task:=pick              # the sim graph until Ctrl-C (logs in out/logs)
  armpilot record --task reach --episodes 20 --output out/bags     # demonstrations as MCAP bags
  armpilot replay out/bags/episode_000000 --task reach   # a recorded episode through the live graph
  armpilot graph sim                      # nodes, parameters and remappings of a graph
  armpilot train-scorer --task pick --output out/scorer   # the verifier's learned scorer
  armpilot convert out/bags --output out/dataset --fps 15  # episode bags -> LeRobotDataset v3
  armpilot train out/dataset --output out/policy           # a diffusion policy on it (CPU, minutes)
  armpilot demo --task reach --policy diffusion --checkpoint out/policy --candidates 16
  armpilot serve --task reach --port 8000 &  armpilot demo --policy remote   # inference behind a policy server
  armpilot train-vla out/dataset --output out/vla      # a tiny VLA fine-tuned on the demonstrations
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="armpilot",
        description="Run learned policies on robot arms through a safety node (ROS 2).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="closed loop in simulation: sim -> policy -> safety -> sim, one process each, over DDS",
        description="Bring up the sim graph, run seeded episodes, print success rate, episode times, "
        "topic rates and command latency, write a JSON report, a contact sheet and an MP4.",
    )
    _add_closed_loop_arguments(demo, "scripted", 20)
    demo.add_argument("--candidates", type=int, default=1, help="candidate chunks per step, N (default: 1)")
    demo.add_argument("--min-success", type=float, default=0.0,
                      help="exit with status 1 when the success rate is below this fraction")
    up = sub.add_parser("up", help="bring up a graph (no `launch` needed) until Ctrl-C",
                        description="Start every node of a graph as its own process; Ctrl-C or a crashing "
                        "node stops them all. Arguments are NAME:=VALUE, as with ros2 launch.")
    up.add_argument("graph", help="graph name from config/graph.yaml (sim, real, gazebo)")
    up.add_argument("arguments", nargs="*", help="launch arguments NAME:=VALUE")
    up.add_argument("--domain-id", type=int, default=None, help="ROS_DOMAIN_ID (default: from the environment)")
    up.add_argument("--logs", type=Path, default=Path("out/logs"), help="folder for each node's log")
    add_record_parser(sub, _robot_choice)
    scorer = sub.add_parser(
        "train-scorer", help="train the verifier's learned chunk scorer from scripted demonstrations",
        description="Roll out the scripted expert in the simulator (no ROS), train a small MLP to tell its "
        "chunks from synthetic perturbations, save safetensors + JSON, a loss plot and a report. Use it with "
        "the safety node's parameters learned_scorer:=DIR weight_learned:=0.5.")
    scorer.add_argument("--task", choices=sorted(TASKS), default="pick", help="task to demonstrate (default: pick)")
    scorer.add_argument("--episodes", type=int, default=20, help="demonstration episodes (default: 20)")
    scorer.add_argument("--epochs", type=int, default=300, help="training epochs (default: 300)")
    scorer.add_argument("--seed", type=int, default=0, help="seed of episodes and training")
    scorer.add_argument("--output", type=Path, default=Path("out/scorer"), help="folder for the model")
    conv = sub.add_parser(
        "convert", help="convert recorded episode bags (MCAP) into one LeRobotDataset v3.0",
        description="Read every episode_* rosbag2 folder under BAG_DIR, resample it to --fps with the resampler "
        "the live policy node uses, and write Parquet + MP4 + meta JSON. Bad episodes are skipped with a reason.")
    conv.add_argument("bag_dir", type=Path, help="folder holding episode_* bag folders")
    conv.add_argument("--output", type=Path, required=True, help="dataset folder to create")
    conv.add_argument("--fps", type=int, default=15, help="dataset rate, Hz (default: 15)")
    conv.add_argument("--overwrite", action="store_true", help="replace an existing dataset at --output")
    add_train_parser(sub)
    add_train_vla_parser(sub)
    serve = sub.add_parser(
        "serve", help="host a policy backend on openpi's websocket protocol (run it on the GPU machine)",
        description="Serve a backend (diffusion, scripted) to policy nodes started with policy:=remote "
        "server_uri:=ws://HOST:PORT, and to openpi clients. Binds 127.0.0.1 unless --host says otherwise; set "
        "$ARMPILOT_POLICY_API_KEY to require 'Authorization: Api-Key <key>'. GET /healthz answers 200.")
    serve.add_argument("--backend", choices=[b for b in BACKENDS if b != "remote"], default="diffusion",
                       help="backend to host (default: diffusion)")
    serve.add_argument("--robot", type=_robot_choice, default=DEFAULT_ROBOT,
                       help=f"robot profile the policy runs for (default: {DEFAULT_ROBOT})")
    serve.add_argument("--task", choices=sorted(TASKS), default=None,
                       help="task (default: language for the VLA, reach for the others)")
    serve.add_argument("--checkpoint", default="",
                       help="diffusion checkpoint or VLA model folder (default: the one shipped for the task)")
    serve.add_argument("--sampler", choices=SAMPLERS, default="dpm", help="diffusion sampler (default: dpm)")
    serve.add_argument("--steps", type=int, default=3, help="denoising steps (default: 3)")
    serve.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    serve.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    serve.add_argument("--max-batch", type=int, default=ServerConfig.max_batch,
                       help="most concurrent requests answered by one forward pass (default: %(default)s; 1: none)")
    serve.add_argument("--max-batch-wait-ms", type=float, default=ServerConfig.max_batch_wait_ms,
                       help="longest a request waits for others to batch with, ms (default: %(default)s)")
    evaluate = sub.add_parser(
        "evaluate", help="closed-loop evaluation of a policy checkpoint for several candidate counts N (same seeds)",
        description="For each N in --candidates, run the seeded episodes of 'armpilot demo' (sim -> perception -> "
        "policy -> verifier/safety -> sim, separate processes over DDS) and write one JSON report with the success "
        "rate, command latency and policy inference latency per N, plus each run's report and contact sheet.")
    _add_closed_loop_arguments(evaluate, "diffusion", 50)
    evaluate.add_argument("--candidates", type=int, nargs="+", default=[1, 16],
                          help="candidate counts to compare (default: 1 16)")
    replay = sub.add_parser(
        "replay", help="play a recorded episode bag into perception -> policy -> safety (no arm moves)",
        description="Bring up the replay graph: the player publishes the bag's camera streams, joint states and "
        "episode on the bag's time; the safety node's commands go to /replay/arm_controller/joint_trajectory. "
        "When the player finishes, print messages replayed, proposals, commands, and the first-point agreement "
        "with the recorded commands.")
    replay.add_argument("bag", type=Path, help="episode bag folder (OUT/episode_NNNNNN)")
    replay.add_argument("--task", choices=sorted(TASKS), default="reach", help="task (default: reach)")
    replay.add_argument("--policy", default="scripted", help="policy backend (default: scripted)")
    replay.add_argument("--rate", type=float, default=1.0, help="replay speed (default: 1.0 = recorded pace)")
    replay.add_argument("--domain-id", type=int, default=None, help="ROS_DOMAIN_ID (default: from the environment)")
    replay.add_argument("--logs", type=Path, default=Path("out/replay_logs"), help="folder for each node's log")
    show = sub.add_parser("graph", help="print a graph's nodes and launch arguments")
    show.add_argument("graph", nargs="?", default="sim", help="graph name (default: sim)")
    return parser


def _add_closed_loop_arguments(demo: argparse.ArgumentParser, policy: str, episodes: int) -> None:
    demo.add_argument("--robot", type=_robot_choice, default=DEFAULT_ROBOT,
                      help=f"robot profile: {' | '.join(sorted(shipped_profiles()))} or a profile YAML "
                           f"(default: {DEFAULT_ROBOT})")
    demo.add_argument("--task", choices=sorted(TASKS), default=None,
                      help="task to solve (default: language for the VLA, reach for the others)")
    demo.add_argument("--policy", choices=BACKENDS, default=policy, help=f"policy backend (default: {policy})")
    demo.add_argument("--checkpoint", default="",
                      help="diffusion checkpoint or VLA model folder (default: the one shipped for the task)")
    demo.add_argument("--sampler", choices=SAMPLERS, default="dpm", help="diffusion sampler (default: dpm)")
    demo.add_argument("--steps", type=int, default=3, help="diffusion denoising steps per chunk (default: 3)")
    demo.add_argument("--server-uri", default="ws://127.0.0.1:8000", help="policy server for --policy remote")
    demo.add_argument("--episodes", type=int, default=episodes, help=f"number of seeded episodes (default: {episodes})")
    demo.add_argument("--seed", type=int, default=0, help="seed of the first episode; episode k uses seed+k")
    demo.add_argument("--scene", choices=SCENES, default="nominal",
                      help="what the sim varies per episode: nominal | randomized | heldout (default: nominal)")
    demo.add_argument("--report", type=Path, default=Path("out/report.json"), help="JSON report path")
    demo.add_argument("--media", type=Path, default=None, help="folder for images, video and node logs "
                      "(default: next to the report)")
    demo.add_argument("--width", type=int, default=640, help="camera width, px (default: 640)")
    demo.add_argument("--height", type=int, default=480, help="camera height, px (default: 480)")
    demo.add_argument("--camera-rate", type=float, default=15.0, help="camera rate, Hz (default: 15)")
    demo.add_argument("--sim-speed", type=_positive_float, default=1.0,
                      help="sim seconds per wall second (default: 1). Below 1 every node's computing time "
                           "shrinks in sim time: 0.5 shows what a machine twice as fast would achieve")
    demo.add_argument("--domain-id", type=int, default=None, help="ROS_DOMAIN_ID (default: from the environment)")
    demo.add_argument("--no-video", action="store_true", help="skip the MP4 of the first episode")
    demo.add_argument("--object-source", choices=("perception", "privileged"), default="perception",
                      help="where the policy gets the task object (default: perception)")
    demo.add_argument("--noise-std", type=float, default=0.0,
                      help="perturbed proposer: std of each candidate's joint offset, rad (default: 0)")
    demo.add_argument("--transition", choices=TRANSITIONS, default=None,
                      help="how a new chunk takes over: replace | ensemble | rtc (Real-Time Chunking) "
                           "(default: ensemble for the VLA, replace for the others)")
    demo.add_argument("--delay-ms", type=float, default=0.0, help="latency added to every inference, ms (default: 0)")
    demo.add_argument("--bad-probability", type=float, default=0.0,
                      help="perturbed proposer: chance a candidate is bad (default: 0)")
    demo.add_argument("--bad-offset", type=float, default=0.15, help="size of a wrong candidate's offset, rad")


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _launch_values(pairs: list[str]) -> dict[str, str]:
    values = {}
    for pair in pairs:
        if ":=" not in pair:
            raise SystemExit(f"launch arguments look like NAME:=VALUE, got '{pair}'")
        key, value = pair.split(":=", 1)
        values[key] = value
    return values


def _cmd_graph(name: str) -> int:
    graph = load_graphs()[name]
    print(f"graph '{graph.name}': {graph.description}\narguments:")
    for arg in graph.arguments:
        print(f"  {arg.name}:={arg.default}  - {arg.description}")
    print("nodes:")
    for node in resolve(graph):
        extra = " (needs a full ROS install)" if node.ros_only else ""
        print(f"  {node.name}: {node.package}/{node.executable}{extra}")
        for key, value in node.parameters.items():
            print(f"      -p {key}:={value}")
        for source, target in node.remappings:
            print(f"      -r {source}:={target}")
    return 0


def _cmd_up(name: str, pairs: list[str], domain_id: int | None, logs: Path) -> int:
    from armpilot.bringup import GraphSupervisor, NodeFailed, ros_environment

    graphs = load_graphs()
    if name not in graphs:
        raise SystemExit(f"unknown graph '{name}'; graphs: {sorted(graphs)}")
    try:
        nodes = resolve(graphs[name], _launch_values(pairs))
    except KeyError as error:  # a misspelt argument: the same error as in ros2 launch
        raise SystemExit(f"error: {error.args[0]}") from None
    # Ctrl-C must stop the graph even when a parent shell started us with SIGINT ignored (a background job);
    # SIGTERM and SIGHUP (a closed terminal) stop it the same way
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    supervisor = GraphSupervisor(nodes, ros_environment(domain_id), logs)
    failure: NodeFailed | None = None
    try:
        supervisor.start()
        _say(f"started {supervisor.pids()} (logs in {logs}); skipped {list(supervisor.skipped)}; Ctrl-C stops")
        supervisor.wait()
    except KeyboardInterrupt:
        _say("stopping (safety node first: it holds the arm)...")
    except NodeFailed as error:
        failure = error
        _say(f"error: {failure}", sys.stderr)
    finally:  # whatever ended the wait (a signal, a closed stdout, an error), the nodes stop
        codes = supervisor.stop()
    _say(f"stopped: exit codes {codes}", sys.stderr if failure else sys.stdout)
    return 1 if failure else 0


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _say(text: str, stream: IO[str] | None = None) -> None:
    """Print, ignoring a closed output (``armpilot up | head``): stopping the graph matters more."""
    try:
        print(text, file=stream or sys.stdout, flush=True)
    except (BrokenPipeError, OSError, ValueError):
        if stream is None:  # no "Exception ignored" noise at exit from the unflushable stdout
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives until exit


def _cmd_convert(bag_dir: Path, output: Path, fps: int, overwrite: bool) -> int:
    from armpilot.dataset.convert import convert

    try:
        summary = convert(bag_dir, output, fps, overwrite)
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print("\n".join(summary.lines()))
    return 0


def _cmd_replay(args: argparse.Namespace) -> int:
    from armpilot.bringup import NodeFailed
    from armpilot.recording.player import PlayerError
    from armpilot.ros_nodes.replay_runner import ReplayOptions, report_lines, run_replay

    try:
        report = run_replay(ReplayOptions(args.bag, args.task, args.policy, args.rate, args.domain_id, args.logs))
    except (PlayerError, NodeFailed, TimeoutError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print("\n".join(report_lines(report)))
    return 0


def _demo_options(args: argparse.Namespace):
    from armpilot.policies.config import default_transition
    from armpilot.ros_nodes.demo_runner import DemoOptions, transition_arguments

    return DemoOptions(
        task=args.task, policy=args.policy, episodes=args.episodes, seed=args.seed, report=args.report,
        media=args.media, width=args.width, height=args.height, camera_rate=args.camera_rate,
        domain_id=args.domain_id, video=not args.no_video, min_success=getattr(args, "min_success", 0.0),
        extra_arguments={"object_source": args.object_source,
                         "candidates": str(args.candidates) if isinstance(args.candidates, int) else "1",
                         "checkpoint": str(Path(args.checkpoint).resolve()) if args.checkpoint else '""',
                         "sampler_steps": str(args.steps), "sampler": args.sampler, "server_uri": args.server_uri,
                         "robot": args.robot, "scene": args.scene, "real_time_factor": str(args.sim_speed),
                         "noise_std": str(args.noise_std), "bad_probability": str(args.bad_probability),
                         "bad_offset": str(args.bad_offset),
                         **transition_arguments(args.transition or default_transition(args.policy),
                                                args.delay_ms)},
    )


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line, with the task a backend runs by default (demo, evaluate, serve) filled in."""
    args = _parser().parse_args(argv)
    if getattr(args, "task", "") is None:
        from armpilot.policies.config import default_task

        args.task = default_task(getattr(args, "policy", None) or getattr(args, "backend", ""))
    return args


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``armpilot`` command."""
    args = parse_arguments(argv)
    if args.command == "graph":
        return _cmd_graph(args.graph)
    if args.command == "up":
        return _cmd_up(args.graph, args.arguments, args.domain_id, args.logs)
    if args.command == "record":
        return record_from_args(args)
    if args.command == "convert":
        return _cmd_convert(args.bag_dir, args.output, args.fps, args.overwrite)
    if args.command == "replay":
        return _cmd_replay(args)
    if args.command == "train":
        return train_from_args(args)
    if args.command == "train-vla":
        from armpilot.train_command import train_vla_command

        return train_vla_command(args)
    if args.command == "serve":
        from armpilot.serve_command import serve_command

        return serve_command(args)
    if args.command == "evaluate":
        from armpilot.bringup import NodeFailed
        from armpilot.evaluate_command import evaluate

        try:
            evaluate(_demo_options(args), args.candidates, args.report)
        except (NodeFailed, RobotDescriptionError, TaskNotSupported) as failure:
            print(f"error: {failure}", file=sys.stderr)
            return 1
        return 0
    if args.command == "train-scorer":
        from armpilot.scorer_training import train_scorer_command

        report = train_scorer_command(args.task, args.episodes, args.epochs, args.output, args.seed)
        print("\n".join(f"  {key:<28} {value}" for key, value in report.items()))
        return 0
    from armpilot.bringup import NodeFailed
    from armpilot.ros_nodes.demo_runner import run_demo

    options = _demo_options(args)
    try:
        report = run_demo(options)
    except (NodeFailed, RobotDescriptionError, TaskNotSupported) as failure:
        print(f"error: {failure}", file=sys.stderr)
        return 1
    if report["success_rate"] < options.min_success:
        print(f"success rate {report['success_rate']:.2f} is below --min-success {options.min_success}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
