"""This process's side of face3d's nodes over real DDS, shared by the node tests.

* :func:`node_command`, :func:`people_command`: the installed executables, as a user starts
  them; :func:`start_process`: one as a subprocess, its log captured to a file;
  :func:`log_lines`: the lines of such a log that match a pattern.
* :func:`image_msg`, :func:`info_msg`: an RGB frame and its camera_info; :func:`stamp_key`:
  the (sec, nanosec) of a header's stamp, the key under which answers are kept.
* :class:`CameraClient`: a node on its own executor with reliable camera publishers and a
  ``Face3DArray`` subscriber; it sends frames and waits for the node's answers
  (:meth:`~CameraClient.answer_key`), and :meth:`~CameraClient.wait_until_serving` waits for
  a node to come up. Each test module subclasses it with the topics, services and action
  clients of its own; :func:`serving_client` gives one in its own context once the node
  serves.
"""

from __future__ import annotations

import array
import os
import re
import shutil
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Optional, Tuple

import numpy as np
import pytest
import rclpy
from builtin_interfaces.msg import Time
from face3d_msgs.msg import Face3DArray
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image

REPO = Path(__file__).resolve().parents[1]
#: The environment of a node subprocess: unbuffered, uncoloured log lines on stderr.
ENV = dict(os.environ, PYTHONUNBUFFERED="1", RCUTILS_COLORIZED_OUTPUT="0",
           RCUTILS_LOGGING_BUFFERED_STREAM="0", RCUTILS_LOGGING_USE_STDOUT="0")
#: The shipped parameters file every node test starts from.
PARAMS_FILE = REPO / "config" / "face3d.yaml"

Key = Tuple[int, int]


def node_command() -> list:
    """The installed ``face3d_node`` (colcon install, else PATH), as a user starts it."""
    installed = REPO / "install" / "face3d_ros" / "lib" / "face3d_ros" / "face3d_node"
    exe = str(installed) if installed.is_file() else shutil.which("face3d_node")
    if exe is None:
        pytest.fail("face3d_node is not installed: run scripts/setup.sh, then "
                    "source scripts/env.sh")
    return [exe]


def people_command() -> list:
    """The installed ``face3d_people`` beside ``face3d_node``."""
    exe = Path(node_command()[0]).with_name("face3d_people")
    if not exe.is_file():
        pytest.fail("face3d_people is not installed: run scripts/setup.sh")
    return [str(exe)]


def start_process(cmd: list, log_path: Path) -> subprocess.Popen:
    """``cmd`` as a subprocess with :data:`ENV`, stdout and stderr written to ``log_path``."""
    with open(log_path, "wb") as log:
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=ENV)


def log_lines(path: Path, pattern: str) -> list:
    """Lines of a node's log that contain ``pattern`` (a regular expression)."""
    return [ln for ln in path.read_text(errors="replace").splitlines() if re.search(pattern, ln)]


def stamp_key(header) -> Key:
    """(sec, nanosec) of ``header``'s stamp."""
    return (header.stamp.sec, header.stamp.nanosec)


def image_msg(rgb: np.ndarray, stamp: Time, frame_id: str, encoding: str = "rgb8",
              channels: int = 3, step: Optional[int] = None, width: Optional[int] = None,
              height: Optional[int] = None) -> Image:
    """``rgb`` as an Image; ``encoding``, ``channels`` (the step's bytes per pixel over the
    element size), ``step``, ``width`` and ``height`` may be set to anything, bad frames
    included."""
    h, w = rgb.shape[:2]
    img = Image(width=w if width is None else width, height=h if height is None else height,
                encoding=encoding,
                step=channels * w * rgb.itemsize if step is None else step)
    img.header.stamp, img.header.frame_id = stamp, frame_id
    img.data = array.array("B", np.ascontiguousarray(rgb).tobytes())
    return img


def info_msg(w: int, h: int, stamp: Time, frame_id: str,
             fx: Optional[float] = None) -> CameraInfo:
    """A pinhole camera_info of a ``w`` x ``h`` image: focal length ``fx`` px (default 0.9 w),
    principal point at the centre."""
    fx = 0.9 * w if fx is None else fx
    info = CameraInfo(width=w, height=h, k=[fx, 0.0, w / 2.0, 0.0, fx, h / 2.0, 0.0, 0.0, 1.0])
    info.header.stamp, info.header.frame_id = stamp, frame_id
    return info


class CameraClient:
    """A test node on its own executor: reliable publishers of ``{cam}/image_raw`` and
    ``{cam}/camera_info``, and the node's ``Face3DArray`` answers on ``faces_topic`` in
    ``self.faces`` by stamp. Stamps count up from ``first_sec`` (one second a frame, so that
    every frame is new to the node), with ``nanosec``."""

    def __init__(self, ctx, name: str, cam: str, faces_topic: str, frame_id: str,
                 first_sec: int, nanosec: int = 0, depth: int = 50) -> None:
        self.node = rclpy.create_node(name, context=ctx)
        self.executor = SingleThreadedExecutor(context=ctx)
        self.executor.add_node(self.node)
        self.reliable = QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE)
        self.image_pub = self.node.create_publisher(Image, f"{cam}/image_raw", self.reliable)
        self.info_pub = self.node.create_publisher(CameraInfo, f"{cam}/camera_info",
                                                   self.reliable)
        self.frame_id = frame_id
        self.faces: dict = {}
        self.node.create_subscription(
            Face3DArray, faces_topic, lambda m: self.faces.__setitem__(stamp_key(m.header), m),
            self.reliable)
        self.sec, self.nanosec = first_sec, nanosec
        self.sent = 0

    def spin_until(self, done: Callable[[], bool], timeout_s: float) -> bool:
        """Spin until ``done()`` or ``timeout_s``; ``done()`` at the end."""
        deadline = time.monotonic() + timeout_s
        while not done() and time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.02)
        return bool(done())

    def next_stamp(self) -> Time:
        """A stamp one second after the last one."""
        self.sec += 1
        return Time(sec=self.sec, nanosec=self.nanosec)

    def send(self, rgb: np.ndarray, stamp: Optional[Time] = None, info: bool = True,
             fx: Optional[float] = None, **image_fields) -> Key:
        """Publish ``rgb`` (its camera_info first, unless ``info`` is False) at ``stamp`` (the
        next one by default); ``image_fields`` go to :func:`image_msg`. Returns the key."""
        stamp = stamp or self.next_stamp()
        if info:
            self.info_pub.publish(info_msg(rgb.shape[1], rgb.shape[0], stamp, self.frame_id,
                                           fx))
        self.image_pub.publish(image_msg(rgb, stamp, self.frame_id, **image_fields))
        self.sent += 1
        return (stamp.sec, stamp.nanosec)

    def answer_key(self, rgb: np.ndarray, timeout_s: float = 60.0,
                   answered: Optional[Callable[[Key], bool]] = None, per_try_s: float = 15.0,
                   **send_kwargs) -> Key:
        """Send ``rgb`` until the node answers one of the frames (``answered(key)``, by
        default its faces arrived) within ``per_try_s``; that frame's key."""
        answered = answered or (lambda key: key in self.faces)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            key = self.send(rgb, **send_kwargs)
            if self.spin_until(lambda: answered(key), per_try_s):
                return key
        raise AssertionError(f"the node answered no image within {timeout_s} s")

    def wait_until_serving(self, proc: subprocess.Popen, log: Path, rgb: np.ndarray,
                           ready: Callable[[], bool] = lambda: True,
                           name: str = "face3d_node") -> None:
        """Wait for the node ``proc`` to subscribe to both camera topics (and ``ready()``),
        then for an answer made with its own camera_info: each side of both topics has matched
        the other (a sample sent before the node's reader knew the writer is only re-sent at
        the writer's next heartbeat, and the infos after it wait for it). Fails the test with
        the log's tail when the node exits or does not come up."""
        up = self.spin_until(lambda: (self.image_pub.get_subscription_count() > 0
                                      and self.info_pub.get_subscription_count() > 0
                                      and ready()) or proc.poll() is not None, 120.0)
        if not up or proc.poll() is not None:
            pytest.fail(f"{name} did not come up (exit code {proc.poll()}):\n"
                        + log.read_text(errors="replace")[-3000:])
        deadline = time.monotonic() + 60.0
        while (self.faces[self.answer_key(rgb)].intrinsics_assumed
               and time.monotonic() < deadline):
            pass

    def close(self) -> None:
        """Stop the executor and destroy the node."""
        self.executor.shutdown()
        self.node.destroy_node()


@contextmanager
def serving_client(make: Callable[..., CameraClient], proc: subprocess.Popen, log: Path,
                   rgb: np.ndarray, ready: Callable[[CameraClient], bool] = lambda c: True
                   ) -> Iterator[CameraClient]:
    """``make(context)`` in a context of its own, once the node ``proc`` serves it
    (:meth:`CameraClient.wait_until_serving` with ``ready(client)``); closed, and the context
    shut down, at the end."""
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    client = make(ctx)
    try:
        client.wait_until_serving(proc, log, rgb, lambda: ready(client))
        yield client
    finally:
        client.close()
        ctx.try_shutdown()
