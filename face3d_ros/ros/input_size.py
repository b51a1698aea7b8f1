"""The node's input size policy: large frames are processed downscaled, results in original pixels.

An 8K rgb8 frame is 100 MB; turned into a float tensor and cropped it took the node past 1 GB.
The detector sees at most 192x192 pixels and the mesh network a 192x192 crop per face, so a
frame whose longer side exceeds ``max_image_side`` is resized to that side first (area
averaging) and processed; its results are then mapped back:

* pixel quantities (boxes, ROIs, 2D landmarks, the relative depth in pixels) by the inverse
  scale, with pixel centres at integer coordinates (OpenCV and ROS convention:
  ``x_small = (x + 0.5) * s - 0.5``);
* the intrinsics of the processed image are those of the original scaled the same way, so the
  metric 3D results (landmarks, pose, gaze) are those of the original camera unchanged.

Pure functions on numpy and the core's frozen dataclasses: no ROS, tested with plain pytest.
"""

from __future__ import annotations

import dataclasses
import time
from typing import NamedTuple, Optional, Tuple

import cv2
import numpy as np

from face3d_ros.core.types import CameraIntrinsics, FaceResult, FrameResult, Roi


def processing_scale(width: int, height: int, max_side: int) -> float:
    """Factor (<= 1) that brings the longer side of a ``width`` x ``height`` frame to at most
    ``max_side`` pixels; 1.0 when it already fits."""
    longest = max(int(width), int(height))
    return 1.0 if longest <= max_side else float(max_side) / float(longest)


def downscale(rgb: np.ndarray, scale: float) -> Tuple[np.ndarray, float, float]:
    """``rgb`` resized by ``scale`` (area averaging); returns (image, sx, sy), the exact factors
    of the rounded output size per axis."""
    h, w = rgb.shape[:2]
    nw, nh = max(1, int(round(w * scale))), max(1, int(round(h * scale)))
    small = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA)
    return small, nw / float(w), nh / float(h)


def scale_intrinsics(intr: CameraIntrinsics, sx: float, sy: float) -> CameraIntrinsics:
    """The intrinsics of the image resized by (sx, sy) (pixel centres kept aligned)."""
    return dataclasses.replace(
        intr, fx=intr.fx * sx, fy=intr.fy * sy, cx=(intr.cx + 0.5) * sx - 0.5,
        cy=(intr.cy + 0.5) * sy - 0.5, width=int(round(intr.width * sx)),
        height=int(round(intr.height * sy)))


def _points_up(xy: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """x, y pixel columns of the small image in the original image's pixels."""
    out = np.array(xy, dtype=np.float64 if np.asarray(xy).dtype == np.float64 else np.float32)
    out[..., 0] = (out[..., 0] + 0.5) / sx - 0.5
    out[..., 1] = (out[..., 1] + 0.5) / sy - 0.5
    return out


def _face_up(face: FaceResult, sx: float, sy: float) -> FaceResult:
    lm2 = _points_up(face.landmarks_2d, sx, sy)
    lm2[:, 2] = np.asarray(face.landmarks_2d)[:, 2] / sx  # relative depth, same scale as x
    box = _points_up(np.asarray(face.box, dtype=np.float64).reshape(2, 2), sx, sy).reshape(4)
    cx, cy = face.roi.center
    roi = Roi(center=((cx + 0.5) / sx - 0.5, (cy + 0.5) / sy - 0.5),
              size=face.roi.size / sx, rotation=face.roi.rotation)
    return dataclasses.replace(face, landmarks_2d=lm2, box=box, roi=roi)


def to_original_pixels(frame: FrameResult, sx: float, sy: float,
                       original: Optional[CameraIntrinsics],
                       size: Tuple[int, int]) -> FrameResult:
    """A result of the image resized by (sx, sy) in the original frame's terms.

    original: the intrinsics of the original frame (from its camera_info), or None when they
    were assumed (then those of the processed image are scaled back). size: (width, height)
    of the original frame.
    """
    if original is None:
        p = frame.intrinsics
        original = dataclasses.replace(
            p, fx=p.fx / sx, fy=p.fy / sy, cx=(p.cx + 0.5) / sx - 0.5,
            cy=(p.cy + 0.5) / sy - 0.5, width=int(size[0]), height=int(size[1]))
    return dataclasses.replace(
        frame, faces=tuple(_face_up(f, sx, sy) for f in frame.faces),
        image_size=(int(size[0]), int(size[1])), intrinsics=original)


def header_seconds(header) -> float:
    """A message header's stamp as float seconds, the time the tracker's filters run on (the
    node and the offline evaluation convert stamps with this one function: a different
    rounding changes the smoothed outputs in their last digits)."""
    return float(header.stamp.sec) + 1e-9 * float(header.stamp.nanosec)


class Tracked(NamedTuple):
    """What :func:`track_frame` returns. result: in the original frame's pixels. small: None
    when the frame was processed as it is, else (the downscaled image, its intrinsics or None,
    sx, sy). downscale_ms: the time the resize took (0 when none)."""

    result: FrameResult
    small: Optional[Tuple[np.ndarray, Optional[CameraIntrinsics], float, float]]
    downscale_ms: float


def track_frame(tracker, rgb: np.ndarray, intrinsics: Optional[CameraIntrinsics], stamp: float,
                max_side: int) -> Tracked:
    """One frame through ``tracker`` (``core.pipeline.tracking.FaceTracker``) under the input
    size policy: downscaled when its longer side exceeds ``max_side``, results in the original
    pixels. The node and the offline evaluation both process frames with this function.
    Errors of the tracker (RuntimeError, ValueError) pass through."""
    height, width = rgb.shape[:2]
    scale = processing_scale(width, height, max_side)
    if scale >= 1.0:
        return Tracked(tracker.process(rgb, intrinsics, stamp), None, 0.0)
    t0 = time.perf_counter()
    small, sx, sy = downscale(rgb, scale)
    small_intr = scale_intrinsics(intrinsics, sx, sy) if intrinsics is not None else None
    ms = (time.perf_counter() - t0) * 1e3
    result = tracker.process(small, small_intr, stamp)
    return Tracked(to_original_pixels(result, sx, sy, intrinsics, (width, height)),
                   (small, small_intr, sx, sy), ms)
