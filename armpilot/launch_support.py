"""Launch-file helpers: a graph from ``config/graph.yaml`` as ``launch`` actions.

The launch files in ``launch/`` only name their graph; everything else comes
from here. Argument values are read at launch time (``OpaqueFunction``) and
applied with :func:`armpilot.graph.resolve`, exactly as ``armpilot up`` applies
them, so both bring up the same nodes with the same parameters and remappings.

The pure parts (no ``launch`` import) are tested on any machine; the functions
that build actions import ``launch``/``launch_ros`` inside, so importing this
module needs neither.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from armpilot.graph import (RESPAWN_DELAY_S, RESPAWN_MAX_RETRIES, GraphSpec, NodeSpec, load_graphs, parse_value,
                            resolve)
from armpilot.paths import share_dir


@dataclass(frozen=True)
class ExtraArgument:
    """A launch-only argument (not in graph.yaml): rviz, urdf, camera."""

    name: str
    default: str
    description: str


RVIZ_ARGUMENT = ExtraArgument("rviz", "false", "start rviz2 with config/armpilot.rviz: true | false")
CAMERAS = ("realsense2_camera", "none")
#: rs_launch.py arguments: depth aligned to colour, topics under /camera/camera/ on every version.
REALSENSE_ARGUMENTS = {"camera_namespace": "camera", "camera_name": "camera", "align_depth.enable": "true"}


def real_arguments() -> tuple[ExtraArgument, ...]:
    """The real graph's launch-only argument ``camera`` (``robot`` and ``urdf`` are graph arguments)."""
    return (
        ExtraArgument("camera", "none", "camera driver to start: realsense2_camera (its rs_launch.py, depth "
                      "aligned to colour) | none (run your camera driver yourself)"),
    )


# ---------------------------------------------------------------- pure helpers


def graph_values(graph: GraphSpec, configurations: Mapping[str, str]) -> dict[str, str]:
    """The values of ``graph``'s own arguments among the launch configurations."""
    return {a.name: configurations.get(a.name, a.default) for a in graph.arguments}


def is_true(text: str) -> bool:
    """A launch-argument string as a boolean (``true``/``1``/``yes``/``on``)."""
    return text.strip().lower() in ("true", "1", "yes", "on")


def uses_sim_time(nodes: Sequence[NodeSpec]) -> bool:
    """Whether any node of the graph runs on ``/clock``."""
    return any(n.parameters.get("use_sim_time") is True for n in nodes)


def node_kwargs(node: NodeSpec, config_dir: Path) -> dict[str, Any]:
    """Keyword arguments of ``launch_ros.actions.Node`` for a resolved ``node``.

    Parameters are the node's files under ``config_dir`` then a dict of its
    values (later entries win, as with ``--params-file`` then ``-p``).
    """
    parameters: list[Any] = [str(config_dir / f) for f in node.parameter_files]
    if node.parameters:
        parameters.append(dict(node.parameters))
    kwargs: dict[str, Any] = {
        "package": node.package,
        "executable": node.executable,
        "name": node.name,
        "parameters": parameters,
        "remappings": list(node.remappings),
        "output": "screen",
    }
    if node.respawn:
        kwargs.update(respawn=True, respawn_delay=RESPAWN_DELAY_S, respawn_max_retries=RESPAWN_MAX_RETRIES)
    return kwargs


def lifecycle_kwargs(node: NodeSpec) -> dict[str, Any]:
    """``on_exit`` for a required node: its exit shuts the launch down (the safety node holds on SIGINT)."""
    if not node.required:
        return {}
    from launch.actions import Shutdown

    return {"on_exit": [Shutdown(reason=f"required node '{node.name}' exited")]}


def with_robot_description(kwargs: dict[str, Any], urdf_text: str) -> dict[str, Any]:
    """``kwargs`` of robot_state_publisher with ``robot_description`` added to its values."""
    parameters = list(kwargs["parameters"])
    if parameters and isinstance(parameters[-1], dict):
        parameters[-1] = {**parameters[-1], "robot_description": urdf_text}
    else:
        parameters.append({"robot_description": urdf_text})
    return {**kwargs, "parameters": parameters}


def robot_description_text(configurations: Mapping[str, str]) -> str:
    """The URDF text of the ``robot`` profile (or the ``urdf`` file replacing its URDF), checked.

    The profile is loaded and validated here, so a launch with a URDF that does
    not fit its profile fails before any node starts.

    Raises:
        RobotDescriptionError: naming the file, profile key or joint that does not fit.
    """
    from armpilot.robot_profile import DEFAULT_ROBOT, load_profile

    robot = str(parse_value(configurations.get("robot", DEFAULT_ROBOT), DEFAULT_ROBOT))
    urdf = str(parse_value(configurations.get("urdf", '""'), '""'))
    return load_profile(robot, urdf=urdf).urdf_xml


def camera_choice(configurations: Mapping[str, str]) -> str:
    """The ``camera`` argument, checked.

    Raises:
        ValueError: for a value other than those in ``CAMERAS``.
    """
    camera = configurations.get("camera", "none").strip()
    if camera not in CAMERAS:
        raise ValueError(f"camera:={camera} is not one of {' | '.join(CAMERAS)}")
    return camera


# ------------------------------------------------------- launch action builders

#: Extra actions of a launch file: (launch configurations, resolved nodes) -> actions.
Extras = Callable[[Mapping[str, str], Sequence[NodeSpec]], list]


def declare_arguments(graph: GraphSpec, extra: Sequence[ExtraArgument] = ()) -> list:
    """``DeclareLaunchArgument`` for each graph argument (graph.yaml) and each extra one."""
    from launch.actions import DeclareLaunchArgument

    specs = [(a.name, a.default, a.description) for a in graph.arguments]
    specs += [(a.name, a.default, a.description) for a in extra]
    return [DeclareLaunchArgument(name, default_value=default, description=description)
            for name, default, description in specs]


def graph_nodes(nodes: Sequence[NodeSpec], urdf_text: str) -> list:
    """``launch_ros`` Node actions for resolved nodes; robot_state_publisher gets the URDF."""
    from launch_ros.actions import Node

    config_dir = share_dir() / "config"
    actions = []
    for node in nodes:
        kwargs = node_kwargs(node, config_dir)
        if node.executable == "robot_state_publisher":
            kwargs = with_robot_description(kwargs, urdf_text)
        actions.append(Node(**kwargs, **lifecycle_kwargs(node)))
    return actions


def rviz_node(sim_time: bool) -> Any:
    """rviz2 with ``config/armpilot.rviz``."""
    from launch_ros.actions import Node

    return Node(package="rviz2", executable="rviz2", name="rviz2", output="screen",
                arguments=["-d", str(share_dir() / "config" / "armpilot.rviz")],
                parameters=[{"use_sim_time": sim_time}])


def include_launch(package: str, relative_path: str, arguments: Mapping[str, str]) -> Any:
    """``IncludeLaunchDescription`` of another package's Python launch file."""
    from ament_index_python.packages import get_package_share_directory
    from launch.actions import IncludeLaunchDescription
    from launch.launch_description_sources import PythonLaunchDescriptionSource

    path = str(Path(get_package_share_directory(package)) / relative_path)
    return IncludeLaunchDescription(PythonLaunchDescriptionSource(path), launch_arguments=list(arguments.items()))


def camera_actions(configurations: Mapping[str, str], nodes: Sequence[NodeSpec]) -> list:
    """realsense2_camera's ``rs_launch.py`` when ``camera:=realsense2_camera``, else nothing."""
    if camera_choice(configurations) == "none":
        return []
    return [include_launch("realsense2_camera", "launch/rs_launch.py", REALSENSE_ARGUMENTS)]


def graph_launch_description(graph_name: str, extra_arguments: Sequence[ExtraArgument] = (),
                             extras: Extras | None = None, urdf: Callable[[Mapping[str, str]], str] | None = None,
                             graph_file: str | Path | None = None) -> Any:
    """A ``LaunchDescription`` for graph ``graph_name`` of ``config/graph.yaml``.

    Args:
        graph_name: the graph (sim, real, gazebo).
        extra_arguments: launch-only arguments besides the graph's and ``rviz``.
        extras: more actions, built at launch time from the configurations and nodes.
        urdf: the robot_description text from the configurations (default: the robot profile's URDF).
        graph_file: another graph.yaml (tests).
    """
    from launch import LaunchDescription
    from launch.actions import OpaqueFunction

    graph = load_graphs(graph_file)[graph_name]

    declared = {a.name for a in graph.arguments} | {a.name for a in extra_arguments} | {RVIZ_ARGUMENT.name}

    def build(context: Any, *args: Any, **kwargs: Any) -> list:
        configurations = dict(context.launch_configurations)
        unknown = sorted(set(configurations) - declared)
        if unknown:
            raise ValueError(f"unknown launch argument(s) {unknown} for the '{graph_name}' graph; "
                             f"it takes {sorted(declared)}")
        nodes = resolve(graph, graph_values(graph, configurations))
        urdf_text = (urdf or robot_description_text)(configurations)
        actions = graph_nodes(nodes, urdf_text)
        if is_true(configurations.get(RVIZ_ARGUMENT.name, RVIZ_ARGUMENT.default)):
            actions.append(rviz_node(uses_sim_time(nodes)))
        if extras:
            actions += extras(configurations, nodes)
        return actions

    arguments = declare_arguments(graph, [*extra_arguments, RVIZ_ARGUMENT])
    return LaunchDescription([*arguments, OpaqueFunction(function=build)])
