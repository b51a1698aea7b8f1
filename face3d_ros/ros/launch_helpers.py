"""Decisions of ``launch/face3d.launch.py`` as pure functions (tested without launch installed).

* Which parameters the launch passes besides the params file: only ``autostart: false`` and
  the launch arguments the user actually gave (an argument left at its empty default must not
  override the YAML, the one source of defaults); the people node gets ``autostart: false``
  only (the switches are the perception node's).
* Whether the people node starts (launch argument ``people``).
* Whether an executable of another package (RViz) can be started, without starting it.
* The RViz config for a node pushed into a namespace: the shipped file names the topics of a
  node in ``/``; they are rewritten to ``<namespace>/<topic>``.
"""

from __future__ import annotations

import os
import re
from typing import Any, Dict, List, Optional

#: Topics shown by rviz/face3d.rviz (the nodes' relative output names).
RVIZ_TOPICS = ("debug_image", "face_markers", "gaze", "enrolled_faces")


#: Launch argument text read as a boolean parameter value.
_BOOL_WORDS = {"true": True, "1": True, "yes": True, "on": True,
               "false": False, "0": False, "no": False, "off": False}


def node_parameters(params_file: str, device: str = "", hri: str = "",
                    publish_tf: str = "") -> List[Any]:
    """The ``parameters`` of the face3d LifecycleNode: the params file, then the overrides.

    ``device``, ``hri`` and ``publish_tf`` are passed only when given (non-empty; the two
    switches as true/false, 1/0, yes/no or on/off, else ValueError naming the argument);
    ``autostart`` is always false because the launch file drives the lifecycle transitions
    itself.
    """
    overrides: Dict[str, Any] = {"autostart": False}
    if device:
        overrides["device"] = device
    for name, text in (("hri", hri), ("publish_tf", publish_tf)):
        if text.strip():
            overrides[name] = launch_switch(name, text)
    return [params_file, overrides]


def people_parameters(params_file: str) -> List[Any]:
    """The ``parameters`` of the face3d_people LifecycleNode: the params file (its ``/**``
    section holds both nodes' parameters; each takes its own), then ``autostart: false``."""
    return [params_file, {"autostart": False}]


def launch_switch(name: str, text: str) -> bool:
    """A boolean launch argument (true/false, 1/0, yes/no, on/off); ValueError naming it."""
    word = text.strip().lower()
    if word not in _BOOL_WORDS:
        raise ValueError(f"launch argument {name} must be true or false, got {word!r}")
    return _BOOL_WORDS[word]


def find_executable(package: str, executable: str) -> Optional[str]:
    """Path of ``lib/<package>/<executable>`` in the ament index, else on PATH, else None."""
    try:
        from ament_index_python.packages import (PackageNotFoundError,
                                                 get_package_prefix)
    except ImportError:  # pragma: no cover - ament_index_python ships with rclpy
        get_package_prefix, PackageNotFoundError = None, Exception
    if get_package_prefix is not None:
        try:
            path = os.path.join(get_package_prefix(package), "lib", package, executable)
            if os.access(path, os.X_OK):
                return path
        except (PackageNotFoundError, ValueError):
            pass
    import shutil

    return shutil.which(executable)


def normalize_namespace(namespace: str) -> str:
    """``robot`` or ``/robot/`` -> ``/robot``; empty or ``/`` -> ``""``."""
    ns = namespace.strip().strip("/")
    return f"/{ns}" if ns else ""


def rviz_config_text(template: str, namespace: str) -> str:
    """The RViz config ``template`` with its face3d topics moved into ``namespace``.

    Only the ``Value: /<topic>`` lines of :data:`RVIZ_TOPICS` change; without a namespace the
    text is returned as it is.
    """
    ns = normalize_namespace(namespace)
    if not ns:
        return template
    for topic in RVIZ_TOPICS:
        template = re.sub(rf"(Value:\s*)/{topic}\s*$", rf"\g<1>{ns}/{topic}", template,
                          flags=re.MULTILINE)
    return template
