"""``launch`` substitutions that let the graph's nodes be static launch actions.

The launch files list every node of their graph as a ``launch_ros`` Node (so
``ros2 launch -p`` shows them); values that depend on launch arguments are
these substitutions, performed when the launch runs. Importing this module
imports ``launch``: :mod:`armpilot.launch_support` imports it lazily.
"""

from __future__ import annotations

import json
from typing import Callable, Mapping

from launch import LaunchContext, Substitution

from armpilot.graph import parse_value


class GraphArgumentValue(Substitution):
    """A graph argument's value as the typed parameter ``armpilot up`` would set.

    :func:`armpilot.graph.parse_value` gives the value (``"3"`` -> 3, ``"15"`` ->
    15.0 for a float argument, ``'""'`` -> ""); it is returned as JSON, which
    launch_ros reads back (as YAML) to that same value and type.
    """

    def __init__(self, name: str, default: str) -> None:
        super().__init__()
        self.name, self.default = name, default

    def describe(self) -> str:
        return f"GraphArgument('{self.name}', default='{self.default}')"

    def perform(self, context: LaunchContext) -> str:
        text = context.launch_configurations.get(self.name, self.default)
        return json.dumps(parse_value(text, self.default))


class ConfigurationsText(Substitution):
    """Text made from the launch configurations by ``make`` (the robot_description, the profile's base frame);
    ``label`` is what ``ros2 launch -p`` shows."""

    def __init__(self, make: Callable[[Mapping[str, str]], str], label: str = "RobotDescription(robot, urdf)") -> None:
        super().__init__()
        self.make, self.label = make, label

    def describe(self) -> str:
        return self.label

    def perform(self, context: LaunchContext) -> str:
        return self.make(dict(context.launch_configurations))
