"""Declare a node's parameters once from a frozen config dataclass.

Each dataclass field becomes a ROS parameter with its default and the
``description`` from the field's metadata; the values are read once at start
into the dataclass (whose ``__post_init__`` validates them).
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rclpy.parameter import Parameter

ConfigT = TypeVar("ConfigT")


def _default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return field.default_factory()  # type: ignore[misc]
    raise TypeError(f"config field '{field.name}' needs a default to be a parameter")


def declare_config(node: Node, config_type: type[ConfigT], dynamic: tuple[str, ...] = ()) -> ConfigT:
    """Declare every field of ``config_type`` on ``node`` and return the values read.

    Args:
        node: the node to declare on.
        config_type: a frozen dataclass whose fields all have defaults.
        dynamic: fields that may change at run time (all others are read-only).

    Raises:
        ValueError: from the dataclass's validation, naming the bad parameter.
    """
    values: dict[str, Any] = {}
    for field in dataclasses.fields(config_type):  # type: ignore[arg-type]
        default = _default(field)
        as_param = list(default) if isinstance(default, tuple) else default
        descriptor = ParameterDescriptor(
            description=field.metadata.get("description", ""),
            read_only=field.name not in dynamic,
        )
        if as_param == []:  # an empty list has no type for rclpy: declare the type, not the value
            as_param = Parameter.Type.STRING_ARRAY if field.metadata.get("items", "str") == "str" \
                else Parameter.Type.DOUBLE_ARRAY
        value = node.declare_parameter(field.name, as_param, descriptor).value
        if value is None:
            value = ()
        values[field.name] = tuple(value) if isinstance(default, tuple) else value
    return config_type(**values)
