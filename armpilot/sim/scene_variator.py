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
        self.object_body = model.geom_bodyid[self.object_geom]
        self.object_mass = model.body_mass[self.object_body].copy()
        self.object_inertia = model.body_inertia[self.object_body].copy()
        self.light_diffuse = model.light_diffuse.copy()
        self.bvh_aabb = model.bvh_aabb.copy()  # (nbvh, 6): centre and half extents in the body frame
        self.camera = model.camera(CAMERA_NAME).id
        self.camera_pos = model.cam_pos[self.camera].copy()
        self.camera_quat = model.cam_quat[self.camera].copy()
        names = [f"{DISTRACTOR_BODY}{k}" for k in range(MAX_DISTRACTORS)]
        self.distractors = [(model.joint(f"{n}_free").qposadr[0], model.geom(f"{n}_geom").id)
                            for n in names if _has_body(model, n)]
        first = model.geom_bodyid[self.distractors[0][1]] if self.distractors else 0
        self.distractor_size = model.geom_size[self.distractors[0][1]].copy() if self.distractors else np.zeros(3)
        self.distractor_mass = (float(model.body_mass[first]), model.body_inertia[first].copy())

    def apply(self, data: mujoco.MjData, variation: SceneVariation) -> None:
        """Set ``variation`` on the model and place the distractors in ``data`` (qpos)."""
        model = self.model
        model.geom_rgba[self.object_geom] = [*variation.object_colour, self.object_rgba[3]]
        self._resize(self.object_geom, self.object_size, variation.object_scale, self.object_mass,
                     self.object_inertia)
        model.light_diffuse[:] = np.clip(self.light_diffuse * variation.light_scale, 0.0, 1.0)
        model.cam_pos[self.camera] = self.camera_pos + variation.camera_offset
        turn = euler2quat(*variation.camera_turn_rad)  # (w, x, y, z), as MuJoCo stores quaternions
        model.cam_quat[self.camera] = qmult(self.camera_quat, turn)
        if len(variation.distractors) > len(self.distractors):
            raise ValueError(f"{len(variation.distractors)} distractors for a scene built with {len(self.distractors)}")
        boxes = [variation.distractors[k] if k < len(variation.distractors) else None
                 for k in range(len(self.distractors))]
        for box, (_, geom) in zip(boxes, self.distractors, strict=True):
            scale = 1.0 if box is None else box.half_size / self.half_size
            self._resize(geom, self.distractor_size, scale, *self.distractor_mass)
            if box is not None:
                model.geom_rgba[geom] = [*box.colour, 1.0]
        # MuJoCo derives constants from the masses at compilation (the bodies' and DOFs' inverse weights, by
        # which the constraint solver scales each contact's softness). After a resize they still described the
        # nominal boxes, and pushing a box 1.25-1.4x the nominal size made MuJoCo find the state unstable and
        # reset it (27 times in 47 held-out episodes of one evaluation; test_scenes.py). mj_setConst recomputes
        # them; it overwrites data's positions, so the distractors are placed after it.
        mujoco.mj_setConst(model, data)
        for k, (box, (qpos, _)) in enumerate(zip(boxes, self.distractors, strict=True)):
            parked = parked_position(k, self.distractor_size[2])
            data.qpos[qpos:qpos + 3] = parked if box is None else box.position
            data.qpos[qpos + 3:qpos + 7] = [1.0, 0.0, 0.0, 0.0]

    def _resize(self, geom: int, nominal_size: np.ndarray, scale: float, mass: float, inertia: np.ndarray) -> None:
        """Scale a box or sphere geom with its collision bounds, mass and inertia. MuJoCo does not recompute
        ``geom_rbound``, ``geom_aabb`` or the body's bounding-volume hierarchy (``bvh_aabb``) after
        compilation: a grown geom would lose contact with the table until it sank into its compiled bounds,
        and be thrown out of it (MuJoCo's "simulation unstable" reset). Each resized body holds this one geom
        at its origin, so its bounding boxes scale with it."""
        model = self.model
        size = nominal_size * scale
        model.geom_size[geom] = size
        if model.geom_type[geom] == mujoco.mjtGeom.mjGEOM_SPHERE:
            model.geom_rbound[geom] = size[0]
            model.geom_aabb[geom, 3:] = size[0]
        else:
            model.geom_rbound[geom] = float(np.linalg.norm(size))
            model.geom_aabb[geom, 3:] = size
        body = model.geom_bodyid[geom]
        nodes = slice(model.body_bvhadr[body], model.body_bvhadr[body] + model.body_bvhnum[body])
        model.bvh_aabb[nodes] = self.bvh_aabb[nodes] * scale
        if mass > 0:
            model.body_mass[body] = mass * scale**3
            model.body_inertia[body] = inertia * scale**5


def _has_body(model: mujoco.MjModel, name: str) -> bool:
    return mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, name) >= 0
