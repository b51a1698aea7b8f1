"""Decoding ROS image messages into RGB arrays (numpy and OpenCV only).

The functions read only the messages' fields (``width``, ``height``, ``step``, ``encoding``,
``is_bigendian``, ``data``; ``format`` and ``data`` of a compressed image), so they serve the
rclpy messages of the node and the rosbags messages of the bag tools alike, and this module
imports no message package.
"""

from __future__ import annotations

import array
from typing import Any, Tuple

import cv2
import numpy as np

#: Raw encodings accepted by :func:`image_msg_to_rgb` -> (channels, bytes per channel).
#: ``yuv422`` is UYVY byte order and ``yuv422_yuy2`` is YUYV (sensor_msgs image_encodings).
_RAW_ENCODINGS = {
    "rgb8": (3, 1),
    "bgr8": (3, 1),
    "rgba8": (4, 1),
    "bgra8": (4, 1),
    "mono8": (1, 1),
    "8UC1": (1, 1),
    "8UC3": (3, 1),
    "mono16": (1, 2),
    "yuv422": (2, 1),
    "uyvy": (2, 1),
    "yuv422_yuy2": (2, 1),
    "yuyv": (2, 1),
}
SUPPORTED_ENCODINGS: Tuple[str, ...] = tuple(_RAW_ENCODINGS)

_DEPTH_ENCODINGS = ("16UC1", "32FC1")


class ImageFormatError(ValueError):
    """An image message that cannot be turned into an RGB array.

    ``cause`` is a short, stable key of what is wrong ("size", "encoding", "step", "length",
    "decode"), so that a caller can log each kind of problem once instead of once per frame.
    """

    def __init__(self, cause: str, message: str) -> None:
        super().__init__(message)
        self.cause = cause


def _buffer(data) -> np.ndarray:
    """(N,) uint8 view of a message's ``data`` (array.array, bytes or a list)."""
    if isinstance(data, (bytes, bytearray, memoryview, array.array)):
        return np.frombuffer(data, dtype=np.uint8)
    return np.asarray(data, dtype=np.uint8)


def image_msg_to_rgb(msg: Any) -> np.ndarray:
    """Convert a ``sensor_msgs/Image`` to an (H, W, 3) uint8 RGB array.

    ``rgb8`` images with ``step == width * 3`` come back as a read-only view of the message
    buffer (no copy); every other encoding is converted with one OpenCV call. ``mono16`` is
    scaled to 8 bits by dropping the low byte (``is_bigendian`` honoured).

    Raises :class:`ImageFormatError` (a ``ValueError``) naming what is wrong and the fix: zero
    width or height, an unsupported encoding (listing the supported ones), ``step`` smaller
    than one row, or a ``data`` length other than ``step * height``.
    """
    width, height, step = int(msg.width), int(msg.height), int(msg.step)
    encoding = msg.encoding
    if width <= 0 or height <= 0:
        raise ImageFormatError(
            "size",
            f"image has zero size (width={width}, height={height}); the publisher must fill "
            "width and height",
        )
    if encoding not in _RAW_ENCODINGS:
        hint = ""
        if encoding in _DEPTH_ENCODINGS:
            hint = " (this looks like a depth image: remap 'image' to a colour or mono topic)"
        raise ImageFormatError(
            "encoding",
            f"unsupported image encoding {encoding!r}{hint}; supported: "
            f"{', '.join(SUPPORTED_ENCODINGS)}",
        )
    channels, depth = _RAW_ENCODINGS[encoding]
    row_bytes = width * channels * depth
    if step < row_bytes:
        raise ImageFormatError(
            "step",
            f"image step {step} is smaller than one row of {width} px x {channels * depth} "
            f"bytes ({encoding}) = {row_bytes} bytes; the publisher must set step >= {row_bytes}",
        )
    buf = _buffer(msg.data)
    if buf.size != step * height:
        raise ImageFormatError(
            "length",
            f"image data has {buf.size} bytes but step x height = {step} x {height} = "
            f"{step * height}; the message is truncated or its step/height are wrong",
        )
    rows = buf.reshape(height, step)[:, :row_bytes]  # (H, W*C*D) view, padding dropped
    if depth == 2:
        dtype = np.dtype(">u2" if msg.is_bigendian else "<u2")
        mono16 = np.ascontiguousarray(rows).view(dtype).reshape(height, width)
        gray = (mono16 >> 8).astype(np.uint8)
        return cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB)
    pixels = rows.reshape(height, width, channels)  # (H, W, C) view
    if encoding == "rgb8":
        return pixels
    if encoding in ("bgr8", "8UC3"):
        return cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)
    if encoding == "rgba8":
        return cv2.cvtColor(pixels, cv2.COLOR_RGBA2RGB)
    if encoding == "bgra8":
        return cv2.cvtColor(pixels, cv2.COLOR_BGRA2RGB)
    if encoding in ("mono8", "8UC1"):
        return cv2.cvtColor(pixels[:, :, 0], cv2.COLOR_GRAY2RGB)
    if encoding in ("yuv422", "uyvy"):
        return cv2.cvtColor(np.ascontiguousarray(pixels), cv2.COLOR_YUV2RGB_UYVY)
    return cv2.cvtColor(np.ascontiguousarray(pixels), cv2.COLOR_YUV2RGB_YUYV)


def compressed_msg_to_rgb(msg: Any) -> np.ndarray:
    """Decode a ``sensor_msgs/CompressedImage`` (JPEG, PNG, ...) to (H, W, 3) uint8 RGB.

    Raises :class:`ImageFormatError` when the payload is empty, is a ``compressedDepth`` image
    or cannot be decoded.
    """
    fmt = msg.format or ""
    if "compressedDepth" in fmt:
        raise ImageFormatError(
            "encoding",
            f"compressed depth image ({fmt!r}) cannot be used; remap 'image' to a colour topic",
        )
    buf = _buffer(msg.data)
    if buf.size == 0:
        raise ImageFormatError("size", "compressed image has no data")
    bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if bgr is None:
        raise ImageFormatError(
            "decode",
            f"could not decode compressed image (format {fmt!r}, {buf.size} bytes); "
            "JPEG and PNG are supported",
        )
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
