"""Compose the MuJoCo scene around the robot profile's arm with ``mujoco.MjSpec``.

The profile's URDF (meshes resolved to absolute paths) is the single source of
truth for the arm; this module adds the table and task regions scaled to the
arm's reach, the task object, lights, position servos sized from the URDF's
effort limits (armpilot's own arm keeps its tuned gains) and the RGB-D camera
at the profile's camera frame or extrinsics.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import mujoco
import numpy as np
from transforms3d.quaternions import mat2quat, quat2mat

from armpilot.perception.geometry import camera_mount
from armpilot.robot import ArmModel
from armpilot.robot_profile import RobotProfile
from armpilot.tasks import Task

CAMERA_NAME = "rgbd"
#: MuJoCo cameras look along -z with y up; ROS optical frames along +z with y down: a turn of pi about x.
OPTICAL_TO_MUJOCO_CAMERA = np.diag([1.0, -1.0, -1.0])
OBJECT_BODY = "task_object"
DISTRACTOR_BODY = "distractor_"
FLOOR_Z = -0.75
GOAL_BODY = "task_goal"
#: Table half extents and centre as fractions of the arm's reach (armpilot's 0.6 m: 0.6 x 0.5 m at x = 0.35).
TABLE_HALF = (1.0, 5.0 / 6.0)
TABLE_CENTRE_X = 0.35 / 0.6
TABLE_THICKNESS = 0.02  # half, m
#: armpilot's own arm: tuned position-servo stiffness (N m/rad or N/m), damping and armature per joint.
ARMPILOT_SERVOS = {
    "shoulder_pan_joint": (3000.0, 120.0, 0.2), "shoulder_lift_joint": (3000.0, 120.0, 0.2),
    "elbow_joint": (2000.0, 80.0, 0.1), "wrist_1_joint": (500.0, 20.0, 0.02), "wrist_2_joint": (500.0, 20.0, 0.02),
    "wrist_3_joint": (300.0, 10.0, 0.01), "gripper_joint": (800.0, 20.0, 0.01),
}
#: Other arms: stiffness = effort limit / this error (rad or m), capped; damping = stiffness * KV_RATIO.
SERVO_FULL_EFFORT_ERROR = 0.03
SERVO_KP_MAX = 6000.0
KV_RATIO = 0.04
#: boundmass / boundinertia: a link without an <inertial> on a joint (a bare camera mount) gets a speck of mass, below
#: anything a real link has, instead of MuJoCo's refusal of a massless moving body.
MUJOCO_URDF_OPTIONS = ('<mujoco><compiler strippath="false" discardvisual="true" fusestatic="false" '
                       'boundmass="1e-6" boundinertia="1e-12"/></mujoco>')

LINK_COLOURS = {
    "base_link": (0.15, 0.15, 0.17, 1),
    "upper_arm_link": (0.95, 0.5, 0.1, 1),
    "wrist_1_link": (0.95, 0.5, 0.1, 1),
    "gripper_base_link": (0.15, 0.15, 0.17, 1),
}


@dataclass(frozen=True)
class CameraConfig:
    """Render settings of the RGB-D camera: pixels and vertical field of view (deg)."""

    width: int = 640
    height: int = 480
    fovy_deg: float = 55.0


def camera_placement(arm: ArmModel, spec: mujoco.MjSpec) -> tuple[mujoco.MjsBody, np.ndarray, np.ndarray]:
    """The body the camera hangs from (the world, or for a camera the arm moves, its link: a wrist camera) and the
    optical frame's position (3,) and MuJoCo quaternion (w, x, y, z) in that body.

    MuJoCo cameras look along -z with y up; ROS optical frames look along +z
    with y down, so the rotation is the optical one turned pi about x.
    """
    mount = camera_mount(arm)
    pose, body = mount.home_pose, spec.worldbody
    if mount.moves:
        frames = arm.model.frames
        index = arm.model.getFrameId(mount.frame)
        while index > 0 and spec.body(frames[index].name) is None:  # up to the link MuJoCo has as a body
            index = frames[index].parentFrame
        link = frames[index].name
        body = spec.body(link)
        if body is None:
            raise ValueError(f"camera frame '{mount.frame}' moves with the arm but hangs from no link of its URDF")
        pose = np.linalg.inv(arm.frame_pose(link)) @ pose
    rotation = pose[:3, :3] @ OPTICAL_TO_MUJOCO_CAMERA
    return body, pose[:3, 3].copy(), mat2quat(rotation)


def facing_away(arm: ArmModel) -> str:
    """Why the sim's tasks may be out of the arm's way ("" when they are not): the table and every task region lie
    along +x of the base frame, and a tool behind the base at home (iCub's base frame faces backward; the
    SO-100's URDF faces -y) usually cannot get there."""
    x = float(arm.tcp_pose(np.asarray(arm.profile.home, float))[0, 3])
    if x >= 0.0:
        return ""
    return (f"the tool is at x = {x:.2f} m in '{arm.profile.base_frame}' at home, behind the base, and the sim's "
            "table and tasks lie along +x: choose a home facing +x (turn the base joint) or a base_frame whose x "
            "axis points at the table")


def mujoco_urdf(profile: RobotProfile) -> str:
    """The profile's URDF with MuJoCo's import options (absolute mesh paths, no visuals, links kept)."""
    xml = re.sub(r"<mujoco>.*?</mujoco>", "", profile.urdf_xml, flags=re.S)
    return re.sub(r"(<robot[^>]*>)", r"\1" + MUJOCO_URDF_OPTIONS, xml, count=1)


#: Mesh files MuJoCo decodes itself; others (COLLADA .dae, as Kinova's URDFs use) are read with coal (assimp).
MUJOCO_MESH_FORMATS = (".stl", ".obj", ".msh")


def load_meshes_mujoco_cannot_read(spec: mujoco.MjSpec) -> None:
    """Give every mesh of ``spec`` in a format MuJoCo cannot decode its vertices, read with coal (the library
    the safety node's collision checks load the same files with). MuJoCo collides with a mesh's convex hull,
    which it builds from the vertices alone; the URDF's ``scale`` stays on the mesh."""
    import coal  # pinocchio's collision library: imported only for such a URDF

    for mesh in spec.meshes:
        if not mesh.file or mesh.file.lower().endswith(MUJOCO_MESH_FORMATS):
            continue
        try:
            vertices = np.asarray(coal.MeshLoader().load(mesh.file, np.ones(3)).vertices(), float)
        except Exception as error:  # noqa: BLE001 - coal raises plain RuntimeErrors; name the file either way
            raise ValueError(f"the sim cannot read mesh '{mesh.file}' ({error}); convert it to STL or OBJ") from error
        mesh.file = ""
        mesh.uservert = vertices.ravel().tolist()


def make_inertias_physical(spec: mujoco.MjSpec) -> list[str]:
    """Replace each URDF inertia MuJoCo refuses (an eigenvalue <= 0, or one larger than the other two together)
    by a sphere's of its largest moment; returns the bodies changed. Such inertias are common in descriptions
    made for kinematics (tiny sensor links); the arm's servos hold every joint, so the sim barely feels them."""
    changed = []
    for body in spec.bodies:
        full = np.asarray(body.fullinertia, float)
        if np.isnan(full[0]):
            moments = np.sort(np.asarray(body.inertia, float))
        else:
            ixx, iyy, izz, ixy, ixz, iyz = full
            moments = np.linalg.eigvalsh(np.array([[ixx, ixy, ixz], [ixy, iyy, iyz], [ixz, iyz, izz]]))
        if not body.explicitinertial or body.mass <= 0 or not np.any(moments):
            continue
        if moments[0] > 0 and moments[0] + moments[1] >= moments[2] * (1 - 1e-9):
            continue
        largest = max(float(moments.max()), 1e-9)
        body.fullinertia = [np.nan, 0, 0, 0, 0, 0]
        body.inertia = [largest] * 3
        changed.append(body.name)
    return changed


def place_base_frame_at_origin(spec: mujoco.MjSpec, root_from_base: np.ndarray) -> None:
    """Move the URDF's top-level bodies so that the profile's ``base_frame`` (4x4 pose in the URDF's root) is
    MuJoCo's world: the table, the task regions and the camera extrinsics are all given in that frame."""
    if np.allclose(root_from_base, np.eye(4)):
        return
    base_from_root = np.linalg.inv(root_from_base)
    body = spec.worldbody.first_body()
    while body is not None:
        if body.alt.type != mujoco.mjtOrientation.mjORIENTATION_QUAT:
            raise ValueError(f"the sim cannot re-place body '{body.name}' given by {body.alt.type.name}")
        placed = np.eye(4)
        placed[:3, :3], placed[:3, 3] = quat2mat(body.quat), body.pos
        placed = base_from_root @ placed
        body.pos, body.quat = placed[:3, 3], mat2quat(placed[:3, :3])
        body = spec.worldbody.next_body(body)


def build_scene(profile: RobotProfile, task: Task, camera: CameraConfig, distractors: int = 0,
                distractor_height: float = 1.0) -> mujoco.MjSpec:
    """The full scene spec: the profile's arm, table, ``task``'s object, camera, lights, and ``distractors``
    free boxes ``distractor_height`` times as tall as wide (parked on the floor out of view until a scene
    variation places them)."""
    arm = ArmModel(profile)
    spec = mujoco.MjSpec.from_string(mujoco_urdf(profile))
    load_meshes_mujoco_cannot_read(spec)
    place_base_frame_at_origin(spec, arm.root_from_base)
    make_inertias_physical(spec)
    # the URDF's own visuals were dropped at parse time; keep the scene's visual-only markers
    spec.compiler.discardvisual = False
    spec.option.timestep = 0.002
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    spec.option.cone = mujoco.mjtCone.mjCONE_ELLIPTIC
    spec.option.noslip_iterations = 3
    spec.visual.global_.offwidth = max(camera.width, 640)
    spec.visual.global_.offheight = max(camera.height, 480)
    spec.visual.headlight.ambient = [0.35, 0.35, 0.35]
    lowest = _configure_arm(spec, arm)
    world = spec.worldbody
    reach = profile.reach
    table_top = world.add_geom(
        name="table",
        type=mujoco.mjtGeom.mjGEOM_BOX,
        size=[TABLE_HALF[0] * reach, TABLE_HALF[1] * reach, TABLE_THICKNESS],
        pos=[TABLE_CENTRE_X * reach, 0.0, profile.table_z - TABLE_THICKNESS],
        rgba=[0.72, 0.6, 0.45, 1],
    )
    table_top.friction = [0.8, 0.005, 0.0001]
    # under a table set low, and under the robot at home (the sim's floor cut a humanoid's legs: TALOS's knees
    # were pushed 1.28 rad out of their pose)
    floor = min(FLOOR_Z, profile.table_z + FLOOR_Z, lowest - 0.005)
    world.add_geom(name="floor", type=mujoco.mjtGeom.mjGEOM_PLANE, size=[3, 3, 0.1], pos=[0, 0, floor],
                   rgba=[0.3, 0.32, 0.35, 1])
    world.add_light(name="key", pos=[0.4, -0.6, 1.6], dir=[0, 0.3, -1], diffuse=[0.7, 0.7, 0.7], castshadow=False)
    world.add_light(name="fill", pos=[0.9, 0.6, 1.2], dir=[-0.4, -0.3, -1], diffuse=[0.3, 0.3, 0.3], castshadow=False)
    mount, cam_pos, cam_quat = camera_placement(arm, spec)
    mount.add_camera(name=CAMERA_NAME, pos=cam_pos, quat=cam_quat, fovy=camera.fovy_deg)
    _add_task_bodies(spec, task)
    for k in range(distractors):
        half = np.array([1.0, 1.0, distractor_height]) * task.object_half_size
        body = world.add_body(name=f"{DISTRACTOR_BODY}{k}", pos=parked_position(k, half[2]))
        body.add_freejoint(name=f"{DISTRACTOR_BODY}{k}_free")
        geom = body.add_geom(name=f"{DISTRACTOR_BODY}{k}_geom", type=mujoco.mjtGeom.mjGEOM_BOX,
                             size=half, mass=max(task.object_mass, 0.05) * distractor_height,
                             rgba=[0.5, 0.5, 0.5, 1])
        geom.friction = [1.2, 0.01, 0.0001]
        geom.condim = 4
    return spec


def parked_position(index: int, half_height: float) -> list[float]:
    """Where unused distractor ``index`` rests: on the floor, far behind the arm (out of the camera's view)."""
    return [-2.5, 2.0 + 0.4 * index, FLOOR_Z + half_height]


def _configure_arm(spec: mujoco.MjSpec, arm: ArmModel) -> float:
    """Gravity compensation, colours, servos (the profile's joints, a separate gripper, and every other
    uncommanded joint held where ``ArmModel.passive_defaults`` puts it) and contact exclusions: the gripper's
    links, the SRDF's disabled pairs and the robot's links in contact at home (by construction: an arm whose
    shoulder's hull overlaps a torso could never hold its pose against that contact). Returns the lowest z of
    the robot at home (m, base frame)."""
    profile = arm.profile
    gripper_links = arm.gripper_links()
    for body in spec.bodies:
        if body.name not in ("world",):
            body.gravcomp = 1.0
        for geom in body.geoms:
            geom.rgba = list(LINK_COLOURS.get(body.name, (0.55, 0.57, 0.6, 1)))
            if body.name in gripper_links:
                geom.friction = [1.5, 0.01, 0.0001]
                geom.condim = 4
    commanded = list(profile.joints) + list(arm.passive_joints)
    for name in commanded:
        joint = spec.joint(name)
        effort = profile.urdf_joints[name].effort or 100.0
        if name == profile.gripper.joint and profile.gripper.effort > 0:  # the URDF's is a placeholder
            effort = profile.gripper.effort
            joint.actfrcrange = [-effort, effort]  # MuJoCo's URDF import caps the joint at the URDF's effort
        tuned = ARMPILOT_SERVOS.get(name) if profile.name == "armpilot" else None
        kp, kv, armature = tuned or _servo(effort)
        joint.armature = armature
        actuator = spec.add_actuator(name=name, target=name, trntype=mujoco.mjtTrn.mjTRN_JOINT)
        actuator.set_to_position(kp=kp, kv=kv)
        if profile.urdf_joints[name].continuous or not joint.range[0] < joint.range[1]:  # no range: unlimited
            actuator.ctrllimited = mujoco.mjtLimited.mjLIMITED_FALSE
        else:
            actuator.ctrlrange = list(joint.range)
            actuator.ctrllimited = mujoco.mjtLimited.mjLIMITED_TRUE
        actuator.forcerange = [-effort, effort]
        actuator.forcelimited = mujoco.mjtLimited.mjLIMITED_TRUE
    for name, joint in profile.urdf_joints.items():
        if joint.mimic and joint.mimic in commanded:
            spec.joint(name).armature = spec.joint(joint.mimic).armature
            spec.joint(name).limited = mujoco.mjtLimited.mjLIMITED_FALSE  # its master's limits bound it
    links = sorted(gripper_links)
    for k, first in enumerate(links):
        for second in links[k + 1:]:
            spec.add_exclude(bodyname1=first, bodyname2=second)
    bodies = {body.name for body in spec.bodies}
    touching, lowest = _robot_at_home(spec, arm)
    pairs = {frozenset(p) for p in profile.disabled_collisions} | touching
    for pair in sorted(tuple(sorted(p)) for p in pairs):
        if len(pair) == 2 and set(pair) <= bodies and not set(pair) <= gripper_links:
            spec.add_exclude(bodyname1=pair[0], bodyname2=pair[1])
    base = spec.worldbody.first_body()
    spec.add_exclude(bodyname1="world", bodyname2=base.name)
    child = base.first_body()
    if child is not None:
        spec.add_exclude(bodyname1=base.name, bodyname2=child.name)
    return lowest


def _robot_at_home(spec: mujoco.MjSpec, arm: ArmModel) -> tuple[set[frozenset[str]], float]:
    """With every joint at home (the scene holds only the robot when this runs): the pairs of its bodies MuJoCo
    finds in contact (not those its parent-child filter already skips), and the lowest z of its colliding
    geometry's boxes (m, base frame: a humanoid's feet lie 1 m below its pelvis)."""
    model = spec.compile()
    data = mujoco.MjData(model)
    for name, value in arm.home_of_every_joint().items():
        data.qpos[model.joint(name).qposadr[0]] = value
    mujoco.mj_forward(model, data)
    pairs = set()
    for contact in data.contact[: data.ncon]:
        first, second = (model.body(model.geom_bodyid[g]).name for g in (contact.geom1, contact.geom2))
        if "world" not in (first, second):
            pairs.add(frozenset((first, second)))
    corners = np.array(np.meshgrid(*[(-1.0, 1.0)] * 3)).reshape(3, -1).T  # (8, 3) of a unit box
    lowest = np.inf
    for g in range(model.ngeom):
        if model.geom_contype[g] or model.geom_conaffinity[g]:
            centre, half = model.geom_aabb[g, :3], model.geom_aabb[g, 3:]
            z = (corners * half + centre) @ data.geom_xmat[g].reshape(3, 3)[2] + data.geom_xpos[g][2]
            lowest = min(lowest, float(z.min()))
    return pairs, lowest


def _servo(effort: float) -> tuple[float, float, float]:
    """(stiffness, damping, armature) of a position servo for a joint with this effort limit."""
    kp = min(effort / SERVO_FULL_EFFORT_ERROR, SERVO_KP_MAX)
    return kp, KV_RATIO * kp, 0.1 if effort > 50 else 0.02


def _add_task_bodies(spec: mujoco.MjSpec, task: Task) -> None:
    """The task's object (free box or mocap target) and a goal marker (mocap, no collision)."""
    world = spec.worldbody
    size = task.object_half_size
    if task.object_kind == "box":
        body = world.add_body(name=OBJECT_BODY, pos=[0.4, 0.0, size])
        body.add_freejoint(name="task_object_free")
        geom = body.add_geom(
            name="task_object_geom",
            type=mujoco.mjtGeom.mjGEOM_BOX,
            size=[size, size, size],
            mass=task.object_mass,
            rgba=[0.85, 0.15, 0.15, 1],
        )
        geom.friction = [1.2, 0.01, 0.0001]
        geom.condim = 4
    else:
        body = world.add_body(name=OBJECT_BODY, pos=[0.4, 0.0, 0.15], mocap=True)
        body.add_geom(
            name="task_object_geom", type=mujoco.mjtGeom.mjGEOM_SPHERE, size=[size, 0, 0], rgba=[0.9, 0.1, 0.1, 1],
            contype=0, conaffinity=0,
        )
    goal = world.add_body(name=GOAL_BODY, pos=[0.4, 0.0, 0.001], mocap=True)
    if task.needs_user_goal:  # the pad the box goes to (push, place)
        goal.add_geom(
            type=mujoco.mjtGeom.mjGEOM_CYLINDER,
            size=[task.tolerance + size, 0.001, 0],
            rgba=[0.1, 0.8, 0.2, 0.6],
            contype=0,
            conaffinity=0,
        )
