"""Shared fixtures of the test suite.

- ``model_dir``: the verified model folder (fails, never skips, when models are missing).
- Real photos from registry packages, as (H, W, 3) uint8 RGB arrays: ``astronaut_rgb`` and
  ``grace_hopper_rgb`` (one face each), ``chelsea_rgb`` and ``coffee_rgb`` (no human face).
- ROS 2: every test session gets its own ``ROS_DOMAIN_ID`` (set here, before any test can
  import rclpy) and discovery stays on this host; ``rclpy_context`` gives a test its own
  initialised context; ``requires_rclpy`` / ``requires_module`` skip with a reason when an
  optional ROS 2 package (launch_testing, cv_bridge, ...) is not installed.
- Fast DDS shared memory: before and after the session, the segments and ports in /dev/shm
  that no live process holds are removed with Fast DDS's own ``fastdds shm clean``
  (:func:`clean_fastdds_shm`). Tests kill node processes on purpose, and a killed participant
  leaves its segment behind (70 MB each with config/fastdds_large_images.xml): over many runs
  they filled the machine's memory.
"""

import contextlib
import importlib.util
import io
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


# -- ROS 2 isolation ------------------------------------------------------------------------
# Domain ids 0..101 are safe on Linux with the default port mapping; 0 is what every ROS 2
# program uses by default, so keep clear of it. scripts/test.sh sets the id already; a plain
# `pytest` run gets one derived from its process id.
def _session_domain_id() -> int:
    value = os.environ.get("ROS_DOMAIN_ID", "")
    if value.isdigit() and 1 <= int(value) <= 101:
        return int(value)
    return 1 + os.getpid() % 101


os.environ["ROS_DOMAIN_ID"] = str(_session_domain_id())
# Only discover participants on this machine (Jazzy and later).
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
# The tests publish images of 0.8-100 MB beside their camera_info from one participant. With
# Fast DDS's default 512 kB shared-memory segment an image fills it, the next camera_info is
# dropped and re-sent by the reliable writer only at its 3 s heartbeat (under CPU load: images
# seconds before their info). Set before any participant exists; inherited by the node
# processes; a profile the user chose is kept. See config/fastdds_large_images.xml.
if (os.environ.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp").startswith("rmw_fastrtps")
        and not os.environ.get("FASTDDS_DEFAULT_PROFILES_FILE")
        and not os.environ.get("FASTRTPS_DEFAULT_PROFILES_FILE")):
    os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = str(
        REPO_ROOT / "config" / "fastdds_large_images.xml")


def clean_fastdds_shm() -> str:
    """Remove Fast DDS shared-memory segments and ports whose owner is gone; return the tool's
    report ("" when Fast DDS's tools are not installed).

    The logic is Fast DDS's ``fastdds shm clean`` (``tools/fastdds/shm/clean.py`` beside the
    ``fastdds`` command): a segment whose lock file no live process holds is a zombie. Its
    class is called directly because the ``fastdds`` command also imports the discovery
    tool, which needs psutil, not installed here.
    """
    exe = shutil.which("fastdds") or shutil.which("fastdds", path=str(Path(sys.executable).parent))
    tools = Path(exe).resolve().parent.parent / "tools" / "fastdds" if exe else None
    if tools is None or not (tools / "shm" / "clean.py").is_file():
        return ""
    spec = importlib.util.spec_from_file_location("_fastdds_shm_clean",
                                                  tools / "shm" / "clean.py")
    if spec is None or spec.loader is None:
        return ""
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        module.Clean().run(False)
    return out.getvalue()


def pytest_sessionstart(session):
    """Clear what earlier, interrupted runs left in /dev/shm (module docstring)."""
    clean_fastdds_shm()


def pytest_sessionfinish(session, exitstatus):
    """Clear what this session's killed node processes left in /dev/shm."""
    report = clean_fastdds_shm()
    if report and "zombie segments cleaned" in report:
        counts = [line for line in report.splitlines() if "zombie" in line]
        print("\nFast DDS shared memory: " + "; ".join(counts), file=sys.stderr)


def module_available(name: str) -> bool:
    """True when ``name`` can be imported (without importing it)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def requires_module(name: str, why: str = ""):
    """Mark a test as skipped, with the reason, when module ``name`` is not installed.

    For optional ROS 2 packages that the PyPI wheels lack (launch, launch_testing, cv_bridge,
    message_filters, tf2_ros, ...): present on a system ROS 2 install, absent in .venv.
    """
    reason = f"{name} is not installed" + (f" ({why})" if why else "")
    return pytest.mark.skipif(not module_available(name), reason=reason)


requires_rclpy = requires_module("rclpy", "run scripts/setup.sh, then source scripts/env.sh")


@pytest.fixture(scope="session")
def ros_domain_id() -> int:
    """The ROS_DOMAIN_ID of this test session (1..101, unique per concurrent session)."""
    return int(os.environ["ROS_DOMAIN_ID"])


@pytest.fixture
def rclpy_context():
    """A fresh, initialised ``rclpy.Context`` for one test, shut down afterwards.

    Pass it to ``rclpy.create_node(..., context=ctx)`` and to executors
    (``SingleThreadedExecutor(context=ctx)``) so tests never share global state.
    """
    import rclpy  # installed by scripts/setup.sh: a missing rclpy fails the test

    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    try:
        yield ctx
    finally:
        ctx.try_shutdown()


# -- model layer ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """The verified model folder ($FACE3D_MODEL_DIR or ~/.cache/face3d/models).

    Fails (never skips) with the error that names ``face3d-fetch-models`` when a file is
    missing or corrupt: the test command's setup step fetches the models first.
    """
    from face3d_ros.core.io import model_store

    for name in model_store.MODEL_KEYS:
        path = model_store.resolve_model(name, None)
    return path.parent


# -- real photos from registry packages -----------------------------------------------------


def _rgb(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB, read-only, from a uint8 or [0, 1] float image."""
    if image.dtype != np.uint8:
        image = np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
    image = np.ascontiguousarray(image[..., :3])
    image.setflags(write=False)
    return image


@pytest.fixture(scope="session")
def astronaut_rgb() -> np.ndarray:
    """skimage's astronaut (Eileen Collins): (512, 512, 3) uint8 RGB, one frontal face."""
    import skimage.data

    return _rgb(skimage.data.astronaut())


@pytest.fixture(scope="session")
def grace_hopper_rgb() -> np.ndarray:
    """matplotlib's sample grace_hopper.jpg: (600, 512, 3) uint8 RGB, one face."""
    import matplotlib.cbook
    import matplotlib.image

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        return _rgb(matplotlib.image.imread(f, format="jpeg"))


@pytest.fixture(scope="session")
def chelsea_rgb() -> np.ndarray:
    """skimage's chelsea (a cat): (300, 451, 3) uint8 RGB, no human face."""
    import skimage.data

    return _rgb(skimage.data.chelsea())


@pytest.fixture(scope="session")
def coffee_rgb() -> np.ndarray:
    """skimage's coffee (a cup): (400, 600, 3) uint8 RGB, no human face."""
    import skimage.data

    return _rgb(skimage.data.coffee())
