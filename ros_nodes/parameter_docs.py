"""Every node's parameters from the config dataclasses it declares: the schema and ``docs/parameters.md``.

A node's dataclasses are read from its module (``declare_config(self, X)``; ``load_robot`` declares
``RobotSelection``), so the reference cannot drift from the code. Regenerate the page with
``python -m armpilot.ros_nodes.parameter_docs > docs/parameters.md`` (a test checks it is current).
"""

from __future__ import annotations

import dataclasses
import importlib
import re
from pathlib import Path

from armpilot.robot_profile import RobotSelection

NODES_DIR = Path(__file__).resolve().parent


def node_config_classes() -> dict[str, list[type]]:
    """Node name -> the config dataclasses its module declares, in declaration order."""
    schemas: dict[str, list[type]] = {}
    for path in sorted(NODES_DIR.glob("*_node.py")):
        source = path.read_text()
        name = re.search(r'super\(\).__init__\("([a-z_]+)"', source)
        if name is None:
            continue
        module = importlib.import_module(f"armpilot.ros_nodes.{path.stem}")
        classes = [getattr(module, c) for c in re.findall(r"declare_config\(self, (\w+)", source)]
        if "load_robot(self)" in source:
            classes.append(RobotSelection)
        schemas[name.group(1)] = classes
    return schemas


def _default(field: dataclasses.Field) -> str:
    value = field.default if field.default is not dataclasses.MISSING else field.default_factory()  # type: ignore[misc]
    text = "[" + ", ".join(str(v) for v in value) + "]" if isinstance(value, tuple) else repr(value)
    return text.replace("|", "\\|")


def markdown() -> str:
    """The parameter reference page."""
    lines = ["# Parameters", "",
             "Generated from the config dataclasses each node declares "
             "(`python -m armpilot.ros_nodes.parameter_docs`);",
             "`ros2 param describe` shows the same descriptions. YAML files under `config/` hold overrides only.", ""]
    for node, classes in node_config_classes().items():
        lines += [f"## {node}", "", "| parameter | default | description |", "|---|---|---|"]
        for config in classes:
            for field in dataclasses.fields(config):
                description = field.metadata.get("description", "").replace("|", "\\|")
                lines.append(f"| `{field.name}` | `{_default(field)}` | {description} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown(), end="")
