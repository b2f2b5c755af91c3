"""Helper for config dataclasses whose fields become ROS parameters."""

from __future__ import annotations


def describe(text: str) -> dict[str, str]:
    """Field metadata carrying a parameter's description (units included)."""
    return {"description": text}
