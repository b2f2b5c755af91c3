"""Scenes where a pose is not enough: seeded variations (pure) and their effect on the MuJoCo world."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from armpilot.robot_profile import load_profile
from armpilot.sim.scenes import (CLEARANCE, HELDOUT_COLOURS, MAX_DISTRACTORS, TRAIN_COLOURS, SceneVariation,
                                 draw_variation)
from armpilot.sim.world import SimWorld
from armpilot.tasks import get_task

PUSH = get_task("push")


def _draw(scene: str, seed: int):
    init = PUSH.sample(np.random.default_rng(seed))
    variation = draw_variation(scene, seed, init.object_position, init.goal_position, PUSH.object_half_size,
                               np.asarray(PUSH.region_low), np.asarray(PUSH.region_high))
    return init, variation


def test_nominal_varies_nothing_and_unknown_scenes_are_refused():
    nominal, plain = _draw("nominal", 3)[1], SceneVariation()
    assert nominal.object_colour == plain.object_colour and nominal.object_scale == 1.0
    assert nominal.distractors == () and nominal.light_scale == 1.0 and not nominal.camera_offset.any()
    with pytest.raises(ValueError, match="unknown scene"):
        _draw("fancy", 3)


def test_randomized_and_heldout_never_share_colours_or_sizes_and_keep_distractors_clear():
    counts = []
    for seed in range(200):
        init, train = _draw("randomized", seed)
        _, held = _draw("heldout", seed)
        assert train.object_colour in TRAIN_COLOURS and held.object_colour in HELDOUT_COLOURS
        assert 0.8 <= train.object_scale <= 1.2 and not 0.75 < held.object_scale < 1.25
        assert len(train.distractors) <= MAX_DISTRACTORS
        for box in train.distractors:
            assert box.colour != train.object_colour
            for other in (init.object_position, init.goal_position):
                assert np.linalg.norm(box.position[:2] - other[:2]) > CLEARANCE
        counts.append(len(train.distractors))
        assert _draw("randomized", seed)[1].object_colour == train.object_colour  # seeded
    assert set(counts) == set(range(MAX_DISTRACTORS + 1))
    assert not set(TRAIN_COLOURS) & set(HELDOUT_COLOURS)


def test_a_randomized_world_shows_the_variation_and_keeps_the_tasks_own_draw():
    profile = load_profile("armpilot")
    nominal = SimWorld(profile, PUSH, render=False)
    varied = SimWorld(profile, PUSH, render=False, scene="randomized")
    def grown(seed: int) -> bool:  # two distractors, the object and a distractor larger than compiled
        variation = _draw("randomized", seed)[1]
        return (len(variation.distractors) == 2 and variation.object_scale > 1.05
                and max(d.half_size for d in variation.distractors) > 1.05 * PUSH.object_half_size)

    seed = next(s for s in range(200) if grown(s))
    a, b = nominal.reset(seed), varied.reset(seed)
    assert np.allclose(a.object_position[:2], b.object_position[:2]) and np.allclose(a.goal_position, b.goal_position)
    geom = varied.model.geom("task_object_geom").id
    assert np.allclose(varied.model.geom_rgba[geom][:3], varied.variation.object_colour)
    assert np.isclose(b.object_position[2], PUSH.object_half_size * varied.variation.object_scale)
    for k, box in enumerate(varied.variation.distractors):
        body = varied.model.body(f"distractor_{k}").id
        assert np.allclose(varied.data.xpos[body][:2], box.position[:2])
        g = varied.model.geom(f"distractor_{k}_geom").id  # the task's box is the one box on the table
        assert np.allclose(varied.model.geom_size[g], [box.half_size, box.half_size, 2 * box.half_size])
        assert np.isclose(varied.model.geom_rbound[g], np.linalg.norm(varied.model.geom_size[g]))  # broad phase
        assert np.allclose(varied.model.bvh_aabb[varied.model.body_bvhadr[body]][3:], varied.model.geom_size[g])
    for _ in range(500):  # 1 s: the pillars stand still, upright on the table
        mujoco.mj_step(varied.model, varied.data)
    for k, box in enumerate(varied.variation.distractors):
        body = varied.model.body(f"distractor_{k}").id
        assert np.allclose(varied.data.xpos[body], box.position, atol=2e-3)
    assert np.allclose(varied.data.xpos[varied.model.body("task_object").id], b.object_position, atol=2e-3)
    assert np.isclose(varied.model.geom_rbound[geom], np.linalg.norm(varied.model.geom_size[geom]))
    with pytest.raises(KeyError):
        nominal.model.body("distractor_0")  # the nominal scene is today's scene, nothing added


def test_the_language_task_names_one_box_among_boxes_of_other_colours_and_the_expert_touches_it():
    from armpilot.robot import ArmModel
    from armpilot.sim.scenes import COLOUR_NAMES
    from armpilot.tasks.demonstrations import run_expert_episode
    from armpilot.tasks.experts import ScriptedExpert

    profile = load_profile("armpilot")
    task = get_task("language")
    world = SimWorld(profile, task, render=False)  # nominal scene: only the colours vary
    names = set()
    for seed in range(6):
        world.reset(seed)
        colours = [world.variation.object_colour, *(d.colour for d in world.variation.distractors)]
        assert len(colours) == 3 and len(set(colours)) == 3  # the instruction names exactly one box
        sizes = world.model.geom_size[world.model.geom("distractor_0_geom").id]
        assert np.isclose(sizes[2], sizes[0])  # cubes like the task object: only the colour tells
        assert world.instruction == f"touch the {COLOUR_NAMES[world.variation.object_colour]} box"
        names.add(world.instruction)
    assert len(names) > 1
    expert = ScriptedExpert(ArmModel(profile), task)
    results = [run_expert_episode(world, expert, seed).success for seed in range(4)]
    assert sum(results) >= 3, results
    world.reset(0)
    assert not world.success()  # the arm at home touches nothing


def test_a_resized_box_is_pushed_without_the_simulation_blowing_up():
    """Held-out seed 6 draws a box 1.37x the nominal size. With the solver's constants (inverse weights)
    left as compiled for the nominal masses, pushing it made MuJoCo reset the state mid-episode (the clock
    then ran back and perception dropped a minute of frames); ``mj_setConst`` after the resize keeps it stable."""
    from armpilot.robot import ArmModel
    from armpilot.tasks.demonstrations import run_expert_episode
    from armpilot.tasks.experts import ScriptedExpert

    profile = load_profile("armpilot")
    world = SimWorld(profile, PUSH, render=False, scene="heldout")
    reports, step = [], world.step
    world.step = lambda targets, n_steps=1: reports.append(step(targets, n_steps)) or reports[-1]
    rollout = run_expert_episode(world, ScriptedExpert(ArmModel(profile), PUSH), 6)
    assert world.variation.object_scale > 1.25
    assert reports and not any(reports), [r for r in reports if r]
    assert rollout.success
    body = world.model.body("task_object").id
    mass = world.model.body_mass[body]
    assert np.isclose(world.model.body_invweight0[body][0], 1.0 / mass, rtol=0.05)  # a free box: 1 / its mass


def test_the_rendered_camera_pose_is_the_urdfs_in_the_nominal_scene_and_moved_by_the_jitter():
    """What bench/perception_truth.py compares the graph's extrinsics with: equal where nothing varies."""
    from armpilot.perception.geometry import camera_pose_from_urdf
    from armpilot.robot import ArmModel

    arm = ArmModel()
    urdf = camera_pose_from_urdf(arm, arm.profile.camera_frame)
    nominal = SimWorld(arm.profile, PUSH, render=False)
    nominal.reset(3)
    assert np.allclose(nominal.camera_optical_pose(), urdf, atol=1e-6)
    varied = SimWorld(arm.profile, PUSH, render=False, scene="randomized")
    varied.reset(3)
    pose = varied.camera_optical_pose()
    assert np.allclose(pose[:3, 3], urdf[:3, 3] + varied.variation.camera_offset, atol=1e-6)
    turned = np.degrees(np.arccos(np.clip((np.trace(urdf[:3, :3].T @ pose[:3, :3]) - 1) / 2, -1, 1)))
    assert 0.0 < turned <= np.sqrt(3) + 1e-6  # up to 1 deg about each axis
