"""Benchmark perception against the sim's truth: where the cloud pipeline puts the pushed box, while the
closed-loop expert pushes it, against where the box is.

Each camera frame (15.6 Hz, as the sim node renders) goes through the graph's pipeline twice: with the
extrinsics the graph uses (the URDF's camera frame; the randomized scene moves the rendered camera up to
1 cm and turns it up to 1 deg away from it) and, as the baseline, with the rendered camera's true pose
(what a perfect hand-eye calibration gives). The task box is the perceived object within 5 cm of its true
centre (none: lost). Errors are in the table plane, cm; "near" frames are those with the tool within 2 cm
of the box's surface, where the self-filter must leave the box alone.

    python bench/perception_truth.py                  # table, 5 randomized push episodes
    python bench/perception_truth.py --seeds 10 --json
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402
from figures import print_figures  # noqa: E402  (bench/ is on sys.path when run as a script)
from tqdm import tqdm  # noqa: E402

#: A perceived object farther than this from the box's true centre (m, in the plane) is not the box.
MATCH_M = 0.05
#: The tool is "near" the box when its centre is within this of the box's surface (m).
NEAR_M = 0.02
CAMERA_RATE_HZ = 15.0


def box_error(objects, true_xy: np.ndarray) -> float | None:
    """Plane distance (m) from the box's true centre to the nearest perceived object, None when none is near."""
    if not objects:
        return None
    error = min(float(np.linalg.norm(o.position[:2] - true_xy)) for o in objects)
    return error if error < MATCH_M else None


class BoxErrorMeter:
    """``after_step`` of an expert rollout: every camera frame (15.6 Hz, as the sim node renders) through the
    graph's pipeline (the URDF's extrinsics) and one with the rendered camera's true pose; appends to ``rows``
    per frame the box error (m, None: lost) of each and whether the tool was near the box."""

    def __init__(self, arm, world, width: int, height: int) -> None:
        from armpilot.perception.cloud import CloudPipeline
        from armpilot.perception.config import PerceptionConfig
        from armpilot.perception.geometry import Intrinsics, camera_pose_from_urdf
        from armpilot.perception.self_filter import RobotBoxes
        from armpilot.tasks.demonstrations import CONTROL_SUBSTEPS

        intrinsics = Intrinsics(*world.intrinsics(), width, height)
        self.pipeline = lambda base_T_camera: CloudPipeline(PerceptionConfig(), intrinsics, base_T_camera)
        self.graph = self.pipeline(camera_pose_from_urdf(arm, arm.profile.camera_frame))
        self.true_pose = self.graph
        self.boxes = RobotBoxes(arm)
        self.every = max(1, round(1.0 / (CAMERA_RATE_HZ * CONTROL_SUBSTEPS * world.timestep)))
        self.ticks = 0
        self.rows: dict[str, list] = {"graph": [], "true_pose": [], "near": []}

    def new_episode(self, world) -> None:
        """After ``world.reset``: the camera's true pose changes with each episode's jitter."""
        self.true_pose, self.ticks = self.pipeline(world.camera_optical_pose()), 0

    def __call__(self, world) -> None:
        from armpilot.perception.frames import depth_to_metres

        self.ticks += 1
        if self.ticks % self.every:
            return
        color, depth = world.render()
        depth = depth_to_metres(np.round(depth * 1000.0).astype(np.uint16), "16UC1")  # as the sim node sends it
        placed = self.boxes(world.joint_positions())
        position, _ = world.object_pose()
        for name, pipeline in (("graph", self.graph), ("true_pose", self.true_pose)):
            self.rows[name].append(box_error(pipeline.process(depth, color, placed).objects, position[:2]))
        corner = world.episode_task.object_half_size * np.sqrt(3)  # the box's centre to a corner, m
        self.rows["near"].append(bool(np.linalg.norm(world.tcp_position() - position) < corner + NEAR_M))


def measure(seeds: range, scene: str, width: int, height: int, push_jitter: float) -> dict[str, list]:
    """``BoxErrorMeter.rows`` over the closed-loop expert's pushes, and per episode whether it succeeded."""
    from armpilot.robot import ArmModel
    from armpilot.sim.scene import CameraConfig
    from armpilot.sim.world import SimWorld
    from armpilot.tasks import get_task
    from armpilot.tasks.demonstrations import run_expert_episode
    from armpilot.tasks.experts import ScriptedExpert

    arm = ArmModel()
    task = get_task("push", arm.profile.reach)
    world = SimWorld(arm.profile, task, CameraConfig(width, height), scene=scene)
    meter = BoxErrorMeter(arm, world, width, height)
    successes = []
    for seed in tqdm(seeds, desc="push episodes", unit="ep"):
        world.reset(seed)  # run_expert_episode resets it again with the same seed: the same episode
        meter.new_episode(world)
        expert = ScriptedExpert(arm, task, push_jitter=push_jitter, seed=seed, closed_loop=True)
        successes.append(run_expert_episode(world, expert, seed, after_step=meter).success)
    world.close()
    return {**meter.rows, "success": successes}


def figures_of(rows: dict[str, list]) -> dict[str, float | int]:
    """Median and p90 error (cm) and lost frames per variant, all frames and near ones; graph / true ratio."""
    near = np.asarray(rows["near"])
    out: dict[str, float | int] = {"episodes": len(rows["success"]), "expert_successes": int(sum(rows["success"])),
                                   "frames": len(near), "frames_tool_near_box": int(near.sum())}
    for name in ("graph", "true_pose"):
        for label, select in (("all", np.ones_like(near)), ("near", near)):
            errors = [e for e, keep in zip(rows[name], select, strict=True) if keep]
            found = 100.0 * np.array([e for e in errors if e is not None])
            out[f"{name}_{label}_lost_frames"] = len(errors) - len(found)
            out[f"{name}_{label}_error_cm_p50"] = float(np.median(found)) if len(found) else float("nan")
            out[f"{name}_{label}_error_cm_p90"] = float(np.percentile(found, 90)) if len(found) else float("nan")
    out["graph_vs_true_pose_p50_ratio_near"] = out["graph_near_error_cm_p50"] / max(out["true_pose_near_error_cm_p50"],
                                                                                   1e-6)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--seeds", type=int, default=5, help="episodes, seeds 0..N-1")
    parser.add_argument("--scene", default="randomized", help="nominal | randomized | heldout")
    parser.add_argument("--width", type=int, default=320, help="camera width, px")
    parser.add_argument("--height", type=int, default=240, help="camera height, px")
    parser.add_argument("--push-jitter", type=float, default=0.01, help="the expert's steering noise, m")
    args = parser.parse_args()
    rows = measure(range(args.seeds), args.scene, args.width, args.height, args.push_jitter)
    print_figures(figures_of(rows), args.json)


if __name__ == "__main__":
    main()
