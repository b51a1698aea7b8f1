"""ROS4HRI (REP-155) and TF content of one face, as plain numbers: no rclpy, no messages.

The publishing layer (``hri_bridge``) copies these into hri_msgs / tf2_msgs messages; every
rule of the mapping lives here and is tested with plain pytest.

- Face ids: ``f`` + the track id in at least five digits (``f00003``): REP-155 ids are
  strings that start with a letter. Only confirmed tracks (track id >= 0) have one.
- ROI and landmarks: normalised image coordinates in [0, 1] from the top-left corner.
- 70 landmarks: the iBUG-68 points (``core.pipeline.geometry.IBUG68_INDICES``; RIGHT_* is the
  person's right) then RIGHT_PUPIL (68) and LEFT_PUPIL (69), the iris centres.
- Frames: ``face_<id>`` in the image's optical frame, origin between the eyes, x out of the
  face, y to the person's left, z up (face3d's head pose is already in this convention);
  ``gaze_<id>`` a child of ``face_<id>`` with the same origin, optical convention: z along
  the combined gaze ray, x to the person's right, y down (where the gaze is unknown, z is
  the face's x axis, as hri_face_detect publishes it).
- FACS: face3d's expression coefficients that correspond to an action unit, by the usual
  blendshape-to-FACS correspondence; the categorical expression only by the EMFACS
  prototypes these units allow (happiness, surprise), else neutral when no unit is active.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Mapping, Optional, Sequence, Tuple

import cv2
import numpy as np

from face3d_ros.core.pipeline.geometry import IBUG68_INDICES, LEFT_IRIS_CENTER, RIGHT_IRIS_CENTER

#: Landmark count of hri_msgs/FacialLandmarks: iBUG-68 plus the two pupils.
NUM_HRI_LANDMARKS = 70
#: Mesh (or iris) index of each of the 70 REP-155 landmarks.
HRI_LANDMARK_INDICES: Tuple[int, ...] = (
    tuple(IBUG68_INDICES) + (RIGHT_IRIS_CENTER, LEFT_IRIS_CENTER))
#: Length of hri_msgs/FacialActionUnits' intensity and confidence arrays (index = AU code).
NUM_FACS = 99
#: Side of the ``cropped`` and ``aligned`` face images, pixels (REP-155's default).
CROP_SIZE = 128

#: FACS action unit -> face3d expression coefficients whose mean is its intensity. The
#: correspondence of ARKit-style blendshapes (whose names face3d's follow) with FACS:
#: AU1 inner brow raiser (brow_up), AU4 brow lowerer, AU5 upper lid raiser (eye_wide), AU6
#: cheek raiser (cheek_squint), AU12 lip corner puller (mouth_smile), AU18 lip pucker, AU22
#: lip funneler, AU26 jaw drop (jaw_open), AU45 blink (eye_blink). Units face3d does not
#: measure stay 0 with confidence 0.
FACS_FROM_EXPRESSION: Dict[int, Tuple[str, ...]] = {
    1: ("brow_up",),
    4: ("brow_down_left", "brow_down_right"),
    5: ("eye_wide_left", "eye_wide_right"),
    6: ("cheek_squint_left", "cheek_squint_right"),
    12: ("mouth_smile_left", "mouth_smile_right"),
    18: ("mouth_pucker",),
    22: ("mouth_funnel",),
    26: ("jaw_open",),
    45: ("eye_blink_left", "eye_blink_right"),
}

#: FACS intensity levels A..E on face3d's [0, 1] scale (lower bounds): B (slight) and C
#: (marked) are the levels the EMFACS prototypes below name.
FACS_B = 0.4
FACS_C = 0.6
#: Below this every mapped unit counts as inactive (a neutral face).
FACS_ACTIVE = 0.2


def face_id(track_id: int) -> Optional[str]:
    """The REP-155 face id of a confirmed track (``f00003``), None for an untracked face."""
    track_id = int(track_id)
    return None if track_id < 0 else f"f{track_id:05d}"


def normalized_roi(box: Sequence[float], width: int, height: int) -> Tuple[float, ...]:
    """(xmin, ymin, xmax, ymax) of a pixel box, normalised to [0, 1] and clipped to the image."""
    x0, y0, x1, y1 = (float(v) for v in box[:4])
    w, h = float(width), float(height)
    if w <= 0 or h <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    clip = lambda v: min(max(v, 0.0), 1.0)  # noqa: E731
    return clip(x0 / w), clip(y0 / h), clip(x1 / w), clip(y1 / h)


def landmarks_70(landmarks_2d: np.ndarray, width: int, height: int,
                 confidence: float) -> np.ndarray:
    """(70, 3) float32 x, y normalised to [0, 1] (clipped) and c, in hri_msgs/FacialLandmarks
    order, from face3d's (478, 2+) pixel landmarks."""
    pts = np.asarray(landmarks_2d, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[0] < 478 or pts.shape[1] < 2:
        raise ValueError(f"landmarks_2d must be (478, 2+) pixels, got {pts.shape}")
    out = np.empty((NUM_HRI_LANDMARKS, 3), np.float32)
    sel = pts[list(HRI_LANDMARK_INDICES), :2]  # (70, 2) px
    out[:, 0] = np.clip(sel[:, 0] / float(width), 0.0, 1.0)
    out[:, 1] = np.clip(sel[:, 1] / float(height), 0.0, 1.0)
    out[:, 2] = float(np.clip(confidence, 0.0, 1.0))
    return out


def quaternion_from_matrix(r: np.ndarray) -> np.ndarray:
    """(4,) unit quaternion x, y, z, w of a (3, 3) rotation matrix (w >= 0)."""
    m = np.asarray(r, dtype=np.float64)
    tr = m[0, 0] + m[1, 1] + m[2, 2]
    if tr > 0.0:
        s = 2.0 * np.sqrt(tr + 1.0)
        q = [(m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, 0.25 * s]
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = [0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s, (m[2, 1] - m[1, 2]) / s]
    elif m[1, 1] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = [(m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s, (m[0, 2] - m[2, 0]) / s]
    else:
        s = 2.0 * np.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = [(m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s, (m[1, 0] - m[0, 1]) / s]
    q = np.asarray(q)
    q /= np.linalg.norm(q)
    return -q if q[3] < 0 else q


def _orthonormal(r: np.ndarray) -> np.ndarray:
    """The rotation nearest to ``r`` (SVD), so that a slightly non-orthogonal fit is a valid
    TF rotation."""
    u, _, vt = np.linalg.svd(np.asarray(r, dtype=np.float64))
    out = u @ vt
    if np.linalg.det(out) < 0:
        u[:, -1] = -u[:, -1]
        out = u @ vt
    return out


@dataclass(frozen=True)
class Transform:
    """A TF transform: ``parent`` -> ``child``; translation (3,) metres, rotation (4,) x, y, z, w
    (a point in the child frame p maps to R p + t in the parent frame)."""

    parent: str
    child: str
    translation: np.ndarray
    rotation: np.ndarray


def gaze_rotation(face_rotation: np.ndarray, direction: Optional[Sequence[float]]) -> np.ndarray:
    """(3, 3) parent_R_gaze of the ``gaze_<id>`` frame in the frame where ``face_rotation``
    (parent_R_face) and ``direction`` are given: z along the gaze, x to the person's right
    (perpendicular to the face's up axis), y down. A missing or degenerate direction (zero,
    not finite, or along the face's up axis) takes the face's x axis."""
    rf = np.asarray(face_rotation, dtype=np.float64)
    up = rf[:, 2]
    z = None if direction is None else np.asarray(direction, dtype=np.float64)
    if z is not None:
        n = np.linalg.norm(z)
        z = z / n if np.isfinite(n) and n > 1e-9 else None
    if z is None or np.linalg.norm(np.cross(z, up)) < 1e-6:
        z = rf[:, 0]
    y = -(up - np.dot(up, z) * z)  # down, perpendicular to the gaze
    y /= np.linalg.norm(y)
    x = np.cross(y, z)
    return np.stack([x, y, z], axis=1)


def face_transforms(track_id: int, rotation: np.ndarray, translation: Sequence[float],
                    gaze_direction: Optional[Sequence[float]], gaze_confidence: float,
                    camera_frame: str) -> Tuple[Transform, Transform]:
    """The ``face_<id>`` transform (parent: ``camera_frame``, the image's frame) and the
    ``gaze_<id>`` transform (parent: ``face_<id>``, zero translation) of one confirmed face.

    rotation: (3, 3) camera_R_face (face3d's head pose); translation: (3,) metres, the point
    between the eyes. gaze_direction: (3,) the combined gaze ray in the camera frame; used when
    ``gaze_confidence`` > 0, else the gaze follows the head.
    """
    fid = face_id(track_id)
    if fid is None:
        raise ValueError(f"only confirmed faces have frames, got track id {track_id}")
    rf = _orthonormal(rotation)
    t = np.asarray(translation, dtype=np.float64).reshape(3)
    face = Transform(camera_frame, f"face_{fid}", t, quaternion_from_matrix(rf))
    d = gaze_direction if gaze_confidence > 0.0 else None
    r_gaze = gaze_rotation(rf, d)  # camera_R_gaze
    gaze = Transform(face.child, f"gaze_{fid}", np.zeros(3), quaternion_from_matrix(rf.T @ r_gaze))
    return face, gaze


def facs_vector(expression: Mapping[str, float], confidence: float
                ) -> Tuple[np.ndarray, np.ndarray]:
    """(99,) intensities and (99,) confidences indexed by FACS code (hri_msgs/
    FacialActionUnits) from face3d's expression name -> value; see FACS_FROM_EXPRESSION."""
    intensity = np.zeros(NUM_FACS, np.float32)
    conf = np.zeros(NUM_FACS, np.float32)
    c = float(np.clip(confidence, 0.0, 1.0))
    for au, names in FACS_FROM_EXPRESSION.items():
        values = [float(expression[n]) for n in names if n in expression]
        if values:
            intensity[au] = float(np.clip(np.mean(values), 0.0, 1.0))
            conf[au] = c
    return intensity, conf


def categorical_expression(intensity: np.ndarray) -> Tuple[str, float]:
    """(REP-155 expression name, strength in [0, 1]) by the EMFACS prototypes the mapped units
    allow: happiness 6+12 or 12C alone; surprise 5B+26, 1+2+26 or 1+2+5B (AU1 stands for the
    brow raise); neutral when no mapped unit reaches FACS_ACTIVE; otherwise "" (undecided)."""
    au = np.asarray(intensity, dtype=np.float64)
    happy = max(min(au[6], au[12]) if au[6] >= FACS_ACTIVE and au[12] >= FACS_ACTIVE else 0.0,
                au[12] if au[12] >= FACS_C else 0.0)
    pairs = ((5, 26), (1, 26), (1, 5))
    surprised = max((min(au[a], au[b]) for a, b in pairs
                     if au[a] >= FACS_B and au[b] >= FACS_B), default=0.0)
    if happy > 0.0 or surprised > 0.0:
        return ("happy", float(happy)) if happy >= surprised else ("surprised", float(surprised))
    mapped = [au[k] for k in FACS_FROM_EXPRESSION]
    if max(mapped) < FACS_ACTIVE:
        return "neutral", float(1.0 - max(mapped) / FACS_ACTIVE)
    return "", 0.0


def _square(box: Sequence[float]) -> Tuple[float, float, float]:
    x0, y0, x1, y1 = (float(v) for v in box[:4])
    return 0.5 * (x0 + x1), 0.5 * (y0 + y1), max(x1 - x0, y1 - y0, 1.0)


def cropped_face(rgb: np.ndarray, box: Sequence[float], size: int = CROP_SIZE) -> np.ndarray:
    """(size, size, 3) uint8: the face box, its aspect kept (letterboxed with black), scaled to
    ``size``; parts outside the image are black."""
    x0, y0, x1, y1 = (float(v) for v in box[:4])
    w, h = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
    s = size / max(w, h)
    # Image point p -> s * (p - box corner) + the letterbox offset.
    ox, oy = 0.5 * (size - s * w), 0.5 * (size - s * h)
    m = np.array([[s, 0.0, ox - s * x0], [0.0, s, oy - s * y0]], np.float64)
    return cv2.warpAffine(np.ascontiguousarray(rgb), m, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))


def aligned_face(rgb: np.ndarray, box: Sequence[float], landmarks_2d: np.ndarray,
                 size: int = CROP_SIZE) -> np.ndarray:
    """(size, size, 3) uint8: the face rotated about the box centre so that the pupils lie on
    one horizontal line (the person's right eye on the image's left), the square around the
    box scaled to ``size``."""
    pts = np.asarray(landmarks_2d, dtype=np.float64)
    right, left = pts[RIGHT_IRIS_CENTER, :2], pts[LEFT_IRIS_CENTER, :2]
    angle = np.degrees(np.arctan2(left[1] - right[1], left[0] - right[0]))
    cx, cy, side = _square(box)
    m = cv2.getRotationMatrix2D((cx, cy), angle, size / side)
    m[:, 2] += (0.5 * size - cx, 0.5 * size - cy)
    return cv2.warpAffine(np.ascontiguousarray(rgb), m, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
