"""The canonical face: a mean, left/right-symmetric, metric face in the face frame.

The engine fits it to every observed face (head pose) and uses it for the eyeball centres
(gaze), the reference of the expression measures (with its expression neutral) and the UV
layout of the mesh.

Its *shape* is built from the mesh network's own output on real frontal portraits (shipped in
registry packages) by :func:`build_canonical`. Its *frame* and its *eyeball centres* come from
renders of real head models with exact truth (``tools.head_render``): the pitch of the frame is
the one that makes the pose fit read the heads' true poses (:func:`frame_pitch`), and the
eyeball centres are the heads' true centres of eye rotation carried into the canonical frame
by the fit (:func:`eyeballs_from_truth`). The same renders measure how far the landmark
networks move the rest of the face with the eyes (the gaze follow, :func:`follow_from_renders`,
used by ``geometry.eye_fit``), and how the mesh network deforms a face with the direction it
is seen from (the pose deformation, :func:`pose_deformation_from_renders`, used by
``geometry.solve_faces`` for the head pose). The result is stored in
``core/pipeline/data/canonical_face.npz``; ``python -m face3d_ros.tools.make_canonical`` rebuilds
it
and a test checks the stored file against a rebuild.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from .expression import EYE_MEASURES, MEASURE_NAMES, neutral_measures
from .geometry import (EYEBALL_TO_IRIS_M, FOLLOW_SOURCE, NUM_VIEW_FEATURES, anatomical_frame,
                       iris_diameter_px, lift_to_metric, pose_weights, view_direction,
                       view_features, weighted_umeyama)
from ..types import LEFT_IRIS_CENTER, NUM_LANDMARKS, RIGHT_IRIS_CENTER

DATA_FILE = Path(__file__).resolve().parent / "data" / "canonical_face.npz"


@dataclass(frozen=True)
class CanonicalFace:
    """vertices: (478, 3) metres in the face frame (x out of the face, y left, z up, origin
    between the eyes). mirror: (478,) index of each point's mirror image (left <-> right).
    eyeball_centres: (2, 3) metres, subject's right then left eye. uv: (478, 2) in [0, 1],
    the frontal orthographic projection (OBJ convention: v up). gaze_follow: (478, 2, 3) each
    landmark's x, y px and relative depth px per x, y px of its iris's displacement from
    straight ahead (``geometry.eye_fit``); zeros until measured. pose_deformation:
    (NUM_VIEW_FEATURES, 478, 3) metres, the mesh network's deformation of the face per feature
    of the view direction (``geometry.deformed_canonical``); zeros until measured.
    expression_neutral: (len(expression.MEASURE_NAMES),) the expression measures of a neutral
    face (:func:`expression_neutral_from`); empty (the default): those of ``vertices``."""

    vertices: np.ndarray
    mirror: np.ndarray
    eyeball_centres: np.ndarray
    uv: np.ndarray
    gaze_follow: np.ndarray = field(
        default_factory=lambda: np.zeros((NUM_LANDMARKS, 2, 3), np.float32))
    pose_deformation: np.ndarray = field(
        default_factory=lambda: np.zeros((NUM_VIEW_FEATURES, NUM_LANDMARKS, 3), np.float32))
    expression_neutral: np.ndarray = field(default_factory=lambda: np.empty(0))

    def __post_init__(self) -> None:
        if self.expression_neutral.size == 0:
            object.__setattr__(self, "expression_neutral",
                               neutral_measures(self.vertices.astype(np.float64)[None]))


def expression_neutral_from(vertices: np.ndarray, neutral_faces: np.ndarray) -> np.ndarray:
    """(len(MEASURE_NAMES),) the expression neutral (``expression``): the measures of the eyes
    (``EYE_MEASURES``) of the canonical ``vertices`` (478, 3), those of the mouth and brows of
    ``neutral_faces`` (N, 478, 3) in the canonical face's frame, each made left/right
    symmetric."""
    eyes = neutral_measures(np.asarray(vertices, np.float64)[None])
    rest = neutral_measures(neutral_faces)
    return np.where([n in EYE_MEASURES for n in MEASURE_NAMES], eyes, rest)


def _uv_from_vertices(vertices: np.ndarray, margin: float = 0.02) -> np.ndarray:
    yz = vertices[:, 1:3]
    lo, hi = yz.min(axis=0), yz.max(axis=0)
    span = float((hi - lo).max())
    centre = 0.5 * (lo + hi)
    uv = (yz - centre) / span * (1.0 - 2.0 * margin) + 0.5
    return uv.astype(np.float32)


def _eyeballs(vertices: np.ndarray) -> np.ndarray:
    """Eyeball centres of a canonical face without measured ones: behind the irises."""
    back = np.array([EYEBALL_TO_IRIS_M, 0.0, 0.0])
    return np.stack((vertices[RIGHT_IRIS_CENTER] - back, vertices[LEFT_IRIS_CENTER] - back))


def pitch_rotation(degrees: float) -> np.ndarray:
    """(3, 3) rotation about the face's y axis (to the subject's left) by ``degrees``."""
    a = np.radians(degrees)
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def frame_pitch(fitted: np.ndarray, true: np.ndarray) -> float:
    """Pitch (degrees) by which to turn a canonical face so that the pose fit reads ``true``.

    fitted, true: (K, 3, 3) camera_R_face of K renders: as fitted with the canonical face, and
    the truth. The fit reads ``true_k`` after the canonical turns by C with C = true_k^T
    fitted_k; C is the chordal mean over the renders restricted to a rotation about the face's
    y axis (a left/right-symmetric face can only be off in pitch).
    """
    m = np.einsum("kji,kjl->il", np.asarray(true, np.float64), np.asarray(fitted, np.float64))
    return float(np.degrees(np.arctan2(m[0, 2] - m[2, 0], m[0, 0] + m[2, 2])))


def eyeballs_from_truth(centres: np.ndarray, rotation: np.ndarray, translation: np.ndarray,
                        scale: np.ndarray, view: np.ndarray | None = None,
                        depth_only: np.ndarray | None = None) -> np.ndarray:
    """(2, 3) symmetric canonical eyeball centres (right, left; metres, face frame).

    centres: (K, 2, 3) true centres of eye rotation of K renders, in the frame of the fit;
    rotation (K, 3, 3), translation (K, 3), scale (K,): the fit of the canonical face to each
    render (``geometry.eye_fit``). Each centre is carried into the canonical frame by least
    squares over the renders, then averaged with the mirror image of the other eye's.

    view: (K, 3) unit rays to the faces; with it only the components across the ray count
    (the gaze depends only on where the centre is seen; seen from the front its depth does
    not show). depth_only: (2, 3) centres whose y and z are kept, only x (the depth along the
    face's x axis, measured on turned heads) being solved.
    """
    rot = np.asarray(rotation, np.float64)
    s = np.asarray(scale, np.float64)[:, None, None]
    proj = np.broadcast_to(np.eye(3), rot.shape).copy()
    if view is not None:
        v = np.asarray(view, np.float64)
        proj -= v[:, :, None] * v[:, None, :]
    a = proj @ (s * rot)  # (K, 3, 3)
    out = []
    for e in range(2):
        b = np.einsum("kij,kj->ki", proj, np.asarray(centres, np.float64)[:, e]
                      - np.asarray(translation, np.float64))
        if depth_only is None:
            out.append(np.linalg.lstsq(a.reshape(-1, 3), b.reshape(-1), rcond=None)[0])
        else:
            keep = np.asarray(depth_only, np.float64)[e]
            b = b - a[:, :, 1:] @ keep[1:]
            x = np.linalg.lstsq(a[:, :, :1].reshape(-1, 1), b.reshape(-1), rcond=None)[0]
            out.append(np.concatenate((x, keep[1:])))
    mean = np.array(out)
    flip = np.array([1.0, -1.0, 1.0])
    return 0.5 * (mean + (mean * flip)[::-1])


def follow_from_renders(landmarks: np.ndarray, mirror: np.ndarray) -> np.ndarray:
    """(478, 2, 3) the landmark networks' follow of the eyes (``geometry.eye_fit``), left/right
    symmetric.

    landmarks: (K, 478, 3) px of K renders of one head in one pose with its eyes turned by
    different angles, the first looking straight ahead; its skin must not move with the eyes.
    Each landmark's displacement from the first render is regressed on the displacement of its
    iris (``geometry.FOLLOW_SOURCE``: both irises' mean, or its own eye's), then averaged with
    its mirror point's mirrored coefficients (``mirror``: (478,) permutation).
    """
    lm = np.asarray(landmarks, np.float64)
    moved = lm - lm[:1]  # (K, 478, 3)
    iris = moved[:, [RIGHT_IRIS_CENTER, LEFT_IRIS_CENTER], :2]  # (K, 2, 2)
    inputs = (iris.mean(1), iris[:, 0], iris[:, 1])
    source = FOLLOW_SOURCE
    follow = np.zeros((NUM_LANDMARKS, 2, 3))
    for src, x in enumerate(inputs):
        idx = np.where(source == src)[0]
        follow[idx] = np.einsum("kn,npc->pkc", np.linalg.pinv(x), moved[:, idx])
    follow[RIGHT_IRIS_CENTER:] = 0.0  # the irises are what is read, not corrected
    flip_in, flip_out = np.array([-1.0, 1.0]), np.array([-1.0, 1.0, 1.0])
    mirrored = follow[mirror] * flip_in[None, :, None] * flip_out[None, None, :]
    return (0.5 * (follow + mirrored)).astype(np.float32)


def pose_deformation_from_renders(face: CanonicalFace, landmarks: np.ndarray,
                                  intrinsics: np.ndarray, rotations: np.ndarray,
                                  ridge: float = 1e-3) -> np.ndarray:
    """(NUM_VIEW_FEATURES, 478, 3) the mesh network's deformation of a face with the view,
    left/right symmetric (``geometry.deformed_canonical``).

    landmarks: (K, 478, 3) px of K renders of real heads with known camera_R_face
    ``rotations`` (K, 3, 3) and intrinsics (K, 4) fx, fy, cx, cy. Each render's landmarks are
    lifted (``geometry.lift_to_metric``), fitted with ``face`` at its true rotation (scale and
    translation only) and taken into the face frame; what is left over the canonical face
    (metres at the canonical's size) is regressed over the renders on the features
    (``geometry.view_features``) of the view that the rigid pose fit reads there (what the
    pose solve has at hand), with the mirror image of every render added. ``ridge`` keeps the
    regression's normal matrix well conditioned (relative to the number of renders).
    """
    lm = np.asarray(landmarks, np.float64)
    k = np.asarray(intrinsics, np.float64)
    truth = np.asarray(rotations, np.float64)
    can = face.vertices.astype(np.float64)
    w = pose_weights()
    unit = lift_to_metric(lm, k, np.ones(len(lm)))
    rot, t, _, _ = weighted_umeyama(can, unit, w)  # the rigid fit's view
    wn = (w / w.sum())[None, :, None]
    turned = can[None] @ truth.transpose(0, 2, 1)  # (K, 478, 3)
    mu_c, mu_u = (wn * turned).sum(1), (wn * unit).sum(1)
    scale = ((wn * (unit - mu_u[:, None]) * (turned - mu_c[:, None])).sum((1, 2))
             / (wn * (turned - mu_c[:, None]) ** 2).sum((1, 2)))
    shift = mu_u - scale[:, None] * mu_c
    left = ((unit - shift[:, None]) @ truth) / scale[:, None, None] - can[None]  # (K, 478, 3)
    view = view_direction(rot, t)
    flip = np.array([1.0, -1.0, 1.0])
    e = np.concatenate((left, left[:, np.asarray(face.mirror)] * flip))
    phi = np.concatenate((view_features(view), view_features(view * flip)))
    normal = phi.T @ phi + ridge * len(phi) * np.eye(phi.shape[1])
    d = np.linalg.solve(normal, phi.T @ e.reshape(len(e), -1)).reshape(-1, NUM_LANDMARKS, 3)
    d[:, RIGHT_IRIS_CENTER:] = 0.0  # the irises are not in the pose fit
    return d.astype(np.float32)


def to_face_frame(landmarks: np.ndarray, iris_diameter_m: float = 0.0117) -> np.ndarray:
    """(478, 3) metres in the anatomical face frame of one face's image landmarks (478, 3) px."""
    lm = np.asarray(landmarks, dtype=np.float64)[None]
    rot, origin = anatomical_frame(lm)
    local = (lm - origin[:, None]) @ rot  # (1, 478, 3) px in the face frame
    local = local * (iris_diameter_m / iris_diameter_px(lm))[:, None, None]
    return local[0]


def mirror_permutation(vertices: np.ndarray) -> np.ndarray:
    """(478,) the point each point becomes under a left/right reflection (y -> -y), found as the
    optimal one-to-one assignment (scipy) between the shape and its reflection."""
    from scipy.optimize import linear_sum_assignment

    reflected = vertices * np.array([1.0, -1.0, 1.0])
    cost = np.linalg.norm(reflected[:, None] - vertices[None], axis=-1)
    rows, cols = linear_sum_assignment(cost)
    perm = np.empty(len(vertices), dtype=np.int64)
    perm[rows] = cols
    return perm


def build_canonical(landmark_sets: Sequence[np.ndarray],
                    iris_diameter_m: float = 0.0117) -> CanonicalFace:
    """Mean symmetric metric face from image landmarks (each (478, 3) px) of frontal faces.

    Each face is expressed in its anatomical frame and scaled by its iris; the mean is made
    left/right symmetric by averaging it with its mirror image. Frame and eyeball centres are
    the anatomical ones until :func:`with_frame` sets them from truth.
    """
    if not landmark_sets:
        raise ValueError("build_canonical needs at least one set of landmarks")
    local = np.mean([to_face_frame(lm, iris_diameter_m) for lm in landmark_sets], axis=0)
    perm = mirror_permutation(local)
    sym = 0.5 * (local + (local * np.array([1.0, -1.0, 1.0]))[perm])
    return CanonicalFace(vertices=sym.astype(np.float32), mirror=perm,
                         eyeball_centres=_eyeballs(sym).astype(np.float32),
                         uv=_uv_from_vertices(sym))


def with_frame(face: CanonicalFace, pitch_deg: float = 0.0,
               eyeball_centres: np.ndarray | None = None,
               gaze_follow: np.ndarray | None = None,
               pose_deformation: np.ndarray | None = None,
               expression_neutral: np.ndarray | None = None) -> CanonicalFace:
    """``face`` turned by ``pitch_deg`` about its y axis (see :func:`frame_pitch`), with the
    given (2, 3) eyeball centres in the turned frame (else the anatomical ones), the given
    gaze follow (else ``face``'s; it is in image terms and does not turn) and the given pose
    deformation in the turned frame (else ``face``'s, measured in the frame it is given in) and
    the given expression neutral (else that of the turned vertices)."""
    v = (face.vertices.astype(np.float64) @ pitch_rotation(pitch_deg).T).astype(np.float32)
    eyes = _eyeballs(v) if eyeball_centres is None else np.asarray(eyeball_centres)
    follow = face.gaze_follow if gaze_follow is None else np.asarray(gaze_follow, np.float32)
    deform = (face.pose_deformation if pose_deformation is None
              else np.asarray(pose_deformation, np.float32))
    return CanonicalFace(vertices=v, mirror=face.mirror, eyeball_centres=eyes.astype(np.float32),
                         uv=_uv_from_vertices(v), gaze_follow=follow, pose_deformation=deform,
                         expression_neutral=(np.empty(0) if expression_neutral is None
                                             else np.asarray(expression_neutral, np.float64)))


def save_canonical(face: CanonicalFace, path: Path = DATA_FILE, source: str = "") -> None:
    """Write ``face`` to an .npz file (vertices, mirror, eyeball centres, gaze follow, pose
    deformation, expression neutral with its measure names; UVs are derived)."""
    np.savez(path, vertices=face.vertices, mirror=face.mirror,
             eyeball_centres=face.eyeball_centres, gaze_follow=face.gaze_follow,
             pose_deformation=face.pose_deformation,
             expression_neutral=face.expression_neutral,
             expression_measures=np.array(MEASURE_NAMES), source=np.array(source))


@lru_cache(maxsize=4)
def load_canonical(path: Path = DATA_FILE) -> CanonicalFace:
    """The stored canonical face (cached)."""
    if not Path(path).is_file():
        raise FileNotFoundError(
            f"canonical face not found at {path}; rebuild it with "
            "'python -m face3d_ros.tools.make_canonical' or reinstall face3d_ros")
    with np.load(path) as data:
        vertices = data["vertices"].astype(np.float32)
        mirror = data["mirror"].astype(np.int64)
        eyes = (data["eyeball_centres"].astype(np.float32) if "eyeball_centres" in data.files
                else _eyeballs(vertices).astype(np.float32))
        follow = (data["gaze_follow"].astype(np.float32) if "gaze_follow" in data.files
                  else np.zeros((NUM_LANDMARKS, 2, 3), np.float32))
        deform = (data["pose_deformation"].astype(np.float32)
                  if "pose_deformation" in data.files
                  else np.zeros((NUM_VIEW_FEATURES, NUM_LANDMARKS, 3), np.float32))
        neutral = np.empty(0)
        if "expression_neutral" in data.files:
            neutral = data["expression_neutral"].astype(np.float64)
            if tuple(str(n) for n in data["expression_measures"]) != MEASURE_NAMES:
                # Measures of another version: NaN, so that expression coefficients refuse to
                # run and name the rebuild, while everything else (make_canonical's rebuild
                # included) still loads the face.
                neutral = np.full(len(MEASURE_NAMES), np.nan)
    if vertices.shape != (NUM_LANDMARKS, 3) or mirror.shape != (NUM_LANDMARKS,):
        raise ValueError(f"{path}: expected vertices (478, 3) and mirror (478,), got "
                         f"{vertices.shape} and {mirror.shape}")
    if follow.shape != (NUM_LANDMARKS, 2, 3):
        raise ValueError(f"{path}: expected gaze_follow (478, 2, 3), got {follow.shape}")
    if deform.shape != (NUM_VIEW_FEATURES, NUM_LANDMARKS, 3):
        raise ValueError(f"{path}: expected pose_deformation ({NUM_VIEW_FEATURES}, 478, 3), got "
                         f"{deform.shape}")
    return CanonicalFace(vertices=vertices, mirror=mirror, eyeball_centres=eyes,
                         uv=_uv_from_vertices(vertices), gaze_follow=follow,
                         pose_deformation=deform, expression_neutral=neutral)
