"""Starting and stopping the real ``face3d_node`` executable from the tools (demo, live eval)."""

from __future__ import annotations

import shutil
import signal
import subprocess
from pathlib import Path
from typing import List, Optional


def node_command() -> List[str]:
    """The installed face3d_node: on PATH (after ``source scripts/env.sh``), else the colcon
    install of the current checkout. Raises FileNotFoundError naming the fix."""
    exe = shutil.which("face3d_node")
    if exe:
        return [exe]
    local = Path.cwd() / "install" / "face3d_ros" / "lib" / "face3d_ros" / "face3d_node"
    if local.is_file():
        return [str(local)]
    raise FileNotFoundError("face3d_node not found; run scripts/setup.sh, then "
                            "`source scripts/env.sh`")


def stop_node(proc: subprocess.Popen, timeout_s: float = 20.0) -> Optional[int]:
    """Stop the node with SIGINT (a clean shutdown), killing it after ``timeout_s``; returns
    its exit status."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode
