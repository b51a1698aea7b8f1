"""Which camera_info an image uses, and its intrinsics: the one camera_info policy of the node
and of the offline evaluation (``face3d-eval``), so both process an image with the same
intrinsics.

Nothing here imports rclpy or a message package: the functions take any object with the
``sensor_msgs/CameraInfo`` attributes (an rclpy message or a rosbags one). The node adds what
only a live subscriber has (waiting briefly for an info that carries the image's stamp, see
``CAMERA_INFO_WAIT_S``); the evaluation reads a recorded stream in log order.
"""

from __future__ import annotations

import collections
import time
from typing import Callable, Container, Optional, Sequence, Tuple

import numpy as np

from face3d_ros.core.types import CameraIntrinsics

#: Seconds the node waits for the camera_info that carries an image's stamp when the camera's
#: infos carry the image stamps (two topics, no order between them).
CAMERA_INFO_WAIT_S = 0.2
#: Camera infos kept (the newest): enough for a camera that sends the info just after the image.
CAMERA_INFO_KEEP = 20
#: Waits in vain in a row after which images no longer wait for their camera_info (until an
#: info carries an image's stamp again, also one that arrives after its image).
CAMERA_INFO_MISSES_OFF = 3


def stamp_of(msg) -> Tuple[int, int]:
    """(sec, nanosec) of a message's header stamp."""
    return int(msg.header.stamp.sec), int(msg.header.stamp.nanosec)


def select_camera_info(infos: Sequence, stamp: Tuple[int, int], width: int, height: int
                       ) -> Tuple[Optional[object], bool]:
    """The camera_info of an image: ``(info, exact)``.

    infos: the camera_infos received so far, oldest first. The one with the image's ``stamp``
    (sec, nanosec) wins (``exact`` True); else the newest for a ``width`` x ``height`` image
    ; else the newest; None when there is none.
    """
    for info in reversed(infos):
        if stamp_of(info) == stamp:
            return info, True
    same_size = [i for i in infos if (int(i.width), int(i.height)) == (width, height)]
    newest = same_size or list(infos)
    return (newest[-1] if newest else None), False


class CameraInfoBuffer:
    """The camera_infos a live subscriber received, and whether an image waits for its own.

    When the camera's infos carry the image stamps, or none arrived yet while the topic has a
    publisher, an image's info may still be on its way (two topics, no order between them):
    :meth:`take` waits for it up to ``CAMERA_INFO_WAIT_S``. A camera whose stamps never
    match, or that publishes no camera_info, costs no wait: ``CAMERA_INFO_MISSES_OFF`` waits
    in vain in a row turn waiting off, and an info that carries a received image's stamp
    (also one that arrives after its image) turns it on again. Not locked by itself: the
    caller holds the condition it passes to :meth:`take` around :meth:`add` and :meth:`take`
    (:meth:`should_wait` reads two fields and may run without it).
    """

    def __init__(self, keep: int = CAMERA_INFO_KEEP) -> None:
        """An empty buffer of the ``keep`` newest infos."""
        self.infos: collections.deque = collections.deque(maxlen=keep)
        self.stamps_match = False
        self.misses = 0

    def add(self, info, image_stamps: Container[Tuple[int, int]]) -> None:
        """Keep ``info``; ``image_stamps``: the (sec, nanosec) of the recent images."""
        self.infos.append(info)
        if stamp_of(info) in image_stamps:
            self.stamps_match = True
            self.misses = 0

    def should_wait(self, info_publishers: Callable[[], int]) -> bool:
        """Whether an image should wait for its own info (``info_publishers()``: how many
        publish on the camera_info topic, asked only while no info came yet)."""
        return self.stamps_match or (not self.infos and info_publishers() > 0)

    def take(self, condition, stamp: Tuple[int, int], width: int, height: int, wait: bool,
             running: Callable[[], bool]):
        """The info of an image (:func:`select_camera_info`), waiting on ``condition`` (held
        by the caller) up to ``CAMERA_INFO_WAIT_S`` for the one with its stamp when ``wait``
        and while ``running()``; None when there is none."""
        deadline = time.monotonic() + (CAMERA_INFO_WAIT_S if wait else 0.0)
        while True:
            info, exact = select_camera_info(self.infos, stamp, width, height)
            if exact:
                self.stamps_match = True
                self.misses = 0
                return info
            left = deadline - time.monotonic()
            if left <= 0.0 or not running():
                if wait:
                    self.misses += 1
                    if self.misses >= CAMERA_INFO_MISSES_OFF:
                        self.stamps_match = False
                return info
            condition.wait(left)


#: Field of view (degrees) a rectified pinhole image can plausibly span along either axis;
#: focal lengths outside it are rejected as a broken camera_info.
MIN_FOV_DEG = 0.5
MAX_FOV_DEG = 179.0


def camera_info_to_intrinsics(
    msg, width: int, height: int, default_hfov_deg: float = 60.0
) -> Tuple[CameraIntrinsics, Optional[str]]:
    """Intrinsics of a ``width`` x ``height`` image from its ``camera_info``.

    Returns ``(intrinsics, problem)``. When ``msg`` is usable, ``problem`` is None and the
    intrinsics come from ``K`` (``assumed=False``). Otherwise ``problem`` says what is wrong
    and the intrinsics are those of an ideal camera with a horizontal field of view of
    ``default_hfov_deg`` (``assumed=True``). Checked: K all zero (uncalibrated camera), fx or fy
    not positive and finite, focal lengths that give a field of view outside
    [``MIN_FOV_DEG``, ``MAX_FOV_DEG``] (e.g. fx = 1e-9 or 1e12: a broken driver), the
    camera_info size differing from the image size, and the principal point outside the image.
    Distortion is not applied: the image is taken as rectified.
    """
    fallback = CameraIntrinsics.from_fov(width, height, default_hfov_deg)
    if msg is None:
        return fallback, "no camera_info received"
    k = np.asarray(msg.k, dtype=np.float64).reshape(-1)
    if k.size != 9:
        return fallback, f"camera_info K has {k.size} values, expected 9"
    if not np.any(k):
        return fallback, "camera_info K is all zero (the camera is not calibrated)"
    if not np.all(np.isfinite(k)):
        return fallback, "camera_info K contains NaN or infinite values"
    fx, fy, cx, cy = float(k[0]), float(k[4]), float(k[2]), float(k[5])
    if fx <= 0.0 or fy <= 0.0:
        return fallback, f"camera_info K has non-positive focal lengths fx={fx:g}, fy={fy:g}"
    for axis, f, side in (("fx", fx, width), ("fy", fy, height)):
        fov = float(np.degrees(2.0 * np.arctan2(0.5 * side, f)))
        if not MIN_FOV_DEG <= fov <= MAX_FOV_DEG:
            return fallback, (
                f"camera_info K has an implausible focal length {axis}={f:g} px: a "
                f"{side} px side would span {fov:.3g} deg, expected {MIN_FOV_DEG:g}-"
                f"{MAX_FOV_DEG:g} deg; publish the calibrated camera_info of this camera"
            )
    info_w, info_h = int(msg.width), int(msg.height)
    if (info_w, info_h) != (0, 0) and (info_w, info_h) != (int(width), int(height)):
        return fallback, (
            f"camera_info is for a {info_w}x{info_h} image but the image is {width}x{height}; "
            "publish the camera_info that matches the image (e.g. of the same resolution)"
        )
    if not (0.0 <= cx <= width and 0.0 <= cy <= height):
        return fallback, (
            f"camera_info principal point ({cx:g}, {cy:g}) lies outside the {width}x{height} "
            "image"
        )
    return CameraIntrinsics(fx, fy, cx, cy, int(width), int(height), assumed=False), None
