"""Applies a ``SceneVariation`` to a compiled MuJoCo scene at an episode's reset (no ROS).

Colours, sizes, lights and the camera are model fields MuJoCo reads at every
step and render, so one compiled scene serves every episode; unused
distractors stay parked on the floor, out of the camera's view.
"""

from __future__ import annotations

import mujoco
import numpy as np
from transforms3d.euler import euler2quat
from transforms3d.quaternions import qmult

from armpilot.sim.scene import CAMERA_NAME, DISTRACTOR_BODY, parked_position
from armpilot.sim.scenes import MAX_DISTRACTORS, SceneVariation


class SceneVariator:
    """Remembers the nominal scene; ``apply`` sets one episode's variation (then call ``mj_forward``)."""

    def __init__(self, model: mujoco.MjModel, half_size: float) -> None:
        self.model, self.half_size = model, half_size
        self.object_geom = model.geom("task_object_geom").id
        self.object_rgba = model.geom_rgba[self.object_geom].copy()
        self.object_size = model.geom_size[self.object_geom].copy()
        self.light_diffuse = model.light_diffuse.copy()
        self.camera = model.camera(CAMERA_NAME).id
        self.camera_pos = model.cam_pos[self.camera].copy()
        self.camera_quat = model.cam_quat[self.camera].copy()
        names = [f"{DISTRACTOR_BODY}{k}" for k in range(MAX_DISTRACTORS)]
        self.distractors = [(model.joint(f"{n}_free").qposadr[0], model.geom(f"{n}_geom").id)
                            for n in names if _has_body(model, n)]

    def apply(self, data: mujoco.MjData, variation: SceneVariation) -> None:
        """Set ``variation`` on the model and place the distractors in ``data`` (qpos)."""
        model = self.model
        model.geom_rgba[self.object_geom] = [*variation.object_colour, self.object_rgba[3]]
        model.geom_size[self.object_geom] = self.object_size * variation.object_scale
        model.light_diffuse[:] = np.clip(self.light_diffuse * variation.light_scale, 0.0, 1.0)
        model.cam_pos[self.camera] = self.camera_pos + variation.camera_offset
        turn = euler2quat(*variation.camera_turn_rad)  # (w, x, y, z), as MuJoCo stores quaternions
        model.cam_quat[self.camera] = qmult(self.camera_quat, turn)
        if len(variation.distractors) > len(self.distractors):
            raise ValueError(f"{len(variation.distractors)} distractors for a scene built with {len(self.distractors)}")
        for k, (qpos, geom) in enumerate(self.distractors):
            if k < len(variation.distractors):
                box = variation.distractors[k]
                model.geom_size[geom] = [box.half_size] * 3
                model.geom_rgba[geom] = [*box.colour, 1.0]
                data.qpos[qpos:qpos + 3] = box.position
            else:
                data.qpos[qpos:qpos + 3] = parked_position(k, self.half_size)
            data.qpos[qpos + 3:qpos + 7] = [1.0, 0.0, 0.0, 0.0]


def _has_body(model: mujoco.MjModel, name: str) -> bool:
    return mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, name) >= 0
