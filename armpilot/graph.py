"""Node graphs from ``config/graph.yaml``: the one source for launch files and ``armpilot up``.

Pure: reads YAML, applies launch-argument values, and builds each node's
``--ros-args`` command line.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from armpilot.paths import config_path

GRAPH_FILE = "graph.yaml"


@dataclass(frozen=True)
class NodeSpec:
    """One node: executable, parameter files (under config/), parameter values, remappings."""

    name: str
    executable: str
    package: str = "armpilot"
    parameter_files: tuple[str, ...] = ()
    parameters: Mapping[str, Any] = field(default_factory=dict)
    remappings: tuple[tuple[str, str], ...] = ()
    ros_only: bool = False
    respawn: bool = False

    @property
    def required(self) -> bool:
        """Its exit stops the whole graph: every armpilot node that is not respawned."""
        return not self.respawn and not self.ros_only


#: Seconds before a respawned node starts again, and how often it may be respawned (launch and ``armpilot up``).
RESPAWN_DELAY_S = 1.0
RESPAWN_MAX_RETRIES = 3


@dataclass(frozen=True)
class ArgumentSpec:
    """A launch argument: default, description, parameters ("node.param") and remaps it sets."""

    name: str
    default: str
    description: str
    params: tuple[tuple[str, str], ...] = ()
    remaps: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class GraphSpec:
    """A named graph: its launch arguments and nodes (graph-wide remappings already applied to each)."""

    name: str
    description: str
    arguments: tuple[ArgumentSpec, ...]
    nodes: tuple[NodeSpec, ...]


def _argument(name: str, raw: Mapping[str, Any]) -> ArgumentSpec:
    params = tuple(tuple(p.split(".", 1)) for p in raw.get("params", ()))
    remaps = tuple((r["node"], r["from"]) for r in raw.get("remap", ()))
    return ArgumentSpec(name, str(raw["default"]), str(raw["description"]), params, remaps)  # type: ignore[arg-type]


def _node(raw: Mapping[str, Any], graph_remaps: Mapping[str, str]) -> NodeSpec:
    remaps = {**graph_remaps, **raw.get("remap", {})}
    return NodeSpec(
        name=raw["name"],
        executable=raw["executable"],
        package=raw.get("package", "armpilot"),
        parameter_files=tuple(raw.get("parameters", ())),
        parameters=dict(raw.get("set", {})),
        remappings=tuple(remaps.items()),
        ros_only=bool(raw.get("ros_only", False)),
        respawn=bool(raw.get("respawn", False)),
    )


def load_graphs(path: str | Path | None = None) -> dict[str, GraphSpec]:
    """All graphs in ``path`` (default: the installed ``config/graph.yaml``)."""
    path = Path(path) if path else config_path(GRAPH_FILE)
    raw = yaml.safe_load(path.read_text())
    arguments = {name: _argument(name, spec) for name, spec in raw["arguments"].items()}
    graphs = {}
    for name, spec in raw["graphs"].items():
        unknown = [a for a in spec.get("arguments", ()) if a not in arguments]
        if unknown:
            raise ValueError(f"graph '{name}' in {path} uses undefined arguments {unknown}")
        graphs[name] = GraphSpec(
            name,
            spec.get("description", ""),
            tuple(arguments[a] for a in spec.get("arguments", ())),
            tuple(_node(n, spec.get("remap", {})) for n in spec["nodes"]),
        )
    return graphs


def parse_value(text: str, default: str | None = None) -> Any:
    """A launch-argument string as a parameter value (``"3"`` -> 3, ``"true"`` -> True).

    When the argument's ``default`` is a float, a whole number stays a float
    (``"15"`` -> 15.0): ROS parameters declared as doubles refuse integers.
    """
    value = yaml.safe_load(text)
    if value is None or isinstance(value, (dict, list)):
        return text
    if default is not None and isinstance(value, int) and not isinstance(value, bool):
        if isinstance(yaml.safe_load(default), float):
            return float(value)
    return value


def resolve(graph: GraphSpec, values: Mapping[str, str] | None = None) -> tuple[NodeSpec, ...]:
    """The graph's nodes with argument ``values`` (others at their defaults) applied.

    Raises:
        KeyError: for a value given to an argument the graph does not have.
    """
    values = dict(values or {})
    known = {a.name for a in graph.arguments}
    unknown = sorted(set(values) - known)
    if unknown:
        raise KeyError(f"graph '{graph.name}' has no argument(s) {unknown}; it takes {sorted(known)}")
    nodes = {n.name: n for n in graph.nodes}
    for argument in graph.arguments:
        text = values.get(argument.name, argument.default)
        for node_name, param in argument.params:
            if node_name in nodes:
                node = nodes[node_name]
                value = parse_value(text, argument.default)
                nodes[node_name] = replace(node, parameters={**node.parameters, param: value})
        for node_name, topic in argument.remaps:
            if node_name in nodes and text != topic:
                node = nodes[node_name]
                nodes[node_name] = replace(node, remappings=node.remappings + ((topic, text),))
    return tuple(nodes[n.name] for n in graph.nodes)


def remapped(nodes: Sequence[NodeSpec], node_name: str, topic: str) -> str:
    """The name ``topic`` has for the node called ``node_name`` after its remappings (``topic`` if none)."""
    node = next(n for n in nodes if n.name == node_name)
    return dict(node.remappings).get(topic, topic)


def ros_arguments(node: NodeSpec, config_dir: Path) -> list[str]:
    """``--ros-args`` for ``node``: node name, parameter files, values, remappings."""
    args = ["--ros-args", "-r", f"__node:={node.name}"]
    for file in node.parameter_files:
        args += ["--params-file", str(config_dir / file)]
    for key, value in node.parameters.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        args += ["-p", f"{key}:={text if text else repr('')}"]  # '' is YAML for an empty string
    for source, target in node.remappings:
        args += ["-r", f"{source}:={target}"]
    return args
