"""Hand-built :class:`FrameResult` objects for the pure ROS conversion and marker tests.

The faces are the canonical face (``core/pipeline/data/canonical_face.npz``) posed in front of a
pinhole camera with known rotations and translations, so every field has a known value that
the tests can compare against, without running the networks.
"""

from typing import Sequence

import numpy as np
from scipy.spatial.transform import Rotation

from face3d_ros.core.pipeline.canonical import load_canonical
from face3d_ros.core.pipeline.geometry import perspective_points
from face3d_ros.core.pipeline.expression import EXPRESSION_NAMES
from face3d_ros.core.types import (FRONTAL_R, LEFT_IRIS_CENTER, RIGHT_IRIS_CENTER,
                                   CameraIntrinsics, Expression, FaceResult, FrameResult, Gaze,
                                   GazeRay, HeadPose, Roi)

INTRINSICS = CameraIntrinsics(500.0, 505.0, 320.0, 240.0, 640, 480)


def make_face(track_id: int, yaw_deg: float, translation: Sequence[float],
              seed: int = 0) -> FaceResult:
    """A face turned by ``yaw_deg`` at ``translation`` (metres, camera optical frame).

    Its landmarks_3d are what the engine publishes for a face whose shape in the image's own
    proportions is the canonical face: the canonical face posed, taken to true perspective
    (``geometry.perspective_points``), so that ``face_frame_points`` gives the canonical face
    back (identities compare that shape).
    """
    rng = np.random.default_rng(seed)
    rot = Rotation.from_euler("z", yaw_deg, degrees=True).as_matrix()  # about face z (up)
    cam_r_face = FRONTAL_R @ rot
    t = np.asarray(translation, dtype=np.float64)
    verts = load_canonical().vertices  # (478, 3) face frame, metres
    lift = (verts.astype(np.float64) @ cam_r_face.T + t)[None]
    anchor = lift[:, [RIGHT_IRIS_CENTER, LEFT_IRIS_CENTER]].mean(1)
    pts3 = perspective_points(lift, anchor)[0].astype(np.float32)  # (478, 3) camera
    c = INTRINSICS
    px = np.stack([c.fx * pts3[:, 0] / pts3[:, 2] + c.cx,
                   c.fy * pts3[:, 1] / pts3[:, 2] + c.cy,
                   (pts3[:, 2] - t[2]) * c.fx / t[2]], axis=-1).astype(np.float32)

    def ray(offset: float, conf: float) -> GazeRay:
        d = cam_r_face[:, 0] + rng.normal(0.0, 0.05, 3)
        d = d / np.linalg.norm(d)
        o = t + cam_r_face @ np.array([-0.01, offset, 0.0])
        return GazeRay(o, d, float(rng.uniform(-20, 20)), float(rng.uniform(-20, 20)), conf)

    left, right = ray(0.032, 0.9), ray(-0.032, 0.8)
    comb_d = left.direction + right.direction
    combined = GazeRay(0.5 * (left.origin + right.origin), comb_d / np.linalg.norm(comb_d),
                       0.5 * (left.yaw + right.yaw), 0.5 * (left.pitch + right.pitch), 0.85)
    box = np.array([px[:, 0].min(), px[:, 1].min(), px[:, 0].max(), px[:, 1].max()])
    return FaceResult(
        track_id=track_id,
        score=float(rng.uniform(0.6, 1.0)),
        presence=float(rng.uniform(0.6, 1.0)),
        box=box,
        landmarks_2d=px,
        landmarks_3d=pts3,
        head_pose=HeadPose(rotation=cam_r_face, translation=t, yaw=yaw_deg, pitch=0.0,
                           roll=0.0, confidence=0.9),
        gaze=Gaze(left=left, right=right, combined=combined),
        expression=Expression(EXPRESSION_NAMES,
                              rng.uniform(0, 1, len(EXPRESSION_NAMES)).astype(np.float32)),
        roi=Roi(center=(float(box[0] + box[2]) / 2, float(box[1] + box[3]) / 2),
                size=float(box[2] - box[0]), rotation=0.0),
    )


def make_frame(faces: Sequence[FaceResult]) -> FrameResult:
    """A 640x480 frame with ``faces`` and the module's intrinsics."""
    return FrameResult(faces=tuple(faces), image_size=(640, 480), intrinsics=INTRINSICS,
                       timings_ms={"total": 1.0})


def two_face_frame() -> FrameResult:
    """Face id 3 (yaw +20 deg, 0.8 m) and an untracked face (yaw -15 deg, 1.2 m)."""
    return make_frame([make_face(3, 20.0, (-0.15, 0.02, 0.8), seed=1),
                       make_face(-1, -15.0, (0.2, -0.05, 1.2), seed=2)])
