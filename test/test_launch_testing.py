"""Runs test/launch/launch_face3d.py with ``launch_test`` where launch_testing (and
launch_ros) are installed: a system ROS 2, not the PyPI wheels, so elsewhere it is skipped with
the reason. The launch_testing file itself is not collected by pytest (its pytest plugins
refuse pytest 9 before their fixes, ros2/launch#972 and ros2/launch_ros#540)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import module_available

pytestmark = [pytest.mark.ros, pytest.mark.slow]

LAUNCH_TEST = Path(__file__).resolve().parent / "launch" / "launch_face3d.py"


@pytest.mark.skipif(not (module_available("launch_testing") and module_available("launch_ros")),
                    reason="launch_testing / launch_ros are not installed (not on PyPI; part "
                           "of a system ROS 2 install)")
def test_launch_file_with_launch_testing(tmp_path):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    out = subprocess.run([sys.executable, "-m", "launch_testing.launch_test", str(LAUNCH_TEST)],
                         capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-6000:]
    assert "FAILED" not in text
