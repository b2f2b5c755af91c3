"""Benchmark the MuJoCo simulation: physics step rate, render rate, real-time headroom.

Baselines in the same process: the bare arm (URDF only, no table, object or
contacts) for the physics step, and shadowed rendering for the renderer.

    python bench/sim.py            # table
    python bench/sim.py --json     # one JSON object of figures
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco  # noqa: E402
from figures import print_figures  # noqa: E402  (bench/ is on sys.path when run as a script)

from armpilot.paths import urdf_path  # noqa: E402
from armpilot.robot import HOME_POSITION  # noqa: E402
from armpilot.sim.scene import CameraConfig  # noqa: E402
from armpilot.sim.world import SimWorld  # noqa: E402
from armpilot.tasks import get_task  # noqa: E402


def steps_per_second(model: mujoco.MjModel, data: mujoco.MjData, seconds: float) -> float:
    """Physics steps per wall second over ``seconds`` (batches of 100 steps)."""
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        mujoco.mj_step(model, data, nstep=100)
        count += 100
    return count / (time.perf_counter() - start)


def renders_per_second(world: SimWorld, seconds: float, shadows: bool) -> float:
    """RGB + depth frames per wall second."""
    renderer = world._renderer
    assert renderer is not None
    for light in range(world.model.nlight):
        world.model.light_castshadow[light] = shadows and light == 0
    world.render()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        world.render()
        count += 1
    return count / (time.perf_counter() - start)


def run(seconds: float) -> dict[str, float]:
    figures: dict[str, float] = {}
    bare = mujoco.MjSpec.from_file(str(urdf_path())).compile()
    bare_data = mujoco.MjData(bare)
    figures["bare_arm_steps_per_s"] = steps_per_second(bare, bare_data, seconds)
    world = SimWorld(None, get_task("pick"), CameraConfig(640, 480), render=True)
    world.reset(0)
    world.data.ctrl[:] = HOME_POSITION
    figures["scene_steps_per_s"] = steps_per_second(world.model, world.data, seconds)
    figures["scene_vs_bare_ratio"] = figures["scene_steps_per_s"] / figures["bare_arm_steps_per_s"]
    figures["physics_real_time_factor"] = figures["scene_steps_per_s"] * world.timestep
    for width, height in ((640, 480), (320, 240)):
        sized = SimWorld(None, get_task("pick"), CameraConfig(width, height), render=True)
        sized.reset(0)
        key = f"{width}x{height}"
        figures[f"render_fps_{key}"] = renders_per_second(sized, seconds, shadows=False)
        figures[f"render_fps_{key}_shadows_baseline"] = renders_per_second(sized, seconds, shadows=True)
        figures[f"render_speedup_{key}"] = figures[f"render_fps_{key}"] / figures[f"render_fps_{key}_shadows_baseline"]
        sized.close()
    # one second of the sim node's work: 500 steps + 15 RGB-D frames at 640x480
    cost = 1.0 / figures["physics_real_time_factor"] + 15.0 / figures["render_fps_640x480"]
    figures["real_time_headroom_640x480_15hz"] = 1.0 / cost
    world.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--seconds", type=float, default=1.5, help="measuring time per figure")
    args = parser.parse_args()
    figures = run(args.seconds)
    print_figures(figures, args.json)


if __name__ == "__main__":
    main()
