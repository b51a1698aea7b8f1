"""Overlay picture of a :class:`FrameResult`: mesh, landmarks, gaze arrows, pose axes, ids.

OpenCV drawing on a copy of the RGB image; 3D rays and axes are projected with the frame's
intrinsics.
"""

from __future__ import annotations

from typing import Optional

import cv2
import numpy as np

from ..types import FrameResult, LEFT_IRIS, NUM_MESH, RIGHT_IRIS

AXIS_LENGTH_M = 0.08
GAZE_LENGTH_M = 0.25
_MESH = (160, 160, 160)
_POINTS = (0, 220, 255)
_IRIS = (255, 255, 0)
_GAZE = (255, 64, 64)
_AXES = ((255, 0, 0), (0, 200, 0), (0, 80, 255))  # face x, y, z -> red, green, blue


def _project(points: np.ndarray, frame: FrameResult) -> np.ndarray:
    c = frame.intrinsics
    p = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    z = np.maximum(p[:, 2], 1e-6)
    return np.stack((c.fx * p[:, 0] / z + c.cx, c.fy * p[:, 1] / z + c.cy), axis=-1)


def draw_overlay(image_rgb: np.ndarray, frame: FrameResult,
                 triangles: Optional[np.ndarray] = None) -> np.ndarray:
    """(H, W, 3) uint8 RGB picture of the results on top of ``image_rgb``.

    triangles: (F, 3) mesh topology; when given the mesh is drawn as a wireframe.
    """
    img = np.ascontiguousarray(np.asarray(image_rgb)[..., :3]).copy()
    if img.dtype != np.uint8:
        lo, hi = float(img.min()), float(img.max())
        img = ((img - lo) * (255.0 / max(hi - lo, 1e-12))).astype(np.uint8)
    scale = max(1, int(round(max(img.shape[:2]) / 640)))
    for face in frame.faces:
        lm = face.landmarks_2d[:, :2]
        if triangles is not None:
            tri = np.round(lm[triangles] * 16).astype(np.int32)  # (F, 3, 2) fixed point
            cv2.polylines(img, list(tri), True, _MESH, 1, cv2.LINE_AA, shift=4)
        for p in lm[:NUM_MESH]:
            cv2.circle(img, (int(p[0]), int(p[1])), scale, _POINTS, -1)
        for iris in (RIGHT_IRIS, LEFT_IRIS):
            pts = lm[iris]
            radius = float(np.linalg.norm(pts[1:] - pts[0], axis=-1).mean())
            cv2.circle(img, (int(pts[0, 0]), int(pts[0, 1])), max(1, int(radius)), _IRIS,
                       scale, cv2.LINE_AA)
        pose = face.head_pose
        origin = pose.translation
        ends = origin[None] + AXIS_LENGTH_M * pose.rotation.T  # (3, 3) x, y, z axis tips
        o2, e2 = _project(origin, frame)[0], _project(ends, frame)
        for k in range(3):
            cv2.arrowedLine(img, tuple(int(v) for v in o2), tuple(int(v) for v in e2[k]),
                            _AXES[k], 2 * scale, cv2.LINE_AA, tipLength=0.15)
        for ray in (face.gaze.left, face.gaze.right):
            if ray.confidence <= 0.0:
                continue
            a, b = _project(np.stack((ray.origin, ray.origin + GAZE_LENGTH_M * ray.direction)),
                            frame)
            cv2.arrowedLine(img, tuple(int(v) for v in a), tuple(int(v) for v in b), _GAZE,
                            2 * scale, cv2.LINE_AA, tipLength=0.1)
        x0, y0, x1, y1 = (int(v) for v in face.box)
        cv2.rectangle(img, (x0, y0), (x1, y1), (0, 255, 0), scale)
        label = (f"id {face.track_id}  yaw {pose.yaw:+.0f} pitch {pose.pitch:+.0f} "
                 f"roll {pose.roll:+.0f}")
        cv2.putText(img, label, (x0, max(12 * scale, y0 - 6)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.45 * scale, (0, 255, 0), scale, cv2.LINE_AA)
    return img
