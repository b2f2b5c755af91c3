"""The launch files bring up exactly the graphs of config/graph.yaml.

``launch``/``launch_ros`` are not on PyPI, so stand-ins that record their
keyword arguments run each ``generate_launch_description()``; the recorded
nodes must equal :func:`armpilot.graph.resolve` for the same argument values.
"""

from __future__ import annotations

import ast
import importlib.util
import py_compile
import subprocess
import sys
import types
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml

from armpilot.robot_profile import load_profile
from armpilot.gazebo_support import GZ_SYSTEM_PLUGIN, gazebo_urdf
from armpilot.graph import load_graphs, resolve

ROOT = Path(__file__).resolve().parent.parent
LAUNCH_FILES = {"sim": "sim.launch.py", "real": "real.launch.py", "gazebo": "gazebo.launch.py",
                "record": "record.launch.py", "teleop": "teleop.launch.py",
                "replay": "replay.launch.py"}
ARM_JOINTS = ["shoulder_pan_joint", "shoulder_lift_joint", "elbow_joint", "wrist_1_joint", "wrist_2_joint",
              "wrist_3_joint", "gripper_joint"]


class Recorder:
    """Stands in for any launch action: keeps its arguments."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs = args, kwargs


def _stub_modules() -> dict[str, types.ModuleType]:
    classes = {
        "launch": ["LaunchDescription"],
        "launch.actions": ["DeclareLaunchArgument", "OpaqueFunction", "IncludeLaunchDescription",
                           "RegisterEventHandler", "Shutdown"],
        "launch.substitutions": ["LaunchConfiguration"],
        "launch.launch_description_sources": ["PythonLaunchDescriptionSource"],
        "launch.event_handlers": ["OnProcessExit"],
        "launch_ros": [],
        "launch_ros.actions": ["Node"],
        "ament_index_python": [],
        "ament_index_python.packages": [],
    }
    modules = {}
    for module_name, names in classes.items():
        module = types.ModuleType(module_name)
        for name in names:
            setattr(module, name, type(name, (Recorder,), {}))
        modules[module_name] = module
    modules["ament_index_python.packages"].get_package_share_directory = lambda p: f"/opt/ros/share/{p}"
    return modules


@pytest.fixture
def stubs(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, module in _stub_modules().items():
        monkeypatch.setitem(sys.modules, name, module)


def _launch(graph: str, _check_known: bool = True, **values: str) -> tuple[list[Recorder], list[Recorder]]:
    """(declared arguments, actions the OpaqueFunction returns) for ``values``."""
    path = ROOT / "launch" / LAUNCH_FILES[graph]
    spec = importlib.util.spec_from_file_location(f"armpilot_test_{graph}_launch", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    (entities,) = description.args
    declared = [e for e in entities if type(e).__name__ == "DeclareLaunchArgument"]
    (opaque,) = [e for e in entities if type(e).__name__ == "OpaqueFunction"]
    configurations = {d.args[0]: d.kwargs["default_value"] for d in declared}
    unknown = set(values) - set(configurations)
    assert not unknown or not _check_known, f"{graph} launch has no arguments {unknown}"
    configurations.update(values)
    context = types.SimpleNamespace(launch_configurations=configurations)
    return declared, opaque.kwargs["function"](context)


def _nodes(actions: list[Recorder]) -> dict[str, dict[str, Any]]:
    return {a.kwargs.get("name") or a.kwargs["executable"]: a.kwargs
            for a in actions if type(a).__name__ == "Node"}


def _graph_values(graph: str, values: dict[str, str]) -> dict[str, str]:
    names = {a.name for a in load_graphs()[graph].arguments}
    return {k: v for k, v in values.items() if k in names}


# ----------------------------------------------------------------- (a) source


@pytest.mark.parametrize("graph", sorted(LAUNCH_FILES))
def test_launch_file_compiles_and_names_no_nodes(graph: str, tmp_path: Path) -> None:
    path = ROOT / "launch" / LAUNCH_FILES[graph]
    py_compile.compile(str(path), cfile=str(tmp_path / "out.pyc"), doraise=True)
    text = path.read_text()
    assert f'graph_launch_description("{graph}"' in text
    assert "executable=" not in text and "Node(" not in text


def test_support_modules_do_not_import_launch() -> None:
    code = ("import sys, armpilot.launch_support, armpilot.gazebo_support; "
            "assert not {'launch', 'launch_ros'} & set(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


# ------------------------------------------------------- (b) stand-in launch

CASES = [
    ("sim", {}),
    ("sim", {"task": "pick", "seed": "7", "width": "320", "camera_rate": "30.0", "rviz": "true"}),
    ("real", {}),
    ("real", {"task": "push", "controller_topic": "/my/topic", "joint_states_topic": "/arm/joint_states"}),
    ("gazebo", {}),
    ("gazebo", {"task": "pick", "controller_topic": "/my/topic"}),
]


@pytest.mark.parametrize(("graph", "values"), CASES)
def test_launch_nodes_equal_resolved_graph(stubs: None, graph: str, values: dict[str, str]) -> None:
    _, actions = _launch(graph, **values)
    nodes = _nodes(actions)
    config_dir = ROOT / "config"
    for spec in resolve(load_graphs()[graph], _graph_values(graph, values)):
        kwargs = nodes[spec.name]
        assert (kwargs["package"], kwargs["executable"]) == (spec.package, spec.executable)
        files = [p for p in kwargs["parameters"] if not isinstance(p, dict)]
        assert files == [str(config_dir / f) for f in spec.parameter_files]
        assert all(Path(f).is_file() for f in files)
        set_values = {k: v for p in kwargs["parameters"] if isinstance(p, dict) for k, v in p.items()}
        set_values.pop("robot_description", None)
        assert set_values == dict(spec.parameters)
        assert list(kwargs.get("remappings", [])) == list(spec.remappings)
    graph_executables = {n.executable for n in load_graphs()[graph].nodes}
    assert sum(n["executable"] in graph_executables for n in nodes.values()) == len(load_graphs()[graph].nodes)


@pytest.mark.parametrize("graph", sorted(LAUNCH_FILES))
def test_every_argument_is_declared_with_a_description(stubs: None, graph: str) -> None:
    declared, _ = _launch(graph)
    names = [d.args[0] for d in declared]
    assert len(names) == len(set(names))
    assert {a.name for a in load_graphs()[graph].arguments} | {"rviz"} <= set(names)
    for d in declared:
        assert d.kwargs.get("description", "").strip(), f"{graph}: argument {d.args[0]} has no description"
        assert isinstance(d.kwargs.get("default_value"), str)


def test_overrides_reach_the_nodes(stubs: None) -> None:
    nodes = _nodes(_launch("sim", task="pick", seed="3")[1])
    assert nodes["sim"]["parameters"][-1]["task"] == "pick"
    assert nodes["sim"]["parameters"][-1]["seed"] == 3
    assert nodes["policy"]["parameters"][-1]["task"] == "pick"
    nodes = _nodes(_launch("real", controller_topic="/my/topic")[1])
    assert ("/arm_controller/joint_trajectory", "/my/topic") in nodes["safety"]["remappings"]
    assert not nodes["policy"]["remappings"]


@pytest.mark.parametrize("graph", sorted(LAUNCH_FILES))
def test_a_misspelt_argument_is_an_error_naming_the_known_ones(stubs: None, graph: str) -> None:
    with pytest.raises(ValueError, match=r"unknown launch argument\(s\) \['tsak'\].*'rviz'"):
        _launch(graph, _check_known=False, tsak="pick")


def test_required_nodes_stop_the_launch_and_proposers_respawn(stubs: None) -> None:
    nodes = _nodes(_launch("sim")[1])
    for name in ("sim", "safety"):
        (shutdown,) = nodes[name]["on_exit"]
        assert type(shutdown).__name__ == "Shutdown" and name in shutdown.kwargs["reason"]
        assert not nodes[name].get("respawn")
    for name in ("perception", "tracks", "policy"):
        assert nodes[name]["respawn"] is True and nodes[name]["respawn_delay"] > 0
        assert nodes[name]["respawn_max_retries"] > 0 and "on_exit" not in nodes[name]


def test_rviz_is_optional(stubs: None) -> None:
    assert "rviz2" not in _nodes(_launch("sim")[1])
    rviz = _nodes(_launch("sim", rviz="true")[1])["rviz2"]
    config = Path(rviz["arguments"][rviz["arguments"].index("-d") + 1])
    assert config == ROOT / "config" / "armpilot.rviz" and config.is_file()
    assert rviz["parameters"] == [{"use_sim_time": True}]
    assert _nodes(_launch("real", rviz="true")[1])["rviz2"]["parameters"] == [{"use_sim_time": False}]


def test_real_urdf_and_camera_arguments(stubs: None, tmp_path: Path) -> None:
    nodes = _nodes(_launch("real")[1])
    urdf_text = (ROOT / "urdf" / "armpilot_arm.urdf").read_text()
    assert nodes["robot_state_publisher"]["parameters"][-1]["robot_description"] == urdf_text
    other = tmp_path / "other.urdf"
    other.write_text(urdf_text.replace('<robot name="armpilot_arm"', '<robot name="other"'))
    nodes = _nodes(_launch("real", urdf=str(other))[1])
    assert nodes["robot_state_publisher"]["parameters"][-1]["robot_description"] == other.read_text()
    assert nodes["safety"]["parameters"][-1]["urdf"] == str(other)
    panda = _nodes(_launch("real", robot="panda")[1])
    assert "panda_joint7" in panda["robot_state_publisher"]["parameters"][-1]["robot_description"]
    assert {panda[n]["parameters"][-1]["robot"] for n in ("safety", "policy", "perception")} == {"panda"}
    with pytest.raises(ValueError, match="not a movable joint"):  # a URDF without the profile's joints
        (tmp_path / "bare.urdf").write_text('<robot name="bare"><link name="base_link"/></robot>')
        _launch("real", urdf=str(tmp_path / "bare.urdf"))
    assert not [a for a in _launch("real")[1] if type(a).__name__ == "IncludeLaunchDescription"]
    (include,) = [a for a in _launch("real", camera="realsense2_camera")[1]
                  if type(a).__name__ == "IncludeLaunchDescription"]
    assert include.args[0].args[0] == "/opt/ros/share/realsense2_camera/launch/rs_launch.py"
    assert ("align_depth.enable", "true") in include.kwargs["launch_arguments"]
    with pytest.raises(ValueError, match="camera"):
        _launch("real", camera="kinect")
    with pytest.raises(ValueError, match="missing.urdf does not exist"):
        _launch("real", urdf=str(tmp_path / "missing.urdf"))


def test_gazebo_world_spawn_bridge_and_controllers(stubs: None) -> None:
    actions = _launch("gazebo")[1]
    nodes = _nodes(actions)
    description = nodes["robot_state_publisher"]["parameters"][-1]["robot_description"]
    assert GZ_SYSTEM_PLUGIN in description
    (include,) = [a for a in actions if type(a).__name__ == "IncludeLaunchDescription"]
    assert include.args[0].args[0] == "/opt/ros/share/ros_gz_sim/launch/gz_sim.launch.py"
    assert ("gz_args", "-r empty.sdf") in include.kwargs["launch_arguments"]
    spawn = nodes["create"]
    assert spawn["package"] == "ros_gz_sim" and spawn["arguments"][:2] == ["-topic", "robot_description"]
    bridge = nodes["gz_bridge"]
    assert "/clock@rosgraph_msgs/msg/Clock[gz.msgs.Clock" in bridge["arguments"]
    targets = {ros for _, ros in bridge["remappings"]}
    assert {"/camera/camera/color/image_raw", "/camera/camera/aligned_depth_to_color/image_raw",
            "/camera/camera/color/camera_info"} <= targets
    handlers = [a.args[0] for a in actions if type(a).__name__ == "RegisterEventHandler"]
    chain = [(h.kwargs["target_action"].kwargs["executable"], h.kwargs["on_exit"][0].kwargs["arguments"][0])
             for h in handlers]
    assert chain == [("create", "joint_state_broadcaster"), ("spawner", "arm_controller")]


# ------------------------------------------------------ (c) package contents


def _console_scripts() -> set[str]:
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "NODES" for t in node.targets):
            return set(ast.literal_eval(node.value))
    raise AssertionError("setup.py has no NODES dict of console scripts")


def test_graph_executables_files_and_dependencies_exist() -> None:
    scripts = _console_scripts()
    exec_depends = {e.text for e in ET.parse(ROOT / "package.xml").getroot().iter("exec_depend")}
    assert {"launch", "launch_ros", "rviz2"} <= exec_depends
    for graph in load_graphs().values():
        for node in graph.nodes:
            if node.package == "armpilot":
                assert node.executable in scripts, f"{node.executable} is not a console script"
            for file in node.parameter_files:
                assert (ROOT / "config" / file).is_file(), f"config/{file} missing"
            if node.ros_only:
                assert node.package in exec_depends, f"{node.package} missing from package.xml"


# ------------------------------------------------------ (d) gazebo URDF, controllers


def test_gazebo_urdf_swaps_hardware_and_adds_plugins(tmp_path: Path) -> None:
    urdf_text = (ROOT / "urdf" / "armpilot_arm.urdf").read_text()
    yaml_path = ROOT / "config" / "ros2_controllers.yaml"
    robot = ET.fromstring(gazebo_urdf(urdf_text, yaml_path))
    hardware = [p.text for p in robot.findall("./ros2_control/hardware/plugin")]
    assert hardware == [GZ_SYSTEM_PLUGIN]
    (control,) = [p for p in robot.findall("./gazebo/plugin") if p.get("filename") == "gz_ros2_control-system"]
    assert control.get("name") == "gz_ros2_control::GazeboSimROS2ControlPlugin"
    parameters = Path(control.findtext("parameters"))
    assert parameters.is_absolute() and parameters == yaml_path.resolve()
    (sensor,) = robot.findall("./gazebo[@reference='camera_link']/sensor")
    assert sensor.get("type") == "rgbd_camera"
    joints = [j.get("name") for j in robot.findall("./ros2_control/joint")]
    assert joints == ARM_JOINTS
    original = {j.get("name") for j in ET.fromstring(urdf_text).findall("./joint")}
    assert original <= {j.get("name") for j in robot.findall("./joint")}
    relative = gazebo_urdf(urdf_text, Path("config") / "ros2_controllers.yaml")
    assert Path(ET.fromstring(relative).findtext("./gazebo/plugin/parameters")).is_absolute()
    with pytest.raises(ValueError):
        gazebo_urdf('<robot name="r"><link name="base_link"/></robot>', yaml_path)


def test_controllers_match_the_urdf() -> None:
    config = yaml.safe_load((ROOT / "config" / "ros2_controllers.yaml").read_text())
    urdf = ET.parse(ROOT / "urdf" / "armpilot_arm.urdf").getroot()
    urdf_joints = [j.get("name") for j in urdf.findall("./ros2_control/joint")]
    arm = config["arm_controller"]["ros__parameters"]
    assert arm["joints"] == urdf_joints == ARM_JOINTS
    assert arm["command_interfaces"] == ["position"] and arm["state_interfaces"] == ["position", "velocity"]
    assert set(arm["constraints"]) >= {"goal_time", *urdf_joints}
    manager = config["controller_manager"]["ros__parameters"]
    assert manager["update_rate"] == 250
    assert manager["arm_controller"]["type"] == "joint_trajectory_controller/JointTrajectoryController"
    assert load_profile("armpilot").joints == tuple(urdf_joints)
