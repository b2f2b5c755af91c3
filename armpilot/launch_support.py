"""Launch-file helpers: a graph from ``config/graph.yaml`` as ``launch`` actions.

The launch files in ``launch/`` only name their graph; everything else comes
from here. Every node of the graph is a static ``launch_ros`` Node (visible to
``ros2 launch -p``); the parameters and remappings that launch arguments set
are substitutions performed at launch time with the rules of
:func:`armpilot.graph.resolve`, so ``ros2 launch`` and ``armpilot up`` bring up
the same nodes with the same parameters and remappings. One ``OpaqueFunction``
before the nodes refuses unknown arguments and a URDF that does not fit the
profile, and adds a launch file's extra actions (camera driver, gz sim).

The pure parts (no ``launch`` import) are tested on any machine; the functions
that build actions import ``launch``/``launch_ros`` inside, so importing this
module needs neither.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence


from armpilot.graph import (RESPAWN_DELAY_S, RESPAWN_MAX_RETRIES, ArgumentSpec, GraphSpec, NodeSpec, load_graphs,
                            parse_value, resolve)
from armpilot.paths import share_dir

if TYPE_CHECKING:
    from armpilot.robot_profile import RobotProfile


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


def bind_arguments(graph: GraphSpec, value: Callable[[ArgumentSpec], Any],
                   topic: Callable[[ArgumentSpec], Any]) -> tuple[NodeSpec, ...]:
    """The graph's nodes with what each argument changes set to a launch-time stand-in.

    The counterpart of :func:`armpilot.graph.resolve` for values not known yet:
    each parameter an argument sets gets ``value(argument)``, each topic it
    remaps gets the remapping ``(topic, topic(argument))``.
    """
    nodes = {n.name: n for n in graph.nodes}
    for argument in graph.arguments:
        for node_name, param in argument.params:
            if node_name in nodes:
                node = nodes[node_name]
                nodes[node_name] = replace(node, parameters={**node.parameters, param: value(argument)})
        for node_name, remapped in argument.remaps:
            if node_name in nodes:
                node = nodes[node_name]
                nodes[node_name] = replace(node, remappings=node.remappings + ((remapped, topic(argument)),))
    return tuple(nodes[n.name] for n in graph.nodes)


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


def with_robot_description(kwargs: dict[str, Any], urdf_text: Any) -> dict[str, Any]:
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
    return launch_profile(configurations).urdf_xml


def launch_profile(configurations: Mapping[str, str]) -> RobotProfile:
    """The robot profile the ``robot`` and ``urdf`` launch arguments name (RobotDescriptionError if it does not fit)."""
    from armpilot.robot_profile import DEFAULT_ROBOT, load_profile

    robot = str(parse_value(configurations.get("robot", DEFAULT_ROBOT), DEFAULT_ROBOT))
    urdf = str(parse_value(configurations.get("urdf", '""'), '""'))
    return load_profile(robot, urdf=urdf)


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
#: robot_description text from the launch configurations.
UrdfText = Callable[[Mapping[str, str]], str]


def declare_arguments(graph: GraphSpec, extra: Sequence[ExtraArgument] = ()) -> list:
    """``DeclareLaunchArgument`` for each graph argument (graph.yaml) and each extra one."""
    from launch.actions import DeclareLaunchArgument

    specs = [(a.name, a.default, a.description) for a in graph.arguments]
    specs += [(a.name, a.default, a.description) for a in extra]
    return [DeclareLaunchArgument(name, default_value=default, description=description)
            for name, default, description in specs]


def graph_nodes(graph: GraphSpec, urdf: UrdfText) -> list:
    """A ``launch_ros`` Node per node of ``graph``, argument values filled in at launch time.

    robot_state_publisher gets ``robot_description`` = ``urdf(configurations)``.
    """
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node
    from launch_ros.parameter_descriptions import ParameterValue

    from armpilot.launch_substitutions import ConfigurationsText, GraphArgumentValue

    nodes = bind_arguments(graph, lambda a: GraphArgumentValue(a.name, a.default),
                           lambda a: LaunchConfiguration(a.name, default=a.default))
    config_dir = share_dir() / "config"
    actions = []
    for node in nodes:
        kwargs = node_kwargs(node, config_dir)
        if node.executable == "robot_state_publisher":
            kwargs = with_robot_description(kwargs, ParameterValue(ConfigurationsText(urdf), value_type=str))
        actions.append(Node(**kwargs, **lifecycle_kwargs(node)))
    return actions


def rviz_node(sim_time: bool) -> Any:
    """rviz2 with ``config/armpilot.rviz``, its fixed frame the robot profile's base frame, started when the
    ``rviz`` argument is true."""
    from launch import Condition
    from launch_ros.actions import Node

    from armpilot.launch_substitutions import ConfigurationsText

    def wanted(context: Any) -> bool:
        return is_true(context.launch_configurations.get(RVIZ_ARGUMENT.name, RVIZ_ARGUMENT.default))

    return Node(package="rviz2", executable="rviz2", name="rviz2", output="screen",
                arguments=["-d", str(share_dir() / "config" / "armpilot.rviz"), "--fixed-frame",
                           ConfigurationsText(lambda c: launch_profile(c).base_frame, "BaseFrame(robot, urdf)")],
                parameters=[{"use_sim_time": sim_time}], condition=Condition(predicate=wanted))


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
                             extras: Extras | None = None, urdf: UrdfText | None = None,
                             graph_file: str | Path | None = None) -> Any:
    """A ``LaunchDescription`` for graph ``graph_name`` of ``config/graph.yaml``.

    Its entities: the declared arguments, a check (``OpaqueFunction``: unknown
    arguments and a URDF that does not fit the profile stop the launch before
    any node starts; it also returns ``extras``), a Node per graph node, rviz2.

    Args:
        graph_name: the graph (sim, real, gazebo, record, teleop, replay).
        extra_arguments: launch-only arguments besides the graph's and ``rviz``.
        extras: more actions, built at launch time from the configurations and nodes.
        urdf: the robot_description text from the configurations (default: the robot profile's URDF).
        graph_file: another graph.yaml (tests).
    """
    from launch import LaunchDescription
    from launch.actions import OpaqueFunction

    graph = load_graphs(graph_file)[graph_name]
    make_urdf = urdf or robot_description_text
    made: dict[tuple, str] = {}

    def urdf_text(configurations: Mapping[str, str]) -> str:  # made once per launch (xacro can take a second)
        key = tuple(sorted(configurations.items()))
        if key not in made:
            made[key] = make_urdf(configurations)
        return made[key]
    declared = {a.name for a in graph.arguments} | {a.name for a in extra_arguments} | {RVIZ_ARGUMENT.name}

    def check_and_extras(context: Any, *args: Any, **kwargs: Any) -> list:
        configurations = dict(context.launch_configurations)
        unknown = sorted(set(configurations) - declared)
        if unknown:
            raise ValueError(f"unknown launch argument(s) {unknown} for the '{graph_name}' graph; "
                             f"it takes {sorted(declared)}")
        urdf_text(configurations)  # raises, naming what does not fit, before any node starts
        return extras(configurations, resolve(graph, graph_values(graph, configurations))) if extras else []

    arguments = declare_arguments(graph, [*extra_arguments, RVIZ_ARGUMENT])
    return LaunchDescription([*arguments, OpaqueFunction(function=check_and_extras),
                              *graph_nodes(graph, urdf_text), rviz_node(uses_sim_time(graph.nodes))])
