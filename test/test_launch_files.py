"""The launch files bring up exactly the graphs of config/graph.yaml.

Each ``generate_launch_description()`` is evaluated with the real ``launch``
and ``launch_ros`` (the vendored sources CI installs): the arguments are
declared, the check runs, and every Node performs its substitutions and writes
its parameter files as it would under ``ros2 launch``. What the nodes get must
equal :func:`armpilot.graph.resolve` for the same argument values.
"""

from __future__ import annotations

import ast
import importlib.util
import py_compile
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
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
                "replay": "replay.launch.py", "real_record": "real_record.launch.py"}
ARM_JOINTS = ["shoulder_pan_joint", "shoulder_lift_joint", "elbow_joint", "wrist_1_joint", "wrist_2_joint",
              "wrist_3_joint", "gripper_joint"]
STUBS = ROOT / "test" / "launch_stubs"  # composition_interfaces, which launch_ros imports


@pytest.fixture
def real_launch(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The real ``launch`` modules; Node, OnProcessExit and the launch file source keep their arguments."""
    monkeypatch.syspath_prepend(str(STUBS))
    launch = pytest.importorskip("launch", reason="the vendored ros2 launch sources are not installed")
    launch_ros_actions = pytest.importorskip("launch_ros.actions")
    event_handlers = pytest.importorskip("launch.event_handlers")
    sources = pytest.importorskip("launch.launch_description_sources")
    ament = pytest.importorskip("ament_index_python.packages")
    for module, name in ((launch_ros_actions, "Node"), (event_handlers, "OnProcessExit"),
                         (sources, "PythonLaunchDescriptionSource")):
        real = getattr(module, name)

        def __init__(self: Any, *args: Any, _real: type = real, **kwargs: Any) -> None:
            self.args, self.kwargs = args, kwargs
            _real.__init__(self, *args, **kwargs)

        monkeypatch.setattr(module, name, type(name, (real,), {"__init__": __init__}))
    monkeypatch.setattr(ament, "get_package_share_directory", lambda p: f"/opt/ros/share/{p}")
    return launch


@dataclass
class LaunchedNode:
    """What one Node action of a launch file starts, evaluated as ``ros2 launch`` would."""

    action: Any
    package: str
    executable: str
    parameter_files: list[str]  # the installed files under config/
    parameters: dict[str, Any]  # the values launch writes into its own parameter files
    remappings: list[tuple[str, str]]  # identity remappings (an argument left at its topic) dropped
    command: list[str | None]  # the command line after the executable, substitutions performed

    @property
    def kwargs(self) -> dict[str, Any]:
        return self.action.kwargs


def _evaluate_node(node: Any, context: Any) -> LaunchedNode:
    from launch.substitutions import LocalSubstitution
    from launch.utilities import perform_substitutions

    node._perform_substitutions(context)
    texts = [None if any(isinstance(s, LocalSubstitution) for s in part) else perform_substitutions(context, part)
             for part in node.cmd[1:]]  # cmd[0] is the executable, found through the ament index
    files = [texts[i + 1] for i, text in enumerate(texts) if text == "--params-file"]
    config_dir = str(ROOT / "config")
    generated = [f for f in files if not f.startswith(config_dir)]
    values: dict[str, Any] = {}
    for file in generated:
        values.update(yaml.safe_load(Path(file).read_text())["/**"]["ros__parameters"])
    remaps = [(a, b) for a, b in (node.expanded_remapping_rules or []) if a != b]
    return LaunchedNode(node, node.node_package, node.node_executable, [f for f in files if f not in generated],
                        values, remaps, texts)


def _launch(graph: str, _check_known: bool = True, **values: str) -> tuple[list, dict[str, LaunchedNode], list]:
    """(declared arguments, started nodes by name, extra actions) of ``graph``'s launch file for ``values``."""
    from launch import LaunchContext
    from launch.actions import DeclareLaunchArgument, OpaqueFunction
    from launch_ros.actions import Node

    path = ROOT / "launch" / LAUNCH_FILES[graph]
    spec = importlib.util.spec_from_file_location(f"armpilot_test_{graph}_launch", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    entities = module.generate_launch_description().entities
    declared = [e for e in entities if isinstance(e, DeclareLaunchArgument)]
    unknown = set(values) - {d.name for d in declared}
    assert not unknown or not _check_known, f"{graph} launch has no arguments {unknown}"
    context = LaunchContext()
    context.launch_configurations.update(values)
    for argument in declared:
        argument.execute(context)
    (check,) = [e for e in entities if isinstance(e, OpaqueFunction)]
    extras = check.execute(context) or []
    nodes = {}
    for action in entities:
        if isinstance(action, Node) and (action.condition is None or action.condition.evaluate(context)):
            launched = _evaluate_node(action, context)
            nodes[launched.kwargs.get("name") or launched.executable] = launched
    return declared, nodes, extras


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


# ------------------------------------------------------------ (b) real launch

CASES = [
    ("sim", {}),
    ("sim", {"task": "pick", "seed": "7", "width": "320", "camera_rate": "30", "rviz": "true",
             "instruction": "yes", "urdf": '""'}),
    ("real", {}),
    ("real", {"task": "push", "controller_topic": "/my/topic", "joint_states_topic": "/arm/joint_states"}),
    ("gazebo", {}),
    ("gazebo", {"task": "pick", "controller_topic": "/my/topic"}),
    ("record", {}),
    ("teleop", {}),
    ("replay", {}),
    ("real_record", {}),
    ("real_record", {"controller_topic": "/my/topic", "joint_states_topic": "/arm/joint_states", "output": "/data"}),
]


@pytest.mark.parametrize(("graph", "values"), CASES)
def test_launch_nodes_equal_resolved_graph(real_launch: Any, graph: str, values: dict[str, str]) -> None:
    _, nodes, _ = _launch(graph, **values)
    config_dir = ROOT / "config"
    specs = resolve(load_graphs()[graph], _graph_values(graph, values))
    for spec in specs:
        node = nodes[spec.name]
        assert (node.package, node.executable) == (spec.package, spec.executable)
        assert node.parameter_files == [str(config_dir / f) for f in spec.parameter_files]
        assert all(Path(f).is_file() for f in node.parameter_files)
        parameters = dict(node.parameters)
        parameters.pop("robot_description", None)
        assert parameters == dict(spec.parameters)
        assert {k: type(v) for k, v in parameters.items()} == {k: type(v) for k, v in spec.parameters.items()}
        assert node.remappings == list(spec.remappings)
    assert set(nodes) - {"rviz2"} == {s.name for s in specs}


@pytest.mark.parametrize("graph", sorted(LAUNCH_FILES))
def test_ros2_launch_print_shows_every_node(real_launch: Any, graph: str) -> None:
    """``ros2 launch -p`` (LaunchIntrospector) lists each node's executable, not one opaque function."""
    path = ROOT / "launch" / LAUNCH_FILES[graph]
    spec = importlib.util.spec_from_file_location(f"armpilot_test_{graph}_print", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = real_launch.LaunchIntrospector().format_launch_description(module.generate_launch_description())
    for node in load_graphs()[graph].nodes:
        assert f"ExecInPkg(pkg='{node.package}', exec='{node.executable}')" in text, text


@pytest.mark.parametrize("graph", sorted(LAUNCH_FILES))
def test_every_argument_is_declared_with_a_description(real_launch: Any, graph: str) -> None:
    declared, _, _ = _launch(graph)
    names = [d.name for d in declared]
    assert len(names) == len(set(names))
    assert {a.name for a in load_graphs()[graph].arguments} | {"rviz"} <= set(names)
    for d in declared:
        assert d.description.strip(), f"{graph}: argument {d.name} has no description"
        assert d.default_value is not None


def test_overrides_reach_the_nodes(real_launch: Any) -> None:
    nodes = _launch("sim", task="pick", seed="3", camera_rate="30", instruction="yes")[1]
    assert nodes["sim"].parameters["task"] == "pick" and nodes["policy"].parameters["task"] == "pick"
    assert nodes["sim"].parameters["seed"] == 3
    assert nodes["sim"].parameters["camera_rate_hz"] == 30.0  # a float argument stays a float
    assert nodes["policy"].parameters["instruction"] is True  # as `armpilot up` reads it (YAML)
    assert nodes["policy"].parameters["checkpoint"] == ""
    nodes = _launch("real", controller_topic="/my/topic")[1]
    assert ("/arm_controller/joint_trajectory", "/my/topic") in nodes["safety"].remappings
    assert not nodes["policy"].remappings


@pytest.mark.parametrize("graph", sorted(LAUNCH_FILES))
def test_a_misspelt_argument_is_an_error_naming_the_known_ones(real_launch: Any, graph: str) -> None:
    with pytest.raises(ValueError, match=r"unknown launch argument\(s\) \['tsak'\].*'rviz'"):
        _launch(graph, _check_known=False, tsak="pick")


def test_required_nodes_stop_the_launch_and_proposers_respawn(real_launch: Any) -> None:
    from launch.actions import Shutdown

    nodes = {name: n.kwargs for name, n in _launch("sim")[1].items()}
    for name in ("sim", "safety"):
        (shutdown,) = nodes[name]["on_exit"]
        assert isinstance(shutdown, Shutdown) and not nodes[name].get("respawn")
    for name in ("perception", "tracks", "policy"):
        assert nodes[name]["respawn"] is True and nodes[name]["respawn_delay"] > 0
        assert nodes[name]["respawn_max_retries"] > 0 and "on_exit" not in nodes[name]


def test_rviz_is_optional(real_launch: Any) -> None:
    assert "rviz2" not in _launch("sim")[1]
    assert "rviz2" not in _launch("sim", rviz="no")[1]
    rviz = _launch("sim", rviz="true")[1]["rviz2"]
    arguments = rviz.kwargs["arguments"]
    config = Path(arguments[arguments.index("-d") + 1])
    assert config == ROOT / "config" / "armpilot.rviz" and config.is_file()
    assert rviz.parameters == {"use_sim_time": True}
    assert rviz.command[rviz.command.index("--fixed-frame") + 1] == "base_link"
    panda = _launch("sim", rviz="true", robot="panda")[1]["rviz2"]
    assert panda.command[panda.command.index("--fixed-frame") + 1] == "panda_link0", "the profile's base_frame"
    assert _launch("real", rviz="on")[1]["rviz2"].parameters == {"use_sim_time": False}


def test_real_urdf_and_camera_arguments(real_launch: Any, tmp_path: Path) -> None:
    from launch.actions import IncludeLaunchDescription

    nodes = _launch("real")[1]
    urdf_text = (ROOT / "urdf" / "armpilot_arm.urdf").read_text()
    assert nodes["robot_state_publisher"].parameters["robot_description"] == urdf_text
    other = tmp_path / "other.urdf"
    other.write_text(urdf_text.replace('<robot name="armpilot_arm"', '<robot name="other"'))
    nodes = _launch("real", urdf=str(other))[1]
    assert nodes["robot_state_publisher"].parameters["robot_description"] == other.read_text()
    assert nodes["safety"].parameters["urdf"] == str(other)
    panda = _launch("real", robot="panda")[1]
    assert "panda_joint7" in panda["robot_state_publisher"].parameters["robot_description"]
    assert {panda[n].parameters["robot"] for n in ("safety", "policy", "perception")} == {"panda"}
    with pytest.raises(ValueError, match="not a movable joint"):  # a URDF without the profile's joints
        (tmp_path / "bare.urdf").write_text('<robot name="bare"><link name="base_link"/></robot>')
        _launch("real", urdf=str(tmp_path / "bare.urdf"))
    assert not _launch("real")[2]
    (include,) = _launch("real", camera="realsense2_camera")[2]
    assert isinstance(include, IncludeLaunchDescription)
    assert include.launch_description_source.args == ("/opt/ros/share/realsense2_camera/launch/rs_launch.py",)
    assert dict(include.launch_arguments)["align_depth.enable"] == "true"
    with pytest.raises(ValueError, match="camera"):
        _launch("real", camera="kinect")
    with pytest.raises(ValueError, match="missing.urdf does not exist"):
        _launch("real", urdf=str(tmp_path / "missing.urdf"))


def test_gazebo_world_spawn_bridge_and_controllers(real_launch: Any) -> None:
    from launch.actions import IncludeLaunchDescription, RegisterEventHandler

    _, nodes, extras = _launch("gazebo")
    assert GZ_SYSTEM_PLUGIN in nodes["robot_state_publisher"].parameters["robot_description"]
    (include,) = [a for a in extras if isinstance(a, IncludeLaunchDescription)]
    assert include.launch_description_source.args == ("/opt/ros/share/ros_gz_sim/launch/gz_sim.launch.py",)
    assert dict(include.launch_arguments)["gz_args"] == "-r empty.sdf"
    extra_nodes = {a.kwargs.get("name") or a.kwargs["executable"]: a.kwargs for a in extras if hasattr(a, "kwargs")}
    spawn = extra_nodes["create"]
    assert spawn["package"] == "ros_gz_sim" and spawn["arguments"][:2] == ["-topic", "robot_description"]
    bridge = extra_nodes["gz_bridge"]
    assert "/clock@rosgraph_msgs/msg/Clock[gz.msgs.Clock" in bridge["arguments"]
    targets = {ros for _, ros in bridge["remappings"]}
    assert {"/camera/camera/color/image_raw", "/camera/camera/aligned_depth_to_color/image_raw",
            "/camera/camera/color/camera_info"} <= targets
    handlers = [a.event_handler for a in extras if isinstance(a, RegisterEventHandler)]
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
