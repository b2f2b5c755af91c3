"""Locate the package's share files (urdf/, config/, launch/) in any install."""

from __future__ import annotations

import os
import sys
from pathlib import Path

PACKAGE_NAME = "armpilot"
SHARE_ENV_VAR = "ARMPILOT_SHARE"


def share_dir() -> Path:
    """Directory that holds ``urdf/``, ``config/`` and ``launch/``.

    Order: ``$ARMPILOT_SHARE``; the source tree (editable installs, tests); the
    ament index (colcon installs); ``<prefix>/share/armpilot`` (pip installs).

    Raises:
        FileNotFoundError: when none of these holds ``urdf/armpilot_arm.urdf``.
    """
    candidates: list[Path] = []
    if os.environ.get(SHARE_ENV_VAR):
        candidates.append(Path(os.environ[SHARE_ENV_VAR]))
    candidates.append(Path(__file__).resolve().parent.parent)
    try:
        from ament_index_python.packages import get_package_share_directory

        candidates.append(Path(get_package_share_directory(PACKAGE_NAME)))
    except Exception:  # noqa: BLE001 - not installed or package not indexed
        pass
    candidates.append(Path(sys.prefix) / "share" / PACKAGE_NAME)
    for candidate in candidates:
        if (candidate / "urdf" / "armpilot_arm.urdf").is_file():
            return candidate
    searched = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(
        f"armpilot share files not found (looked in: {searched}); "
        f"set {SHARE_ENV_VAR} to the folder that holds urdf/ and config/"
    )


def urdf_path() -> Path:
    """Path of the arm's URDF."""
    return share_dir() / "urdf" / "armpilot_arm.urdf"


def config_path(name: str) -> Path:
    """Path of a file under ``config/``."""
    return share_dir() / "config" / name


def shipped_checkpoint(task: str, prefix: bool = False) -> Path:
    """The diffusion-policy checkpoint the project ships for ``task`` (``checkpoints/diffusion_<task>``;
    ``prefix``: the one trained with committed action prefixes, ``checkpoints/diffusion_<task>_prefix``)."""
    return share_dir() / "checkpoints" / f"diffusion_{task}{'_prefix' if prefix else ''}"


def shipped_vla(task: str) -> Path:
    """The VLA model folder the project ships for ``task`` (``checkpoints/vla_<task>``; ``language`` only)."""
    return share_dir() / "checkpoints" / f"vla_{task}"
