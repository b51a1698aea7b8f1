"""What the two face3d nodes (``face3d_node``, ``face3d_people``) share besides the parameter
spec and the process runner: the logging of a failed lifecycle transition, warnings repeated at
most once a minute, and the camera subscription's topic and QoS.
"""

from __future__ import annotations

import functools
import time
import traceback
from typing import Dict, Tuple

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image

#: Seconds between repeated warnings about the same ongoing problem.
REWARN_S = 60.0


def logged_transition(method):
    """Log an exception raised in a lifecycle transition callback, then re-raise it.

    rclpy turns such an exception into an ERROR transition without logging anything; this
    makes the cause visible. Not used on the per-frame path.
    """

    @functools.wraps(method)
    def wrapper(self, state):
        """Run the transition callback, logging its exception."""
        try:
            return method(self, state)
        except Exception:
            self.get_logger().error(f"{method.__name__} failed:\n{traceback.format_exc()}")
            raise

    return wrapper


class WarnOnce:
    """Log a problem the first time its key comes up, then at most every ``REWARN_S`` (marked
    "(again)"), so that an ongoing problem neither floods the log nor goes quiet."""

    def __init__(self, logger) -> None:
        """``logger``: an rclpy logger (``node.get_logger()``)."""
        self._logger = logger
        self._last: Dict[str, float] = {}

    def __call__(self, key: str, text: str, error: bool = False) -> None:
        """Log ``text`` (as an error with ``error``) unless ``key`` was logged in the last
        ``REWARN_S`` seconds."""
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < REWARN_S:
            return
        self._last[key] = now
        again = " (again)" if last is not None else ""
        # One call site per severity: rclpy refuses a call site that changes severity.
        if error:
            self._logger.error(text + again)
        else:
            self._logger.warning(text + again)


def camera_subscription(node, use_compressed: bool, reliability: str, depth: int
                        ) -> Tuple[str, type, QoSProfile]:
    """(topic, message type, QoS) of a node's camera image subscription: ``image`` (Image) or
    ``<resolved image>/compressed`` (CompressedImage, so that remapping ``image`` is enough);
    keep-last ``depth``, volatile, ``reliability`` "best_effort" or "reliable"."""
    qos = QoSProfile(
        depth=depth, history=HistoryPolicy.KEEP_LAST,
        reliability=(ReliabilityPolicy.BEST_EFFORT if reliability == "best_effort"
                     else ReliabilityPolicy.RELIABLE),
        durability=DurabilityPolicy.VOLATILE)
    if not use_compressed:
        return "image", Image, qos
    resolve = getattr(node, "resolve_topic_name", None)
    return (resolve("image") + "/compressed" if resolve else "image/compressed"), \
        CompressedImage, qos
