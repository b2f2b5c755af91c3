"""A ROS user's install: ``colcon build`` and ``colcon build --symlink-install`` of this repository.

colcon comes from PyPI in its own venv (``scripts/setup_env.sh`` makes ``.venv-colcon``). Each build
runs in a scratch workspace with a copy of the tracked files; the installed package must carry the
node executables, the launch and config files, the ament index entry, and import as one ``armpilot``
namespace (``armpilot.ros_nodes``, ``armpilot.policies``) from the install space.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COLCON = ROOT / os.environ.get("ARMPILOT_COLCON_VENV", ".venv-colcon") / "bin" / "colcon"
pytestmark = pytest.mark.skipif(not COLCON.is_file(), reason="colcon is not installed (scripts/setup_env.sh)")


def _workspace(tmp_path: Path) -> Path:
    """A workspace whose src/armpilot holds the tracked files (symlinks kept as symlinks)."""
    source = tmp_path / "ws" / "src" / "armpilot"
    source.mkdir(parents=True)
    listing = ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"]
    archive = subprocess.run(listing, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-C", str(ROOT), "--null", "-T", "-", "-cf", str(tmp_path / "src.tar")],
                   input=archive, check=True)
    subprocess.run(["tar", "-C", str(source), "-xf", str(tmp_path / "src.tar")], check=True)
    return tmp_path / "ws"


@pytest.mark.parametrize("symlink", [False, True], ids=["plain", "symlink-install"])
def test_colcon_build_installs_one_armpilot_namespace(tmp_path: Path, symlink: bool) -> None:
    workspace = _workspace(tmp_path)
    command = [str(COLCON), "build"] + (["--symlink-install"] if symlink else [])
    env = {**os.environ, "PATH": f"{COLCON.parent}:{os.environ['PATH']}"}
    env.pop("PYTHONPATH", None)
    build = subprocess.run(command, cwd=workspace, capture_output=True, text=True, timeout=600, env=env)
    log = workspace / "log" / "latest_build" / "armpilot" / "stdout_stderr.log"
    assert build.returncode == 0, build.stdout[-2000:] + build.stderr[-2000:] + (log.read_text()[-3000:]
                                                                                 if log.exists() else "")
    install = workspace / "install" / "armpilot"
    for name in ("safety_node", "policy_node", "sim_node", "armpilot"):
        assert (install / "lib" / "armpilot" / name).is_file(), f"lib/armpilot/{name} missing"
    share = install / "share" / "armpilot"
    assert (share / "launch" / "sim.launch.py").exists() and (share / "config" / "graph.yaml").exists()
    assert (install / "share" / "ament_index" / "resource_index" / "packages" / "armpilot").exists()
    site = next((install / "lib").glob("python3*/site-packages"))
    links = [link.read_text().splitlines()[0].strip() for link in site.glob("*.egg-link")]
    paths = [str(site), *links]
    # the packages (light __init__ files) from the install space only, with colcon's Python: no editable
    # armpilot there to shadow them, as on a ROS machine
    probe = "import armpilot, armpilot.ros_nodes, armpilot.policies as p; print(armpilot.__file__, p.__file__)"
    result = subprocess.run([str(COLCON.parent / "python"), "-c", probe], capture_output=True, text=True,
                            cwd=tmp_path, env={**env, "PYTHONPATH": os.pathsep.join(paths)}, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    files = result.stdout.split()
    assert all(str(workspace) in f for f in files), f"imported from outside the workspace: {files}"
    for module in ("ros_nodes/safety_node.py", "policies/diffusion.py", "safety/limits.py"):
        assert (Path(files[0]).parent / module).is_file(), f"armpilot/{module} is not in the install space"
