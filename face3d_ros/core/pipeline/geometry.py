"""Metric 3D, head pose and gaze from image landmarks, batched in numpy (float64).

Every function takes a batch of N faces as numpy arrays (host memory: the engine copies a
frame's landmarks off the device once). The work per face is a few hundred small array
operations on 478 points; on the CPU torch spends ~5 us dispatching each, numpy ~1 us, and on
CUDA each would be a kernel launch, so the host is the faster place on both devices.
Conventions (frames, left/right, angle signs) are those of :mod:`face3d_ros.core.types`.

Pipeline for one batch (:func:`solve_faces`):

1. metres per pixel at the eyes: the iris (human iris 11.7 mm) and the face's own size, each
   with a confidence (:func:`scale_confidences`);
2. lift the landmarks to metric 3D in the camera optical frame (weak perspective along the
   ray through the face, the network's relative depth scaled by the same metres per pixel;
   the fits below read this lift, the convention the canonical face was built in);
3. head pose by weighted Procrustes (Umeyama, with scale) of the canonical face onto them,
   then once more with the canonical face deformed the way the mesh network deforms a face
   seen from that direction (:func:`view_features`; measured on renders with exact truth:
   past ~45 deg of yaw it compresses the turn and tilts the face, which a rigid fit reads as
   too little yaw and a roll);
4. gaze per eye: the camera ray through the 2D iris centre intersected with the eyeball sphere.
   The eyeball centres are placed by a second pose fit to the landmarks with the networks'
   measured follow of the eyes removed (:func:`eye_fit`): the mesh network moves the upper face
   and the iris network the eye corners by a fixed fraction of the iris's own motion, which a
   plain fit passes on to the eyeball centres (the gaze is then under-read). Both the centres
   and all the landmarks are then taken from the face's weak perspective to true perspective
   (:func:`perspective_points`: each point on its own camera ray, the published metric 3D);
   the combined gaze weights both eyes by their confidence.

One module (over 400 lines): the lift, the pose fit, the eye fit and the gaze work on the same
frames and batch layout, and :func:`solve_faces` runs them as one pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import numpy as np

from .landmarks import LEFT_EYE_CONTOUR_INDEX, RIGHT_EYE_CONTOUR_INDEX
from ..types import (FRONTAL_R, LEFT_IRIS, LEFT_IRIS_CENTER, NUM_LANDMARKS, NUM_MESH, RIGHT_IRIS,
                     RIGHT_IRIS_CENTER)

# Mesh indices (MediaPipe topology; "right"/"left" are the subject's own).
RIGHT_EYE_OUTER, RIGHT_EYE_INNER = 33, 133
LEFT_EYE_INNER, LEFT_EYE_OUTER = 362, 263
#: Per eye (subject's right, left): the upper and lower eyelid points matched in pairs from the
#: outer corner in (7 each), and the (outer, inner) corners; from the iris network's lid contour
#: (``landmarks.RIGHT_EYE_CONTOUR_INDEX``: 9 lower points from the outer corner, 7 upper).
_EYELIDS = np.array([[c[9:16], c[1:8]] for c in (RIGHT_EYE_CONTOUR_INDEX,
                                                 LEFT_EYE_CONTOUR_INDEX)])  # (2, 2, 7)
_EYE_CORNERS = np.array([[c[0], c[8]] for c in (RIGHT_EYE_CONTOUR_INDEX,
                                                LEFT_EYE_CONTOUR_INDEX)])  # (2, 2)
FOREHEAD, CHIN, NOSE_TIP = 10, 152, 1
#: :func:`eye_openness` of a closed eye: the lid contour of the iris network does not quite
#: meet; on renders of a closed eye with exact truth (facecap, eyeBlink = 1, head yaw 0 and 30)
#: it reads 0.06-0.12.
CLOSED_EYE_OPENNESS = 0.10

#: Landmarks that move little with expression; they dominate the head pose fit.
RIGID_INDICES = (
    10, 338, 297, 332, 109, 67, 103, 151, 9, 8, 168, 6, 197, 195, 5, 4, 1, 33, 133, 362, 263,
    130, 359, 243, 463, 234, 454, 127, 356, 93, 323, 116, 345, 50, 280, 98, 327, 193, 417,
)

#: iBUG 68-point layout (jaw 0-16, brows 17-26, nose 27-35, eyes 36-47, lips 48-67) as mesh
#: indices. The iBUG "left" side of the image is the subject's right side. Checked against
#: iBUG-68 points marked on a real head model (``tools.head_render.IBUG68_FACECAP``): the jaw
#: runs along the face oval from the eye level to the menton (152), the brows follow the
#: brow's centre line, 31/35 the alar base, 60/64 the inner mouth corners. Mirror-symmetric.
IBUG68_INDICES = (
    127, 234, 93, 132, 172, 136, 149, 148, 152, 377, 378, 365, 397, 361, 323, 454, 356,
    70, 63, 105, 52, 66, 296, 282, 334, 293, 300,
    6, 197, 195, 4, 98, 20, 2, 250, 327,
    33, 160, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380,
    61, 39, 37, 0, 267, 269, 291, 405, 314, 17, 84, 181,
    62, 82, 13, 312, 292, 317, 14, 87,
)

#: 5-point layout of face-alignment tools (RetinaFace/InsightFace order, image left to right):
#: subject's right eye (iris centre), left eye, nose tip, right mouth corner, left mouth corner.
FIVE_POINT_INDICES = (RIGHT_IRIS_CENTER, LEFT_IRIS_CENTER, NOSE_TIP, 61, 291)

#: Distance from the eyeball centre to the iris centre (metres): eyeball radius ~12 mm, iris
#: plane ~5.9 mm off axis -> ~10.5 mm.
EYEBALL_TO_IRIS_M = 0.0105

#: Which iris each landmark's follow responds to (see :func:`eye_fit`): 0 both (the mesh
#: network sees both eyes; their mean), 1 the subject's right, 2 the left (the iris network's
#: eye contour points, one crop per eye; irises themselves are not corrected).
FOLLOW_SOURCE = np.zeros(NUM_LANDMARKS, dtype=np.int64)
FOLLOW_SOURCE[list(RIGHT_EYE_CONTOUR_INDEX)] = 1
FOLLOW_SOURCE[list(LEFT_EYE_CONTOUR_INDEX)] = 2
#: Share of the eye corners (33, 133, 362, 263) in the height (face z) of the eyeball centres
#: placed by :func:`eye_fit`, the whole face's fit having the rest. The corners lie at about
#: the height of the eyeball centres and near them, so a misread head pitch moves them less
#: than it moves the whole face's (its points lie 2-8 cm in front of and below the eyes); the
#: whole face averages more points. Re-solving cached facecap renders (eye grid +-25 / +-20)
#: and the two photos of people looking into the lens (astronaut, Grace Hopper), with the
#: eyeball centres calibrated for each choice: half each MAE 3.5 / 7.5 deg at head yaw 0 / 30,
#: photos 13.3 / 2.6 deg; the whole face alone 3.3 / 8.4, photos 19.8 / 1.8; the corners
#: alone 4.9 / 6.9, photos 2.3 / 6.7.
EYE_CORNER_HEIGHT_SHARE = 0.5
_EYE_CORNER_INDICES = [RIGHT_EYE_OUTER, RIGHT_EYE_INNER, LEFT_EYE_INNER, LEFT_EYE_OUTER]
#: Fixed-point iterations of :func:`eye_fit` (the follow's estimate depends on the centres it
#: places; the remaining error shrinks by ~0.3 per iteration).
EYE_FIT_ITERATIONS = 3
#: Number of features of the view direction (:func:`view_features`) that the canonical face's
#: pose deformation (``canonical.CanonicalFace.pose_deformation``) is measured against.
NUM_VIEW_FEATURES = 4


@dataclass(frozen=True)
class FaceGeometry:
    """Batched metric outputs for N faces (float64 numpy arrays).

    points: (N, 478, 3) metres, camera optical frame, each point on its own camera ray (true
    perspective). face_points: (N, 478, 3) the landmarks in the face frame at the canonical
    face's scale, from the weak-perspective lift (:func:`lift_to_metric`) the pose fit reads:
    the convention the canonical face and its expression neutral are measured in (the
    expression measures compare against them), the same proportions whatever the focal
    length (times ``scale``: the face's metric shape as identities compare it).
    rotation: (N, 3, 3) camera_R_face.
    translation: (N, 3) metres (between the eyes). scale: (N,) size of the face relative to the
    canonical face. fit_rmse: (N,) metres, weighted residual of the rigid pose fit (before the
    view deformation is allowed for: it grows with the head's turn, with expression and with
    landmarks that fit no face, as the pose error does).
    eye_origin: (N, 2, 3) eyeball centres (0 = subject's right, 1 = left), metres.
    eye_direction: (N, 2, 3) unit gaze directions. eye_confidence: (N, 2) in [0, 1], the
    product of :func:`eye_open_confidence` and ``eye_visibility`` (N, 2) in [0, 1] (the eye
    turned towards the camera). eye_openness: (N, 2) lid opening / eye width.
    """

    points: np.ndarray
    face_points: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray
    scale: np.ndarray
    fit_rmse: np.ndarray
    eye_origin: np.ndarray
    eye_direction: np.ndarray
    eye_confidence: np.ndarray
    eye_visibility: np.ndarray
    eye_openness: np.ndarray


def _f64(a) -> np.ndarray:
    """``a`` as a float64 numpy array (no copy when it already is one)."""
    return np.asarray(a, dtype=np.float64)


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(...) dot products of ``a`` and ``b`` (..., k) along their last axis.

    As a product with a vector of ones: numpy's reduction over a short last axis costs
    ~9 us on (478, 3) points, the matrix product ~2 us (this module runs several hundred
    such operations per frame)."""
    return (a * b) @ np.ones(a.shape[-1])


def _norm(v: np.ndarray) -> np.ndarray:
    """(...) Euclidean lengths of ``v`` (..., k) along its last axis."""
    return np.sqrt(_dot(v, v))


def _rotate(points: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """(N, P, 3) ``points`` (N, P, 3) or (P, 3) turned by rotations (N, 3, 3): R p per point.

    The transposed rotations are made contiguous first: numpy's stacked matrix product then
    takes its fast path (at 64 faces 46 us against 130 us for the strided view)."""
    return points @ np.ascontiguousarray(rotation.swapaxes(-1, -2))


def _normalize(v: np.ndarray) -> np.ndarray:
    """``v`` (..., k) scaled to unit length along its last axis (zero vectors stay zero)."""
    return v / np.maximum(_norm(v), 1e-12)[..., None]


def iris_diameter_px(landmarks: np.ndarray) -> np.ndarray:
    """(N,) iris diameter in pixels from the 4 contour points of each iris, both eyes averaged.

    Per eye the larger of the two diameters (horizontal, vertical) is taken, since turning the
    head only shortens one of them and closing the lid only the other.
    """
    lm = _f64(landmarks)
    diams = []
    for iris in (RIGHT_IRIS, LEFT_IRIS):
        c = lm[:, iris, :2]  # (N, 5, 2) centre + 4 contour points
        diams.append(np.maximum(_norm(c[:, 1] - c[:, 3]), _norm(c[:, 2] - c[:, 4])))
    return 0.5 * (diams[0] + diams[1])


def ray_rotation(ray: np.ndarray) -> np.ndarray:
    """(N, 3, 3) the smallest rotation taking the camera z axis onto unit rays (N, 3).

    Rodrigues' formula about z x ray, written out: with k = 1 / (1 + z),
    [[1 - k x^2, -k x y, x], [-k x y, 1 - k y^2, y], [-x, -y, z]] (one stack rather than a
    matrix product: this runs several times per face on the CPU)."""
    ray = _f64(ray)
    x, y, z = ray[..., 0], ray[..., 1], ray[..., 2]
    k = 1.0 / (1.0 + z)
    kxy = -k * x * y
    return np.stack((1.0 - k * x * x, kxy, x, kxy, 1.0 - k * y * y, y, -x, -y, z),
                    axis=-1).reshape(ray.shape[:-1] + (3, 3))


def lift_to_metric(landmarks: np.ndarray, intrinsics: np.ndarray,
                   metres_per_px: np.ndarray) -> np.ndarray:
    """Metric 3D in the camera optical frame from image landmarks (weak perspective per face).

    landmarks: (N, P, 3) x, y px and relative depth z px. intrinsics: (N, 4) fx, fy, cx, cy px.
    metres_per_px: (N,) object size of one pixel at the depth of the eyes.
    Returns (N, P, 3) metres. The mesh network sees each face as a near-orthographic view along
    the ray through the face, so the face keeps its shape: pixel offsets from the point between
    the eyes (and relative depths) times ``metres_per_px``, turned from the optical axis onto
    that ray, placed at depth f * metres_per_px.
    """
    landmarks, metres_per_px = _f64(landmarks), _f64(metres_per_px)
    fx, fy, cx, cy = _f64(intrinsics).T  # (N,) each
    f = np.sqrt(fx * fy)
    centre = 0.5 * (landmarks[:, RIGHT_IRIS_CENTER] + landmarks[:, LEFT_IRIS_CENTER])  # (N, 3)
    ray = _normalize(np.stack(((centre[:, 0] - cx) / fx, (centre[:, 1] - cy) / fy,
                               np.ones_like(cx)), axis=-1))  # (N, 3)
    offsets = (landmarks - centre[:, None]) * metres_per_px[:, None, None]  # (N, P, 3)
    anchor = ray * (f * metres_per_px / ray[:, 2])[:, None]  # (N, 3) the eyes' midpoint
    return anchor[:, None] + _rotate(offsets, ray_rotation(ray))


def anatomical_frame(points: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Face frame from anatomy alone: origin between the eye centres, y to the subject's left,
    z up (chin to forehead, made orthogonal), x = y x z out of the face.

    points: (N, >=468, 3) in any right-handed frame with x right, y down, z away (pixels with
    relative depth, or metres). Returns (R (N, 3, 3) frame_R_face, origin (N, 3)).
    """
    points = _f64(points)
    right = 0.5 * (points[:, RIGHT_EYE_OUTER] + points[:, RIGHT_EYE_INNER])
    left = 0.5 * (points[:, LEFT_EYE_OUTER] + points[:, LEFT_EYE_INNER])
    origin = 0.5 * (right + left)
    y = _normalize(left - right)
    up = points[:, FOREHEAD] - points[:, CHIN]
    z = _normalize(up - _dot(up, y)[:, None] * y)
    x = np.cross(y, z)
    return np.stack((x, y, z), axis=-1), origin


def weighted_umeyama(src: np.ndarray, dst: np.ndarray, weights: np.ndarray,
                     residual: bool = True
                     ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Similarity transform dst ~ s R src + t minimising the weighted squared error.

    src: (P, 3) or (N, P, 3); dst: (N, P, 3); weights: (P,) >= 0.
    Returns R (N, 3, 3) proper rotations, t (N, 3), s (N,), rmse (N,) weighted residual
    (zeros when ``residual`` is False: the fits that only need the transform skip it).
    (Umeyama 1991; written out rather than scipy's ``Rotation.align_vectors``, which fits one
    face at a time and has no scale.)
    """
    src, dst, weights = _f64(src), _f64(dst), _f64(weights)
    w = weights / weights.sum()  # (P,)
    mu_s = w @ src  # (3,) or (N, 3)
    mu_d = w @ dst  # (N, 3)
    xs = src - mu_s[..., None, :]
    xd = dst - mu_d[:, None]
    # (N, 3, 3) weighted covariance, formed transposed (src^T W dst: the faster product)
    cov = ((xs * w[:, None]).swapaxes(-1, -2) @ xd).swapaxes(1, 2)
    u, sig, vh = np.linalg.svd(cov)
    diag = np.ones_like(sig)
    diag[:, 2] = np.sign(np.linalg.det(u @ vh))  # -1 where the best fit would be a reflection
    rot = (u * diag[:, None, :]) @ vh
    var_s = _dot(xs, xs) @ w  # () or (N,)
    scale = _dot(sig, diag) / var_s
    t = mu_d - scale[:, None] * _rotate(mu_s[..., None, :], rot)[:, 0]
    if not residual:
        return rot, t, scale, np.zeros_like(scale)
    fitted = scale[:, None, None] * _rotate(src, rot) + t[:, None]
    d = fitted - dst
    rmse = np.sqrt(_dot(d, d) @ w)
    return rot, t, scale, rmse


def line_of_sight_frame(position: np.ndarray) -> np.ndarray:
    """(N, 3, 3) camera_R_reference of a face at ``position`` (N, 3) m looking at the camera.

    Its x axis points from the face to the camera origin, z is the camera's up (-y) made
    orthogonal to it, y = z x x. For a face on the optical axis this is :data:`FRONTAL_R`.
    """
    p = _f64(position).reshape(-1, 3)
    x = -_normalize(p)
    a, b, c = x[:, 0], x[:, 1], x[:, 2]
    # z = up - (x . up) x normalised, and y = z x x, written out for up = (0, -1, 0) (the
    # length of that z before normalising is sqrt(1 - b^2) = sqrt(a^2 + c^2)).
    h = np.maximum(np.sqrt(a * a + c * c), 1e-12)[:, None]
    z = np.stack((a * b, b * b - 1.0, b * c), axis=-1) / h
    y = np.stack((-c, np.zeros_like(a), a), axis=-1) / h
    return np.stack((x, y, z), axis=-1)


def euler_from_rotation(rotation: np.ndarray, position: np.ndarray | None = None) -> np.ndarray:
    """(N, 3) yaw, pitch, roll in degrees of camera_R_face rotations (N, 3, 3).

    Intrinsic z (up), y (left), x (forward) angles of the face relative to facing the camera:
    relative to :func:`line_of_sight_frame` of ``position`` (N, 3) m, or to
    :data:`FRONTAL_R` (facing along the optical axis) when ``position`` is None.
    Signs as in ``core.types``. (scipy's ``Rotation.as_euler("ZYX")`` gives the same angles,
    to 1e-12 deg; written out from R = Rz(yaw) Ry(pitch) Rx(roll) they take a third of its
    time, every frame. At pitch +-90 deg, where yaw and roll turn about the same axis, scipy
    warns and sets roll to 0; here the matrix's rounding splits the angle between them. A face
    the camera sees is never there.)
    """
    rot = _f64(rotation).reshape(-1, 3, 3)
    ref = FRONTAL_R[None] if position is None else line_of_sight_frame(position)
    rel = ref.transpose(0, 2, 1) @ rot
    yaw = np.arctan2(rel[:, 1, 0], rel[:, 0, 0])
    pitch = -np.arcsin(np.clip(rel[:, 2, 0], -1.0, 1.0))
    roll = np.arctan2(rel[:, 2, 1], rel[:, 2, 2])
    return np.degrees(np.stack((yaw, pitch, roll), axis=-1))


def direction_angles(direction: np.ndarray, origin: np.ndarray | None = None) -> np.ndarray:
    """(..., 2) yaw, pitch in degrees of unit directions (..., 3) in the camera optical frame.

    Zero when the ray from ``origin`` (..., 3) m points at the camera origin (eye contact), or,
    when ``origin`` is None, when it points back along the optical axis (-z). yaw > 0 towards
    the subject's left (image right), pitch > 0 downwards.
    """
    d = np.asarray(direction, dtype=np.float64)
    shape = d.shape[:-1]
    d = d.reshape(-1, 3)
    if origin is None:
        ref = np.broadcast_to(FRONTAL_R, (len(d), 3, 3))
    else:
        ref = line_of_sight_frame(np.broadcast_to(np.asarray(origin), d.shape))
    rel = np.einsum("nji,nj->ni", ref, d)  # components along the reference x, y, z
    yaw = np.degrees(np.arctan2(rel[:, 1], rel[:, 0]))
    pitch = np.degrees(np.arctan2(-rel[:, 2], np.hypot(rel[:, 0], rel[:, 1])))
    return np.stack((yaw, pitch), axis=-1).reshape(shape + (2,))


def eye_openness(points: np.ndarray) -> np.ndarray:
    """(N, 2) eyelid opening over eye width (subject's right, left) of (N, 478, 3) points.

    The opening is the mean distance of the 7 upper/lower eyelid point pairs (the iris
    network's lid contour, matched from the outer corner in), the width the corner distance;
    about 0.25 for an open eye, ``CLOSED_EYE_OPENNESS`` for a closed one.
    """
    points = _f64(points)
    lids = points[:, _EYELIDS]  # (N, 2 eyes, 2 upper/lower, 7, 3)
    opening = _norm(lids[:, :, 0] - lids[:, :, 1]).mean(-1)  # (N, 2)
    corners = points[:, _EYE_CORNERS]  # (N, 2, 2, 3)
    width = _norm(corners[:, :, 0] - corners[:, :, 1])  # (N, 2)
    return opening / np.maximum(width, 1e-9)


#: Openness above CLOSED_EYE_OPENNESS over which an eye's gaze confidence rises from 0 to 1
#: (an open eye reads ~0.25).
OPEN_CONFIDENCE_SPAN = 0.08


def eye_open_confidence(openness: np.ndarray) -> np.ndarray:
    """Gaze confidence from the lids, in [0, 1], of :func:`eye_openness` values (any shape):
    0 for a closed eye, 1 from ``CLOSED_EYE_OPENNESS + OPEN_CONFIDENCE_SPAN``."""
    return np.clip((_f64(openness) - CLOSED_EYE_OPENNESS) / OPEN_CONFIDENCE_SPAN, 0.0, 1.0)


def ray_sphere_gaze(points: np.ndarray, rays: np.ndarray, centres: np.ndarray,
                    radius: np.ndarray) -> np.ndarray:
    """Unit gaze directions from eyeball centres through the observed iris centres.

    Each iris centre is seen somewhere on the line ``points + l * rays`` ((N, E, 3) each, rays
    unit, pointing away from the camera); the line is intersected with the eyeball sphere
    (centres (N, E, 3) m, radius (N,) m, centre-to-iris distance) on the camera's side. A line
    that misses (noise) uses its closest point to the centre. Returns (N, E, 3).
    """
    rays, radius = _f64(rays), _f64(radius)
    rel = _f64(points) - _f64(centres)
    b = _dot(rays, rel)  # (N, E)
    disc = b * b - _dot(rel, rel) + radius[:, None] ** 2
    lam = -b - np.sqrt(np.maximum(disc, 0.0))
    hit = rel + lam[..., None] * rays
    return _normalize(hit)


def perspective_points(points: np.ndarray, anchor: np.ndarray,
                       inverse: bool = False) -> np.ndarray:
    """Points of the weak-perspective lift (:func:`lift_to_metric`) taken to true perspective.

    The lift gives every point the lateral offset its pixel has at the depth of ``anchor`` (the
    eyes' midpoint); a point ``dz`` nearer or farther really sits ``(Z + dz) / Z`` as far from
    the ray through the anchor (Z its distance). points: (N, E, 3), anchor: (N, 3), metres.
    ``inverse`` takes perspective points back to the lift's. At head yaw 30 the two eyes' iris
    and eyeball centres differ in depth by ~16 mm and are ~0.8 mm off laterally in the lift.
    """
    points, anchor = _f64(points), _f64(anchor)
    z = _norm(anchor)  # (N,)
    rr = ray_rotation(anchor / z[:, None])  # (N, 3, 3)
    u = (points - anchor[:, None]) @ rr  # (N, E, 3) in the frame of the ray
    f = (z[:, None] + u[..., 2]) / z[:, None]  # (N, E)
    f = 1.0 / f if inverse else f
    u[..., :2] *= f[..., None]
    return anchor[:, None] + _rotate(u, rr)


def eye_fit(unit: np.ndarray, canonical: np.ndarray, weights: np.ndarray,
            eyeball_centres: np.ndarray, follow: np.ndarray, eye_weight: np.ndarray,
            rotation: np.ndarray, translation: np.ndarray, scale: np.ndarray,
            iterations: int = EYE_FIT_ITERATIONS
            ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pose fit that places the eyeball centres: the landmarks less the networks' follow
    of the eyes.

    The mesh network moves the forehead, brows, cheeks and nose bridge, and the iris network
    the eye corners and lids, by a fixed fraction of the iris's own image motion (on renders of
    a head whose skin does not move with the eyes: the forehead ~0.5 in pitch, the eye corners
    0.5-0.75, the nose tip and mouth ~0). A fit to those landmarks carries the eyeball centres
    with the eyes and under-reads the gaze (gain ~0.8 in yaw, ~0.45 in pitch). ``follow`` is
    that fraction per landmark, measured on renders (``tools.make_canonical``): (478, 2, 3),
    the landmark's x, y px and relative depth px per x, y px of its iris's displacement from
    the straight-ahead position (:data:`FOLLOW_SOURCE`). The straight-ahead position is where
    the placed eyeball centre puts the iris looking along the face's x axis, so fit, iris
    displacement and follow are iterated (``iterations`` times from the plain fit).

    unit: (N, 478, 3) the lift at one metre per pixel (one unit = 1 px at the eyes).
    eye_weight: (N, 2) in [0, 1], how far each eye's iris is trusted (0 for a closed eye: no
    correction from it). rotation, translation, scale: the plain fit of ``canonical`` to
    ``unit``. Returns that fit's rotation (N, 3, 3), translation (N, 3), scale (N,), the
    translation's height shared with the eye corners (``EYE_CORNER_HEIGHT_SHARE``).
    """
    unit, canonical, weights = _f64(unit), _f64(canonical), _f64(weights)
    eye_weight = _f64(eye_weight)
    iris = unit[:, [RIGHT_IRIS_CENTER, LEFT_IRIS_CENTER]]  # (N, 2, 3)
    anchor = iris.mean(1)  # (N, 3) the lift's anchor
    rr = ray_rotation(_normalize(anchor))  # (N, 3, 3)
    iris_px = ((iris - anchor[:, None]) @ rr)[..., :2]  # (N, 2, 2) px from the anchor
    n, p = unit.shape[:2]
    source = FOLLOW_SOURCE[:p]
    # The follow per px of iris move along x and along y, turned from the ray's frame into the
    # camera's once: (N, P, 3) each.
    fol = _f64(follow)[:p]
    fol_x, fol_y = _rotate(fol[:, 0], rr), _rotate(fol[:, 1], rr)
    open_sum = np.maximum(eye_weight.sum(1, keepdims=True), 1e-6)  # (N, 1)
    eyes_ahead = np.concatenate((_f64(eyeball_centres), [[EYEBALL_TO_IRIS_M, 0.0, 0.0]]))
    corners_can = canonical[..., _EYE_CORNER_INDICES, :]  # (4, 3) or (N, 4, 3)
    rot, t, s = _f64(rotation), _f64(translation), _f64(scale)
    per_source = np.empty((n, 3, 2))
    for _ in range(iterations):
        # The eyeball centres and the straight-ahead offset, placed by the current fit.
        placed = s[:, None, None] * _rotate(eyes_ahead, rot)  # (N, 3, 3)
        ahead = placed[:, :2] + placed[:, 2:] + t[:, None]  # (N, 2, 3)
        shift = (iris_px - ((ahead - anchor[:, None]) @ rr)[..., :2]) * eye_weight[..., None]
        per_source[:, 0] = shift.sum(1) / open_sum  # (N, 2) open eyes' mean
        per_source[:, 1:] = shift
        # (N, P, 3) camera frame: each landmark's follow of its source's shift.
        src_shift = per_source[:, source]  # (N, P, 2)
        moved = src_shift[..., :1] * fol_x + src_shift[..., 1:] * fol_y
        fixed = unit - moved
        rot, t, s, _ = weighted_umeyama(canonical, fixed, weights, residual=False)
        # The height from the whole face and from the eye corners (see
        # EYE_CORNER_HEIGHT_SHARE): the corners' own translation, its face-z part blended in.
        corner = (fixed[:, _EYE_CORNER_INDICES]
                  - s[:, None, None] * _rotate(corners_can, rot)).mean(1)  # (N, 3)
        up = rot[..., 2]  # (N, 3) the face's z axis in the camera frame
        t = t + (EYE_CORNER_HEIGHT_SHARE * _dot(corner - t, up))[:, None] * up
    return rot, t, s


def view_direction(rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """(N, 3) unit direction from the face to the camera in the face frame (x out of the face,
    y to the subject's left, z up) of a pose fit: (1, 0, 0) facing the camera."""
    to_cam = -_normalize(_f64(translation))  # (N, 3) camera frame
    return (to_cam[:, None] @ _f64(rotation))[:, 0]


def view_features(view: np.ndarray) -> np.ndarray:
    """(N, NUM_VIEW_FEATURES) the features of the view direction (N, 3) (:func:`view_direction`)
    that the mesh network's deformation of a face with the view is modelled on: with
    vy = sin(yaw) and vz ~ sin(pitch) of the camera seen from the face, vy, vy^2, vy^3 and
    vy vz. All zero for a face not turned (facing the camera, or only pitched: there the rigid
    fit is kept); odd in vy, so that a left/right-symmetric deformation model mirrors (the
    measured deformation grows faster than vy past 45 deg, hence vy^3)."""
    view = _f64(view)
    vy, vz = view[:, 1], view[:, 2]
    return np.stack((vy, vy * vy, vy * vy * vy, vy * vz), axis=-1)


def deformed_canonical(canonical: np.ndarray, deformation: np.ndarray,
                       rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """(N, P, 3) the canonical face (P, 3) as the mesh network sees it from the view of a pose
    fit (rotation (N, 3, 3), translation (N, 3)): plus the measured deformation
    (NUM_VIEW_FEATURES, P, 3) weighted by :func:`view_features`."""
    phi = view_features(view_direction(rotation, translation))  # (N, K)
    deformation = _f64(deformation)
    k, p = deformation.shape[:2]
    return _f64(canonical)[None] + (phi @ deformation.reshape(k, -1)).reshape(-1, p, 3)


_STORED_CACHE: Dict[str, np.ndarray] = {}


def stored_canonical(field: str) -> np.ndarray:
    """A measured array of the stored canonical face (``core/pipeline/data/canonical_face.npz``:
    ``gaze_follow`` (478, 2, 3) or ``pose_deformation`` (NUM_VIEW_FEATURES, 478, 3)),
    float64, cached: the default of :func:`solve_faces` for callers that pass none (the
    engine passes its own)."""
    if field not in _STORED_CACHE:
        from .canonical import load_canonical  # (core.pipeline.canonical imports this module)

        _STORED_CACHE[field] = _f64(getattr(load_canonical(), field))
    return _STORED_CACHE[field]


def solve_faces(landmarks: np.ndarray, intrinsics: np.ndarray, canonical: np.ndarray,
                weights: np.ndarray, eyeball_centres: np.ndarray,
                iris_diameter_m: float, gaze_follow: Optional[np.ndarray] = None,
                pose_deformation: Optional[np.ndarray] = None) -> FaceGeometry:
    """Metric 3D, head pose and per-eye gaze for N faces.

    landmarks: (N, 478, 3) px (+ relative depth px). intrinsics: (N, 4) fx, fy, cx, cy.
    canonical: (478, 3) canonical face in the face frame, metres. weights: (478,) pose-fit
    weights. eyeball_centres: (2, 3) canonical eyeball centres (right, left), face frame, metres.
    gaze_follow: (478, 2, 3) the networks' follow of the eyes (:func:`eye_fit`); default the
    stored canonical face's, zeros for none. pose_deformation: (NUM_VIEW_FEATURES, 478, 3) the
    mesh network's deformation of a face with the view (:func:`deformed_canonical`); default
    the stored canonical face's, zeros for none (a rigid fit).

    The head pose (rotation, translation, scale) is the fit of the canonical face deformed for
    the view read by a first, rigid fit. The metric scale, the eye fit, the gaze confidences
    and ``fit_rmse`` keep the rigid fit (the eyeball centres are calibrated against it).
    """
    lm, k, can = _f64(landmarks), _f64(intrinsics), _f64(canonical)
    w, eyes = _f64(weights), _f64(eyeball_centres)
    gaze_follow = stored_canonical("gaze_follow") if gaze_follow is None else _f64(gaze_follow)
    pose_deformation = (stored_canonical("pose_deformation") if pose_deformation is None
                        else _f64(pose_deformation))
    # The lift is linear in the metric scale (metres per pixel), and so are the fit's
    # translation, scale and residual, while its rotation does not depend on it: fit once at
    # one metre per pixel, then scale.
    unit = lift_to_metric(lm, k, np.ones(len(k)))  # (N, 478, 3)
    rot, t, s, rmse = weighted_umeyama(can, unit, w)
    # Two sources of the metric scale, each with a confidence, combined in log scale by their
    # precisions: the iris (the person's own, only while the eyes are open, face the camera and
    # are large enough to read; the canonical irises turned by the head pose against the
    # diameters seen) and the face's own size (the canonical face's, scale 1: turning the head
    # does not shrink it). See :func:`scale_confidences`.
    openness = eye_openness(lm)  # (N, 2); the lift is a similarity: the same ratios
    iris_w = iris_scale_weight(lm, rot, openness)  # (N,)
    mpp = np.exp(np.log(_iris_metres_per_px(lm, can, rot, iris_diameter_m)) * iris_w
                 - np.log(s) * (1.0 - iris_w))  # (N,)
    pts = unit * mpp[:, None, None]  # (N, 478, 3)

    # Eyeball centres from the fit without the eyes' follow (open eyes only), in the lift's
    # weak perspective; centres and landmarks then taken to true perspective, and each iris's
    # camera ray intersected with its eyeball.
    open_conf = eye_open_confidence(openness)  # (N, 2)
    rot_e, t_e, s_e = eye_fit(unit, can, w, eyes, gaze_follow, open_conf, rot, t, s)
    centres = (s_e[:, None, None] * _rotate(eyes, rot_e)
               + t_e[:, None]) * mpp[:, None, None]  # (N, 2, 3)
    # The head pose: the canonical face deformed for the view the rigid fit reads, fitted again
    # (one step: the deformation is measured against the rigid fit's view, not the true one).
    can_v = deformed_canonical(can, pose_deformation, rot, t)  # (N, 478, 3)
    rot_p, t_p, s_p, _ = weighted_umeyama(can_v, unit, w, residual=False)
    # The published landmarks each on their own camera ray: the weak lift gives the nose the
    # lateral offsets of its magnified image and the cheeks those of their shrunk one (at half
    # a metre a +-3 cm depth is +-6 %). On renders with exact truth: shape median at head yaw
    # 45 1.07-1.10 -> 0.96-0.97 mm (facecap), 1.65-1.70 -> 1.36-1.44 mm (head scan).
    anchor = pts[:, [RIGHT_IRIS_CENTER, LEFT_IRIS_CENTER]].mean(1)  # (N, 3)
    pts = perspective_points(pts, anchor)
    centres = perspective_points(centres, anchor)
    iris = pts[:, [RIGHT_IRIS_CENTER, LEFT_IRIS_CENTER]]  # (N, 2, 3)
    direction = ray_sphere_gaze(iris, _normalize(iris), centres, s * mpp * EYEBALL_TO_IRIS_M)

    # Confidence per eye: open lids and the eye turned towards the camera.
    fx_axis, fy_axis = rot[..., 0], rot[..., 1]  # (N, 3) face x and y in the camera frame
    normals = np.stack((fx_axis - 0.5 * fy_axis, fx_axis + 0.5 * fy_axis), axis=1)
    normals = _normalize(normals)  # (N, 2, 3) right, left eye
    to_cam = _normalize(-centres)
    cos = _dot(normals, to_cam)
    lo, hi = float(np.cos(np.radians(80.0))), float(np.cos(np.radians(50.0)))
    vis_conf = np.clip((cos - lo) / (hi - lo), 0.0, 1.0)
    face_points = (unit - t_p[:, None]) @ rot_p / s_p[:, None, None]
    return FaceGeometry(points=pts, face_points=face_points, rotation=rot_p,
                        translation=t_p * mpp[:, None],
                        scale=s_p * mpp, fit_rmse=rmse * mpp,
                        eye_origin=centres, eye_direction=direction,
                        eye_confidence=open_conf * vis_conf, eye_visibility=vis_conf,
                        eye_openness=openness)


_IRIS_DIAMETERS = ((469, 471), (470, 472), (474, 476), (475, 477))

#: Head turn (deg from facing the camera) up to which the iris keeps its full confidence, and
#: from which it has none: the iris network shrinks both diameters of a turned eye (on facecap
#: renders at head yaw 30 the mean diameter reads 11 % short, at 45 30 % short), not only the
#: one along the turn.
IRIS_SCALE_TURN_DEG = (10.0, 30.0)
#: Iris diameter (px) below which the iris has no confidence, and from which it has full.
IRIS_SCALE_PX = (4.0, 8.0)
#: One-sigma relative uncertainty of each metric-scale source at full confidence: the iris
#: (adult visible iris diameter 11.7 +- 0.45 mm, ~4 %, and the network's read of a 13 px iris:
#: on the facecap renders it reads the 11.8 mm iris 4.6 to 6.5 % large depending on where the
#: eye crop falls, ~5.5 %; together ~6.8 %) and the face's own size (adult face sizes spread
#: ~6 % about the canonical face's).
IRIS_SCALE_SIGMA = 0.068
FACE_SCALE_SIGMA = 0.06


def scale_confidences(landmarks: np.ndarray, rotation: np.ndarray,
                      openness: Optional[np.ndarray] = None) -> np.ndarray:
    """(N, 2) confidence in [0, 1] of the two metric-scale sources: the iris, the face size.

    The iris: 1 with both eyes open, the face towards the camera and irises of at least
    ``IRIS_SCALE_PX[1]`` px; 0 once an eye closes, the head turns past
    ``IRIS_SCALE_TURN_DEG[1]`` or the irises shrink below ``IRIS_SCALE_PX[0]`` px (tiny faces).
    The face size: always 1 (a prior; a missing face has no landmarks at all).
    landmarks: (N, 478, 3) px; rotation: (N, 3, 3) camera_R_face; openness: (N, 2) their
    :func:`eye_openness` when already computed.
    """
    openness = eye_openness(landmarks) if openness is None else _f64(openness)
    open_w = np.clip((openness.min(-1) - 0.12) / 0.08, 0.0, 1.0)
    lo, hi = (float(np.cos(np.radians(a))) for a in IRIS_SCALE_TURN_DEG[::-1])
    # face x towards the camera
    facing = np.clip((-_f64(rotation)[:, 2, 0] - lo) / (hi - lo), 0.0, 1.0)
    px_lo, px_hi = IRIS_SCALE_PX
    size_w = np.clip((iris_diameter_px(landmarks) - px_lo) / (px_hi - px_lo), 0.0, 1.0)
    iris = open_w * facing * size_w
    return np.stack((iris, np.ones_like(iris)), axis=-1)


def iris_scale_weight(landmarks: np.ndarray, rotation: np.ndarray,
                      openness: Optional[np.ndarray] = None) -> np.ndarray:
    """(N,) weight in [0, 1] of the iris in the metric scale (the face size has the rest):
    the sources' confidences (:func:`scale_confidences`) times their precisions
    (``IRIS_SCALE_SIGMA``, ``FACE_SCALE_SIGMA``), normalised. With open eyes facing the
    camera about 0.44; 0 as the head turns past ``IRIS_SCALE_TURN_DEG`` or an eye closes.
    landmarks: (N, 478, 3) px; rotation: (N, 3, 3) camera_R_face; openness: (N, 2) their
    :func:`eye_openness` when already computed."""
    conf = scale_confidences(landmarks, rotation, openness)  # (N, 2)
    precision = conf / np.array([IRIS_SCALE_SIGMA ** 2, FACE_SCALE_SIGMA ** 2])
    return precision[:, 0] / precision.sum(-1)


def _iris_metres_per_px(landmarks: np.ndarray, canonical: np.ndarray, rotation: np.ndarray,
                        iris_diameter_m: float) -> np.ndarray:
    """(N,) metres per pixel at the eyes: the canonical irises (scaled to ``iris_diameter_m``)
    turned by ``rotation`` (N, 3, 3) and projected onto the image plane, against the iris
    diameters seen in ``landmarks`` (N, 478, 3) px; four diameters, both eyes."""
    a, b = (list(ix) for ix in zip(*_IRIS_DIAMETERS))
    canonical, landmarks = _f64(canonical), _f64(landmarks)
    can_d = canonical[a] - canonical[b]  # (4, 3) face frame
    can_size = _norm(can_d).mean()
    turned = _rotate(can_d * (iris_diameter_m / can_size), _f64(rotation))  # (N, 4, 3)
    seen_m = _norm(turned[..., :2]).sum(-1)
    seen_px = _norm(landmarks[:, a, :2] - landmarks[:, b, :2]).sum(-1)
    return seen_m / np.maximum(seen_px, 1e-3)


def pose_weights(num_points: int = 478) -> np.ndarray:
    """(num_points,) weights of the head-pose fit: rigid points 1, other mesh points 0.1,
    iris points 0 (the irises move with gaze, not with the head)."""
    w = np.full(num_points, 0.1)
    w[list(RIGID_INDICES)] = 1.0
    w[NUM_MESH:] = 0.0
    return w


def boxes_from_landmarks(landmarks: np.ndarray) -> np.ndarray:
    """(N, 4) x_min, y_min, x_max, y_max px of (N, P, >=2) landmarks."""
    xy = np.asarray(landmarks)[..., :2]
    return np.concatenate((xy.min(axis=1), xy.max(axis=1)), axis=-1)
