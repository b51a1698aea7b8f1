"""Frozen result types of the engine, with shapes, units and frames.

Frames and conventions
----------------------
* **Image**: pixels, origin at the top-left corner of the top-left pixel, x right, y down.
* **Camera**: the optical frame of REP-103 (x right, y down, z forward), metres. Every 3D
  quantity of a :class:`FaceResult` is expressed in this frame, which is the ``frame_id`` of the
  source image header.
* **Face** (REP-155 style): origin between the eyes, x out of the face (the direction the face
  looks), y to the subject's left, z up. A face looking straight into the camera has
  ``R = FRONTAL_R`` (face x = camera -z, face y = camera +x, face z = camera -y).
* **Angles** (degrees) of the head and of gaze are taken relative to "looking at the camera":
  the line of sight from the face (or eye) to the camera origin, with the camera's up as up.
  All zero means the head faces the camera, or the eyes look into it (eye contact), wherever
  the face is in the image. yaw > 0 when the subject turns to their left (towards image right),
  pitch > 0 when looking down, roll > 0 when the head turns counter-clockwise in the image.
  Mirroring the image flips the sign of yaw and roll; rotating the image counter-clockwise by
  ``a`` degrees adds about ``a`` to roll.
* **Left/right** always mean the subject's own left and right (MediaPipe's convention):
  the subject's left eye appears on the image's right for an unmirrored camera.

Landmark layout (478 points): 0..467 the MediaPipe face mesh, 468..472 the subject's right
iris (centre first, then 4 contour points), 473..477 the subject's left iris (same order).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

import numpy as np

NUM_MESH = 468
NUM_LANDMARKS = 478
RIGHT_IRIS = slice(468, 473)
LEFT_IRIS = slice(473, 478)
RIGHT_IRIS_CENTER = 468
LEFT_IRIS_CENTER = 473

#: Rotation (camera_R_face) of a face that looks straight into the camera; columns are the face
#: axes x (out of the face), y (subject's left), z (up) expressed in the camera optical frame.
FRONTAL_R = np.array([[0.0, 1.0, 0.0],
                      [0.0, 0.0, -1.0],
                      [-1.0, 0.0, 0.0]])


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics of the (rectified) image, in pixels.

    ``assumed`` is True when they were not measured (no or invalid camera_info) but derived from
    a default horizontal field of view; metric outputs are then only as good as that guess.
    """

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    assumed: bool = False

    @classmethod
    def from_fov(cls, width: int, height: int, hfov_deg: float = 60.0) -> "CameraIntrinsics":
        """Intrinsics of an ideal camera with horizontal field of view ``hfov_deg`` (assumed)."""
        f = 0.5 * width / np.tan(np.radians(hfov_deg) / 2.0)
        return cls(f, f, width / 2.0, height / 2.0, int(width), int(height), assumed=True)

    @property
    def K(self) -> np.ndarray:
        """(3, 3) camera matrix."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class Detection:
    """One face found by the detector, in image pixels.

    box: (4,) x_min, y_min, x_max, y_max. keypoints: (6, 2) x, y of the subject's right eye,
    left eye, nose tip, mouth centre, right ear tragion, left ear tragion (MediaPipe order).
    """

    box: np.ndarray
    score: float
    keypoints: np.ndarray


@dataclass(frozen=True)
class Roi:
    """A rotated square crop of the image: centre (px), side (px), rotation (rad, image plane).

    The crop's x axis is the image x axis rotated by ``rotation`` (counter-clockwise in the image
    is negative, as in MediaPipe's ``NormalizedRect``).
    """

    center: Tuple[float, float]
    size: float
    rotation: float


@dataclass(frozen=True)
class HeadPose:
    """6-DoF head pose: the face frame (see module docstring) in the camera optical frame.

    rotation: (3, 3) camera_R_face. translation: (3,) metres, the point between the eyes.
    yaw, pitch, roll: degrees relative to facing the camera (see the module docstring).
    confidence: [0, 1], the face flag times the quality of the fit to the canonical face.
    quaternion: (4,) the rotation as x, y, z, w when already computed (the engine converts all
    faces of a frame at once), else None: :attr:`quaternion_xyzw` computes it.
    """

    rotation: np.ndarray
    translation: np.ndarray
    yaw: float
    pitch: float
    roll: float
    confidence: float
    quaternion: Optional[np.ndarray] = field(default=None, repr=False, compare=False)

    @property
    def quaternion_xyzw(self) -> np.ndarray:
        """(4,) the rotation as a unit quaternion x, y, z, w (geometry_msgs order)."""
        if self.quaternion is not None:
            return self.quaternion
        from scipy.spatial.transform import Rotation

        return Rotation.from_matrix(self.rotation).as_quat()


@dataclass(frozen=True)
class GazeRay:
    """A gaze ray in the camera optical frame.

    origin: (3,) metres (eyeball centre; for the combined ray the midpoint of the two).
    direction: (3,) unit vector. yaw, pitch: degrees relative to looking into the camera from
    the origin (zero = eye contact; signs as :class:`HeadPose`). confidence: [0, 1], low for a
    closed, occluded or turned-away eye.
    """

    origin: np.ndarray
    direction: np.ndarray
    yaw: float
    pitch: float
    confidence: float


@dataclass(frozen=True)
class Gaze:
    """Per-eye and combined gaze rays (subject's left and right)."""

    left: GazeRay
    right: GazeRay
    combined: GazeRay


@dataclass(frozen=True)
class Expression:
    """Named expression coefficients, each in [0, 1] (0 neutral, 1 fully expressed).

    names: (K,) strings, see ``face3d_ros.core.pipeline.expression.EXPRESSION_NAMES``; values:
    (K,).
    """

    names: Tuple[str, ...]
    values: np.ndarray

    def as_dict(self) -> Dict[str, float]:
        """Name -> value."""
        return {n: float(v) for n, v in zip(self.names, self.values)}


@dataclass(frozen=True)
class FaceResult:
    """Everything the engine knows about one face in one image.

    track_id: persistent id from the tracker, -1 when the face was not tracked.
    score: detection (or tracking) confidence in [0, 1]; presence: mesh network face flag [0, 1].
    box: (4,) x_min, y_min, x_max, y_max in pixels (from the landmarks).
    landmarks_2d: (478, 3) x, y in pixels and relative depth z in pixels (same scale as x; smaller
        is nearer the camera, zero near the face centre), layout in the module docstring.
    landmarks_3d: (478, 3) metres in the camera optical frame; mesh vertices are the first 468.
        Each point on its own camera ray (true perspective, for the intrinsics given or
        assumed). Identities compare the face's shape in the image's own proportions instead
        (``core.people.enrollment.face_frame_points``), which no focal length changes.
    roi: the crop the mesh network saw.
    """

    track_id: int
    score: float
    presence: float
    box: np.ndarray
    landmarks_2d: np.ndarray
    landmarks_3d: np.ndarray
    head_pose: HeadPose
    gaze: Gaze
    expression: Expression
    roi: Roi

    @property
    def mesh_vertices(self) -> np.ndarray:
        """(468, 3) metres, camera optical frame; triangles in ``core.pipeline.topology``."""
        return self.landmarks_3d[:NUM_MESH]


@dataclass(frozen=True)
class FrameResult:
    """All faces of one image.

    image_size: (width, height) px. intrinsics: those used for the metric outputs.
    timings_ms: stage name -> milliseconds spent on this call (shared by a batch); "detect"
        includes the tiles.
    detector_ran: the detector scanned the whole image on this frame.
    detector_tiles: how many tiles the detector scanned on this frame (``min_face_px``).
    faces_dropped: faces found beyond ``max_faces`` on this frame and not processed (lowest
        detector scores); 0 when nothing was cut.
    """

    faces: Tuple[FaceResult, ...]
    image_size: Tuple[int, int]
    intrinsics: CameraIntrinsics
    timings_ms: Dict[str, float] = field(default_factory=dict)
    detector_ran: bool = True
    stamp: Optional[float] = None
    detector_tiles: int = 0
    faces_dropped: int = 0
