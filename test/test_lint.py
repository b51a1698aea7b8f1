"""Linters as tests: flake8 at 99 columns, docstrings on the public API, mypy on the core, and
valid ROS package manifests.

Each test names the offending file and line in its failure message. The project has not adopted
a per-file copyright header (the licence is declared once, in package.xml and setup.py), so no
header check runs here.
"""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PY_PATHS = ["face3d_ros", "launch", "test", "setup.py"]


def _run(args, timeout_s: float = 300.0) -> subprocess.CompletedProcess:
    """Run ``python -m <args>`` in the repository root, capturing text output."""
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout_s)


def _existing(paths):
    """The entries of ``paths`` present in this checkout (launch/ may be empty)."""
    return [p for p in paths if (ROOT / p).exists()]


def test_flake8_style():
    """pycodestyle and pyflakes at 99 columns over the package, launch files and tests."""
    result = _run(["flake8", "--max-line-length=99", "--extend-ignore=E203,W503,D",
                   *_existing(PY_PATHS)])
    assert result.returncode == 0, f"flake8 found problems:\n{result.stdout}{result.stderr}"


def test_public_api_has_docstrings():
    """Every public module, class, method and function of face3d_ros has a docstring.

    pep257 presence checks only (D100-D104, D106): ``__init__`` and magic methods are
    documented by their class docstring.
    """
    result = _run(["flake8", "--select=D100,D101,D102,D103,D104,D106", "face3d_ros"])
    assert result.returncode == 0, (
        f"public API without docstrings:\n{result.stdout}{result.stderr}")


def test_mypy_core():
    """mypy finds no type errors in face3d_ros/core (numpy + torch only, no ROS)."""
    result = _run(["mypy", "--ignore-missing-imports", "--no-error-summary",
                   "--cache-dir", str(ROOT / ".mypy_cache"), "face3d_ros/core"], 600.0)
    assert result.returncode == 0, f"mypy on face3d_ros/core:\n{result.stdout}{result.stderr}"


@pytest.mark.parametrize("manifest, name", [("package.xml", "face3d_ros"),
                                            ("face3d_msgs/package.xml", "face3d_msgs")])
def test_package_manifest_is_valid(manifest, name):
    """package.xml parses and validates as a format-3 ROS package (catkin_pkg, as colcon)."""
    from catkin_pkg.package import InvalidPackage, parse_package

    path = ROOT / manifest
    assert path.is_file(), f"{manifest} is missing"
    try:
        package = parse_package(str(path))
    except InvalidPackage as exc:
        pytest.fail(f"{manifest} is not a valid ROS package manifest: {exc}")
    assert package.package_format == 3
    assert package.name == name
    assert package.licenses == ["Apache-2.0"]
    assert package.maintainers and all(m.email for m in package.maintainers)
    assert package.get_build_type() in ("ament_python", "ament_cmake")
