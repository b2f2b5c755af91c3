"""The robot profile: URDF sources, package:// resolution, xacro, joint_limits.yaml, SRDF, fail-closed checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from armpilot.robot import ArmModel
from armpilot.robot_profile import GripperController, RobotDescriptionError, load_profile, profile_from_dict
from armpilot.urdf_source import package_dir, parse_joints, resolve_package_uris

ROOT = Path(__file__).resolve().parent.parent
ARMPILOT_URDF = (ROOT / "urdf" / "armpilot_arm.urdf").read_text()


def armpilot_raw() -> dict:
    return yaml.safe_load((ROOT / "config" / "robots" / "armpilot.yaml").read_text())


def test_vendor_meshes_resolve_through_the_package_index():
    panda = load_profile("panda")
    assert "package://" not in panda.urdf_xml
    assert (package_dir("example-robot-data") / "robots" / "panda_description").is_dir()
    assert panda.disabled_collisions, "the Panda SRDF's disable_collisions pairs are read"
    assert panda.joints[-1] == "panda_finger_joint1" and panda.gripper.controller is GripperController.ARM


def test_package_paths_in_the_profile_and_ros_package_path(tmp_path, monkeypatch):
    (tmp_path / "my_arm" / "meshes").mkdir(parents=True)
    text = '<robot name="r"><link name="a"><visual><geometry><mesh filename="package://my_arm/meshes/a.stl"/>' \
           '</geometry></visual></link></robot>'
    assert str(tmp_path / "my_arm" / "meshes" / "a.stl") in resolve_package_uris(text, [tmp_path])
    monkeypatch.setenv("ROS_PACKAGE_PATH", str(tmp_path))
    assert str(tmp_path / "my_arm") in resolve_package_uris(text)
    with pytest.raises(RobotDescriptionError, match="package 'nowhere' not found"):
        resolve_package_uris(text.replace("my_arm", "nowhere"))


def test_xacro_is_expanded(tmp_path):
    xacro = tmp_path / "arm.urdf.xacro"
    xacro.write_text(ARMPILOT_URDF.replace('<robot name="armpilot_arm"',
                                           '<robot name="armpilot_arm" xmlns:xacro="http://www.ros.org/wiki/xacro"')
                     .replace("</robot>", '<xacro:property name="unused" value="1"/></robot>'))
    profile = load_profile("armpilot", urdf=str(xacro))
    assert "xacro:property" not in profile.urdf_xml and profile.joints[0] == "shoulder_pan_joint"


def test_joint_limits_yaml_overrides_acceleration_and_jerk(tmp_path):
    limits = tmp_path / "joint_limits.yaml"
    limits.write_text(yaml.safe_dump({"joint_limits": {"elbow_joint": {
        "has_acceleration_limits": True, "max_acceleration": 3.5, "has_jerk_limits": True, "max_jerk": 70.0}}}))
    raw = {**armpilot_raw(), "joint_limits": str(limits)}
    profile = profile_from_dict(raw, ROOT / "config" / "robots")
    k = profile.joints.index("elbow_joint")
    assert profile.max_acceleration[k] == 3.5 and profile.max_jerk[k] == 70.0
    assert profile.max_acceleration[0] == 20.0


@pytest.mark.parametrize("change, message", [
    (lambda r: r.update(joints=["no_such_joint"] + r["joints"][1:]), "'no_such_joint' is not a movable joint"),
    (lambda r: r.update(joints=["gripper_right_finger_joint"] + r["joints"][1:]), "mimics"),
    (lambda r: r.update(max_acceleration=None), "max_acceleration is missing"),
    (lambda r: r.update(home=[0.0, 9.0, 0, 0, 0, 0, 0.04]), "home shoulder_lift_joint = 9.0"),
    (lambda r: r.update(colour="red"), "unknown keys \\['colour'\\]"),
])
def test_a_profile_that_does_not_fit_is_refused_naming_what(change, message):
    raw = armpilot_raw()
    change(raw)
    with pytest.raises(RobotDescriptionError, match=message):
        profile_from_dict(raw, ROOT / "config" / "robots")


@pytest.mark.parametrize("velocity", ["0", "inf", "nan"])
def test_a_joint_without_a_finite_velocity_limit_is_refused(velocity):
    text = ARMPILOT_URDF.replace('velocity="2.0"', f'velocity="{velocity}"', 1)
    assert text != ARMPILOT_URDF
    with pytest.raises(RobotDescriptionError, match="no finite velocity limit"):
        profile_from_dict(armpilot_raw(), ROOT / "config" / "robots", robot_description=text)


def test_max_velocity_lowers_the_urdf_limits_everywhere_and_never_raises_them(tmp_path):
    """A URDF with placeholder speeds (the SO-101's 10 rad/s on every servo) had no way to say the arm's real
    ones: every node read the URDF's. Now ``max_velocity`` (or joint_limits.yaml) lowers them, never raises."""
    raw = {**armpilot_raw(), "max_velocity": {"default": 1.0, "elbow_joint": 50.0}}
    profile = profile_from_dict(raw, ROOT / "config" / "robots")
    urdf = np.array([profile.urdf_joints[n].velocity for n in profile.joints])
    k = profile.joints.index("elbow_joint")
    assert profile.max_velocity[k] == urdf[k], "50 rad/s above the URDF's limit: the URDF's stands"
    others = np.arange(len(urdf)) != k
    assert np.all(profile.max_velocity[others] == np.minimum(urdf[others], 1.0))
    assert np.array_equal(ArmModel(profile).limits.velocity, profile.max_velocity), "the safety node's limits"
    limits = tmp_path / "joint_limits.yaml"
    limits.write_text(yaml.safe_dump({"joint_limits": {"elbow_joint": {"has_velocity_limits": True,
                                                                       "max_velocity": 0.5}}}))
    from_file = profile_from_dict({**raw, "joint_limits": str(limits)}, ROOT / "config" / "robots")
    assert from_file.max_velocity[k] == 0.5, "the file wins over the profile"
    with pytest.raises(RobotDescriptionError, match="max_velocity of joint 'elbow_joint' must be > 0"):
        profile_from_dict({**armpilot_raw(), "max_velocity": {"default": 1.0, "elbow_joint": 0.0}},
                          ROOT / "config" / "robots")


def test_package_uris_with_three_slashes_resolve():
    """TALOS's URDF writes its 93 meshes as package:///example-robot-data/...: left unresolved, every node failed
    to start (the safety node: "Mesh package:///... could not be found")."""
    text = '<robot name="r"><link name="a"><collision><geometry><mesh filename="package:///example-robot-data/' \
           'robots/talos_data/meshes/v2/torso_2.STL"/></geometry></collision></link></robot>'
    resolved = resolve_package_uris(text)
    assert "package:" not in resolved and str(package_dir("example-robot-data")) in resolved


@pytest.mark.parametrize("gripper, message", [
    ({"joint": "gripper_joint", "open": 0.04, "closed": 0.0, "force": 5.0}, "unknown keys \\['force'\\]"),
    ({"joint": "gripper_joint", "open": 0.04, "closed": 0.0, "effort": -1.0}, "effort must be >= 0"),
])
def test_a_gripper_entry_that_does_not_fit_is_refused(gripper, message):
    """An unknown key inside ``gripper:`` (a user's ``force:`` or a misspelt ``efort:``) was silently ignored."""
    with pytest.raises(RobotDescriptionError, match=message):
        profile_from_dict({**armpilot_raw(), "gripper": gripper}, ROOT / "config" / "robots")


def test_a_urdf_without_a_velocity_limit_takes_the_profiles():
    text = ARMPILOT_URDF.replace('velocity="2.0"', 'velocity="0"', 1)
    joint = next(n for n, j in parse_joints(text).items() if j.velocity == 0)
    raw = {**armpilot_raw(), "max_velocity": {joint: 1.5}}
    profile = profile_from_dict(raw, ROOT / "config" / "robots", robot_description=text)
    assert profile.max_velocity[profile.joints.index(joint)] == 1.5


@pytest.mark.parametrize("limits", ['lower="-inf" upper="inf"', 'lower="-3.05" upper="nan"', 'lower="1" upper="1"'])
@pytest.mark.parametrize("kind", ["revolute", "prismatic"])
def test_a_bounded_joint_type_without_a_finite_range_is_refused(kind, limits):
    """Only a 'continuous' joint wraps: a prismatic or revolute joint with infinite limits would be wrapped by
    whole turns (2 pi m for a rail) by the safety node, so it is refused."""
    head, joint = ARMPILOT_URDF.split('<joint name="wrist_3_joint" type="revolute">')
    joint = joint.replace('<limit lower="-3.05" upper="3.05"', f'<limit {limits}', 1)
    text = f'{head}<joint name="wrist_3_joint" type="{kind}">{joint}'
    assert text.count(limits) == 1
    with pytest.raises(RobotDescriptionError, match=f"{kind} joint 'wrist_3_joint' needs finite position limits"):
        profile_from_dict(armpilot_raw(), ROOT / "config" / "robots", robot_description=text)


def test_continuous_joints_are_unbounded_and_fk_is_right():
    text = ARMPILOT_URDF.replace('<joint name="wrist_3_joint" type="revolute">',
                                 '<joint name="wrist_3_joint" type="continuous">')
    joints = parse_joints(text)
    assert joints["wrist_3_joint"].continuous and joints["wrist_3_joint"].upper == np.inf
    arm = ArmModel(profile_from_dict(armpilot_raw(), ROOT / "config" / "robots", robot_description=text))
    plain = ArmModel()
    q = plain.profile.home.copy()
    q[5] = 2.5
    assert np.allclose(arm.tcp_pose(q), plain.tcp_pose(q)) and arm.limits.continuous[5]
    q[5] += 2 * np.pi
    assert np.allclose(arm.tcp_pose(q)[:3, 3], plain.tcp_pose(q)[:3, 3])


def test_separate_gripper_is_a_passive_joint():
    raw = armpilot_raw()
    raw["joints"] = raw["joints"][:6]
    for key in ("home", "max_acceleration", "max_jerk"):
        raw[key] = raw[key][:6]
    raw["gripper"]["controller"] = "separate"
    arm = ArmModel(profile_from_dict(raw, ROOT / "config" / "robots"))
    assert arm.joint_names == tuple(raw["joints"]) and arm.passive_joints == ("gripper_joint",)
    closed = arm.frame_pose("gripper_right_finger", arm.profile.home)
    full = arm.full_configuration(arm.profile.home, {"gripper_joint": 0.0})
    assert full.shape == (arm.model.nq,) and closed.shape == (4, 4)


def test_a_link_named_like_its_fixed_joint_is_the_frame_meant():
    """The Unitree Z1's URDF names a fixed joint and its child link both ``gripperStator``: pinocchio refuses the
    bare name (several frames match), which stopped every node on that arm. The link is meant: the TCP, the
    watched frames and the IK's TCP resolve to it, and ``tcp_rpy`` turns the TCP from there."""
    import pinocchio as pin

    from armpilot.safety.workspace import WorkspaceChecker
    from armpilot.teleop.diff_ik import DiffIk

    profile = load_profile(str(Path(__file__).parent / "profiles" / "z1.yaml"))
    arm = ArmModel(profile)
    link = arm.model.getFrameId("gripperStator", pin.FrameType.BODY)
    home = np.asarray(profile.home)
    link_pose, tcp_pose = arm.frame_pose("gripperStator", home), arm.frame_pose(arm.tcp_frame, home)
    # the TCP is the profile's tcp_offset along the link's x, between the jaws
    assert np.allclose(tcp_pose[:3, 3], link_pose[:3, 3] + link_pose[:3, :3] @ profile.tcp_offset)
    assert profile.tcp_offset[0] > 0.1
    # the profile's tcp_rpy (0, pi/2, 0) turns the TCP's z (the approach axis the experts point down) onto the
    # link's x, along which the Z1's jaws open
    assert np.allclose(tcp_pose[:3, 2], link_pose[:3, 0], atol=1e-4)
    assert np.allclose(arm.frame_pose("gripperStator", home), arm.data.oMf[link].homogeneous)
    checker = WorkspaceChecker(arm, table_clearance=0.003)
    assert checker.check(home[None], profile.joints, dict(arm.passive_defaults)) is None
    DiffIk(arm)


def test_gripper_links_without_collision_geometry_collide_with_their_visuals():
    """Session 30: the SO-100's jaws have only <visual>; MuJoCo, pinocchio and the self filter read <collision>, so
    the sim's jaws closed through every box (pick 0/6), its camera never saw them, and the safety node's model had
    no jaw. Now they collide with their visual meshes, and the profile's summary says so."""
    import pinocchio as pin

    from armpilot.robot import ArmModel

    so100 = load_profile(str(Path(__file__).parent / "profiles" / "so100.yaml"))
    assert so100.collisions_from_visuals == ("gripper", "jaw") and "<visual> geometry" in so100.summary()
    arm = ArmModel(so100)
    geometry = pin.buildGeomFromUrdfString(arm.model, so100.urdf_xml, pin.GeometryType.COLLISION)
    colliding = {arm.model.frames[g.parentFrame].name for g in geometry.geometryObjects}
    assert {"gripper", "jaw"} <= colliding
    assert load_profile("so101").collisions_from_visuals == (), "a URDF with collision geometry is left as it is"


def test_disabled_collisions_in_the_profile_need_no_srdf():
    """Session 30: the G1 ships no SRDF, and its shoulder housing overlaps the torso mesh within its range."""
    g1 = load_profile(str(Path(__file__).parent / "profiles" / "g1_right.yaml"))
    assert ("torso_link", "right_shoulder_roll_link") in g1.disabled_collisions
    from armpilot.profile_values import disabled_pairs

    with pytest.raises(RobotDescriptionError, match="disabled_collisions"):
        disabled_pairs([["torso_link"]], "p.yaml")
