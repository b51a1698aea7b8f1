"""Multi-view enrolment: several views of one person fused into one textured identity model.

Steps of :func:`enroll` (views: images with the engine's result for the person's face):

1. each view's face in the face frame (:func:`face_frame_points`, metres);
2. per-vertex visibility of each view: the cosine between the vertex normal (from the mesh
   triangles) and the direction to the camera, zero where the z-buffer of the view's own mesh
   says the vertex is hidden (the nose over a cheek);
3. the expression removed as far as the views allow (:func:`neutralize_views`): what every
   view shows, against the canonical neutral face fitted to the person
   (``identity.neutralize``: mouth, eyes and brows pulled towards it in proportion to the
   expression coefficients above what a neutral face reads, :func:`neutral_levels`); what one
   view shows beyond the others, against the person's own consensus of the views (a side
   view's mouth and brows read as expression on a neutral face: the network's view
   deformation; pulled towards the canonical face they took on its bias);
4. the views aligned on each other (similarity on rigid points) and fused per vertex by a
   Huber mean (robust to one view's outliers) weighted by the vertex's visibility in the view
   times the view's reliability (:func:`view_reliability`: a view facing the camera reads the
   face best, on renders with truth its shape error grows ~35 % from head yaw 0 to 45);
   repeated twice, each time aligning on the fused shape;
5. the metric size from the most reliable views (:func:`scale_weights`: the precision of each
   view's metric scale, higher where the open irises of a frontal view set it) rather than
   the views' plain mean, which side views (scale from the face size prior alone) pull; the
   fused shape is the identity (``FaceModel.vertices``, the image's own proportions), and
   the same face in true perspective (:func:`metric_model`: the views' own perspective
   corrections fused alike) is what the model shows (``FaceModel.metric_vertices``);
6. the texture atlas (``texture_size`` square, canonical frontal UVs of
   ``core.pipeline.topology``):
   every texel is traced through its triangle into every view, sampled there and blended with
   the view's visibility (cosine squared) feathered towards the border of what that view saw,
   so that seams between views fade over ``feather`` texels;
7. texels of the face that no view saw are copied from their mirror texel (the canonical face
   is symmetric: u -> 1 - u) where that one was seen, the rest filled from their neighbours
   (``cv2.inpaint``); the fractions seen / mirrored / filled are reported.

A mirrored photo of a person is only approximately a view of their other side (faces are not
symmetric, the light flips with it): enrolment accepts it like any view.

One module (over 400 lines): the steps above share the views' visibility and weights and run
in this order only.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from .identity import align, canonical_coefficients, face_size, neutralize
from .model_io import FaceModel
from ..pipeline.expression import NEUTRAL_COEFF, expression_coefficients, neutral_levels
from ..pipeline.topology import load_topology
from ..types import (LEFT_IRIS_CENTER, NUM_LANDMARKS, NUM_MESH, RIGHT_IRIS_CENTER,
                     FaceResult)

#: A texel (or vertex) counts as seen by a view when its surface faces the camera by at least
#: this cosine (about 72 degrees from head-on) and is not hidden.
SEEN_COS = 0.3
#: Reliability of a view's shape against its head turn: cos(turn) ** this (1 frontal, 0.5 at
#: a 45 deg turn).
RELIABILITY_POWER = 2.0


@dataclass(frozen=True)
class EnrollmentView:
    """One view for enrolment: name (e.g. "front"), image (H, W, 3) uint8 RGB and the engine's
    result for the person's face in it."""

    name: str
    image: np.ndarray
    face: FaceResult


@dataclass(frozen=True)
class Enrollment:
    """The result of :func:`enroll`.

    model: the fused :class:`~face3d_ros.core.people.model_io.FaceModel`.
    view_shapes: (V, 478, 3) m, each view's face in the face frame, aligned on the model.
    view_identities: (V, 478, 3) m, each view's own neutral estimate, aligned on the model.
    view_expressions: (V, 478, 3) m, each view's expression displacement against the model.
    vertex_weights: (V, 478) each view's per-vertex visibility weight in [0, 1].
    view_seen: (V,) fraction of the face atlas each view saw.
    coverage: "seen", "mirrored", "filled" fractions of the face atlas (sum 1).
    """

    model: FaceModel
    view_shapes: np.ndarray
    view_identities: np.ndarray
    view_expressions: np.ndarray
    vertex_weights: np.ndarray
    view_seen: np.ndarray
    coverage: Dict[str, float]


# -- geometry helpers ----------------------------------------------------------------------
def face_frame_points(face: FaceResult) -> np.ndarray:
    """(478, 3) metres: the face's shape in its own face frame (head pose removed), as
    identities compare it: in the image's own proportions, the engine's weak-perspective lift
    (``geometry.lift_to_metric``), taken back from the published true perspective.

    ``landmarks_3d`` sit each on its own camera ray, a correction whose size the focal length
    sets: a photo enrolled without camera_info (focal length assumed) would otherwise not match
    the same face seen by a calibrated camera. The lift's anchor (the irises' midpoint in it)
    is the published irises' midpoint taken back once through the inverse (its error goes from
    0.6 mm to 1 um at head yaw 45; a second round would leave 0.002 um). The same from a
    ``Face3D`` message, which carries ``landmarks_3d`` and the pose. ~0.1-0.2 ms per face.
    """
    from ..pipeline.geometry import perspective_points

    p = np.asarray(face.landmarks_3d, np.float64)[None]  # (1, 478, 3)
    irises = p[:, [RIGHT_IRIS_CENTER, LEFT_IRIS_CENTER]]
    anchor = perspective_points(irises, irises.mean(1), inverse=True).mean(1)  # (1, 3)
    lift = perspective_points(p, anchor, inverse=True)[0]
    pose = face.head_pose
    return (lift - pose.translation) @ pose.rotation


def metric_frame_points(face: FaceResult) -> np.ndarray:
    """(478, 3) metres: the face's published ``landmarks_3d`` (true perspective, each point on
    its own camera ray) in its own face frame (head pose removed): its metric shape as the
    camera saw it, what an enrolled model shows (``FaceModel.metric_vertices``). It differs from
    :func:`face_frame_points` by the perspective correction alone (the same pose removed)."""
    pose = face.head_pose
    return (np.asarray(face.landmarks_3d, np.float64) - pose.translation) @ pose.rotation


def vertex_normals(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """(468, 3) unit outward normals of the mesh vertices (area-weighted triangle normals).

    points: (>=468, 3) in any right-handed frame; triangles: (F, 3) counter-clockwise from
    the front (``core.pipeline.topology``).
    """
    p = np.asarray(points, dtype=np.float64)[:NUM_MESH]
    a, b, c = p[triangles[:, 0]], p[triangles[:, 1]], p[triangles[:, 2]]
    fn = np.cross(b - a, c - a)  # (F, 3), length = 2 * area
    n = np.zeros_like(p)
    for k in range(3):
        np.add.at(n, triangles[:, k], fn)
    return n / np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-12)


def rasterize(xy: np.ndarray, depth: np.ndarray, triangles: np.ndarray,
              size: Tuple[int, int]) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Z-buffer rasterisation of a triangle mesh onto a pixel grid (pixel centres at +0.5).

    xy: (V, 2) pixel positions; depth: (V,) smaller is nearer; triangles: (F, 3);
    size: (width, height). Returns tri (H, W) int32 triangle index (-1 empty),
    bary (H, W, 3) float32 barycentric weights, zbuf (H, W) float32 (inf empty).
    """
    w, h = int(size[0]), int(size[1])
    tri_img = np.full((h, w), -1, dtype=np.int32)
    bary = np.zeros((h, w, 3), dtype=np.float32)
    zbuf = np.full((h, w), np.inf, dtype=np.float32)
    pts = np.asarray(xy, dtype=np.float64)
    z = np.asarray(depth, dtype=np.float64)
    for f, (i, j, k) in enumerate(np.asarray(triangles)):
        a, b, c = pts[i], pts[j], pts[k]
        x0 = max(int(np.floor(min(a[0], b[0], c[0]) - 0.5)), 0)
        x1 = min(int(np.ceil(max(a[0], b[0], c[0]) - 0.5)), w - 1)
        y0 = max(int(np.floor(min(a[1], b[1], c[1]) - 0.5)), 0)
        y1 = min(int(np.ceil(max(a[1], b[1], c[1]) - 0.5)), h - 1)
        if x1 < x0 or y1 < y0:
            continue
        den = (b[1] - c[1]) * (a[0] - c[0]) + (c[0] - b[0]) * (a[1] - c[1])
        if abs(den) < 1e-12:
            continue
        gx, gy = np.meshgrid(np.arange(x0, x1 + 1) + 0.5, np.arange(y0, y1 + 1) + 0.5)
        l0 = ((b[1] - c[1]) * (gx - c[0]) + (c[0] - b[0]) * (gy - c[1])) / den
        l1 = ((c[1] - a[1]) * (gx - c[0]) + (a[0] - c[0]) * (gy - c[1])) / den
        l2 = 1.0 - l0 - l1
        inside = (l0 >= -1e-6) & (l1 >= -1e-6) & (l2 >= -1e-6)
        if not inside.any():
            continue
        zz = l0 * z[i] + l1 * z[j] + l2 * z[k]
        sub = zbuf[y0:y1 + 1, x0:x1 + 1]
        win = inside & (zz < sub)
        sub[win] = zz[win]
        tri_img[y0:y1 + 1, x0:x1 + 1][win] = f
        bary[y0:y1 + 1, x0:x1 + 1][win] = np.stack((l0, l1, l2), -1)[win]
    return tri_img, bary, zbuf


@lru_cache(maxsize=4)
def _atlas_raster(size: int) -> Tuple[np.ndarray, np.ndarray]:
    topo = load_topology()
    xy = np.stack((topo.uv[:, 0] * size, (1.0 - topo.uv[:, 1]) * size), axis=-1)
    tri, bary, _ = rasterize(xy, np.zeros(NUM_MESH), model_triangles(), (size, size))
    return tri, bary


def _interp(values: np.ndarray, tri_img: np.ndarray, bary: np.ndarray,
            triangles: np.ndarray) -> np.ndarray:
    """Per-pixel interpolation of per-vertex values (V, C) over a rasterised mesh."""
    t = np.maximum(tri_img, 0)
    corners = values[triangles[t]]  # (H, W, 3, C)
    return (bary[..., None] * corners).sum(axis=2)


def view_visibility(face: FaceResult, triangles: np.ndarray,
                    image_size: Tuple[int, int]) -> Tuple[np.ndarray, np.ndarray]:
    """Per-vertex facing cosine (468,) and visibility (468,) bool of one view.

    The cosine is between the outward vertex normal and the direction from the vertex to the
    camera (camera frame); a vertex is visible when it faces the camera, lies inside the
    image and is not behind another part of the face in the view's z-buffer.
    """
    p = np.asarray(face.landmarks_3d, dtype=np.float64)[:NUM_MESH]
    n = vertex_normals(p, triangles)
    to_cam = -p / np.maximum(np.linalg.norm(p, axis=-1, keepdims=True), 1e-12)
    cos = (n * to_cam).sum(-1)
    lm = np.asarray(face.landmarks_2d, dtype=np.float64)[:NUM_MESH]
    w, h = image_size
    inside = (lm[:, 0] >= 0) & (lm[:, 0] < w) & (lm[:, 1] >= 0) & (lm[:, 1] < h)
    # Z-buffer of the mesh in the view, on a grid of about 2 px.
    box = face.box
    origin = np.array([box[0], box[1]]) - 2.0
    span = max(box[2] - box[0], box[3] - box[1]) + 4.0
    grid = 160
    k = grid / span
    xy = (lm[:, :2] - origin) * k
    _, _, zbuf = rasterize(xy, lm[:, 2], triangles, (grid, grid))
    col = np.clip(xy[:, 0].astype(int), 0, grid - 1)
    row = np.clip(xy[:, 1].astype(int), 0, grid - 1)
    tol = 0.04 * (box[2] - box[0])
    front = lm[:, 2] <= zbuf[row, col] + tol
    return cos, (cos > 0.0) & inside & front


def vertex_weights(face: FaceResult, triangles: np.ndarray,
                   image_size: Tuple[int, int]) -> np.ndarray:
    """(478,) how well a view sees each point, in [0, 1]: facing cosine squared where visible
    (irises take the mean weight of their eye's corners)."""
    cos, vis = view_visibility(face, triangles, image_size)
    w = np.zeros(NUM_LANDMARKS)
    w[:NUM_MESH] = np.where(vis, np.clip(cos, 0.0, 1.0) ** 2, 0.0)
    w[468:473] = 0.5 * (w[33] + w[133])
    w[473:478] = 0.5 * (w[263] + w[362])
    return w


#: The mesh's openings (eyes, mouth) as two chains from corner to corner: upper and lower.
OPENINGS: Dict[str, Tuple[Tuple[int, ...], Tuple[int, ...]]] = {
    "eye_right": ((33, 246, 161, 160, 159, 158, 157, 173, 133),
                  (33, 7, 163, 144, 145, 153, 154, 155, 133)),
    "eye_left": ((263, 466, 388, 387, 386, 385, 384, 398, 362),
                 (263, 249, 390, 373, 374, 380, 381, 382, 362)),
    "mouth": ((78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308),
              (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)),
}


def cap_triangles() -> np.ndarray:
    """(C, 3) int32 triangles that close the eye and mouth openings of the mesh (a strip
    between the upper and lower chain of each, existing vertices only), counter-clockwise
    seen from the front. The enrolled model carries them so that its texture shows the eyes
    and teeth the views saw."""
    tris = []
    for upper, lower in OPENINGS.values():
        tris.append((upper[0], upper[1], lower[1]))
        for i in range(1, len(upper) - 2):
            tris.append((upper[i], upper[i + 1], lower[i]))
            tris.append((lower[i], upper[i + 1], lower[i + 1]))
        tris.append((upper[-2], upper[-1], lower[-2]))
    tri = np.asarray(tris, dtype=np.int32)
    uv = load_topology().uv
    a, b, c = uv[tri[:, 0]], uv[tri[:, 1]], uv[tri[:, 2]]
    cross = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    return np.where((cross < 0)[:, None], tri[:, [0, 2, 1]], tri)


def model_triangles() -> np.ndarray:
    """(F, 3) int32: the mesh topology (``core.pipeline.topology``) followed by
    :func:`cap_triangles`."""
    return np.concatenate((load_topology().triangles, cap_triangles())).astype(np.int32)


def view_reliability(face: FaceResult) -> float:
    """How well a view reads the face's shape, in (0, 1]: cos(head turn from facing the
    camera) ** ``RELIABILITY_POWER``."""
    from ..pipeline.geometry import line_of_sight_frame

    rot = np.asarray(face.head_pose.rotation, dtype=np.float64)
    ref = line_of_sight_frame(np.asarray(face.head_pose.translation)[None])[0]
    cos = float(np.clip((ref[:, 0] * rot[:, 0]).sum(), 0.05, 1.0))  # face x vs line of sight
    return cos ** RELIABILITY_POWER


def scale_weights(views: Sequence[EnrollmentView]) -> np.ndarray:
    """(V,) weight of each view in the model's metric size: the precision of its metric scale
    (``core.pipeline.geometry``: the iris where its confidence holds, else the face size prior),
    so a frontal view with open eyes counts most."""
    from ..pipeline.geometry import FACE_SCALE_SIGMA, IRIS_SCALE_SIGMA, iris_scale_weight

    lm = np.stack([np.asarray(v.face.landmarks_2d, np.float64) for v in views])
    rot = np.stack([np.asarray(v.face.head_pose.rotation, np.float64) for v in views])
    w_iris = iris_scale_weight(lm, rot)  # (V,) share of the iris in each view's scale
    # The precision of a blend of the two sources in those shares.
    var = (w_iris * IRIS_SCALE_SIGMA) ** 2 + ((1.0 - w_iris) * FACE_SCALE_SIGMA) ** 2
    return 1.0 / var


def neutral_coefficients(coefficients: np.ndarray) -> np.ndarray:
    """Expression coefficients with what a neutral face reads (:func:`neutral_levels`) taken
    off and the rest rescaled to [0, 1]."""
    c = np.asarray(coefficients, dtype=np.float64)
    level = neutral_levels()
    return np.clip((c - level) / (1.0 - level), 0.0, 1.0)


# -- shape fusion --------------------------------------------------------------------------
def fuse_shapes(shapes: np.ndarray, weights: np.ndarray, huber_k: float = 2.0,
                iterations: int = 3) -> np.ndarray:
    """(478, 3) per-vertex robust weighted mean of aligned shapes (V, 478, 3), weights (V, 478).

    Huber weights on each view's residual against the current mean, with the scale taken as
    1.4826 times the median residual over all views and vertices.
    """
    s = np.asarray(shapes, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64) + 1e-6  # a vertex no view sees: plain mean
    mean = (w[..., None] * s).sum(0) / w.sum(0)[:, None]
    for _ in range(iterations):
        r = np.linalg.norm(s - mean[None], axis=-1)  # (V, 478)
        scale = max(1.4826 * float(np.median(r)), 1e-6)
        hw = w * np.minimum(1.0, huber_k * scale / np.maximum(r, 1e-12))
        mean = (hw[..., None] * s).sum(0) / hw.sum(0)[:, None]
    return mean


def fuse_aligned(shapes: np.ndarray, weights: np.ndarray, size: Optional[float] = None,
                 rounds: int = 2) -> Tuple[np.ndarray, np.ndarray]:
    """The fused shape (478, 3) of views (V, 478, 3) in any frames, and the views aligned on it.

    :func:`fuse_shapes`, then ``rounds`` times: each view aligned on the fused shape
    (similarity on the rigid points) and fused again, scaled to ``size`` (metres,
    :func:`~face3d_ros.core.people.identity.face_size`) when given.
    """
    s = np.asarray(shapes, dtype=np.float64)
    ident = fuse_shapes(s, weights)
    for _ in range(rounds):
        s = np.stack([align(x, ident) for x in s])
        ident = fuse_shapes(s, weights)
        if size is not None:
            ident = ident * (size / face_size(ident))
    return ident, s


def neutralize_views(local: np.ndarray, weights: np.ndarray,
                     coefficients: Sequence[np.ndarray]) -> np.ndarray:
    """(V, 478, 3) each view's neutral estimate (step 3 of :func:`enroll`).

    local: (V, 478, 3) the views' face-frame shapes; weights: (V, 478) per-vertex weights;
    coefficients: each view's expression coefficients against the canonical face, above
    what a neutral face reads (:func:`neutral_coefficients`).

    1. The expression every view shows (per coefficient, the least any view reads; one view:
       all it reads) is removed against the canonical face (``identity.neutralize``), as
       nothing else says what the person's neutral is.
    2. With several views, each view's remaining expression is measured against the
       person's own consensus (the views fused, :func:`fuse_aligned`) and only what the view
       shows beyond it is removed, towards that consensus: a side view's mouth and brows
       (read as funnel and brow_down 0.7-1.0 on a neutral head turned 30-45 degrees, the
       network's view deformation) or a blink in one view no longer pull towards the
       canonical face, whose own bias they would add.
    """
    x = np.asarray(local, dtype=np.float64)
    common = np.min(np.stack([np.asarray(c, np.float64) for c in coefficients]), axis=0)
    base = np.stack([neutralize(v, common)[0] for v in x])
    if len(x) == 1:
        return base
    consensus, aligned = fuse_aligned(base, weights)
    out = []
    for v in aligned:
        ref = align(consensus, v)
        # Against the person's own neutral a neutral face reads little: the plain level.
        c = expression_coefficients(v[None], ref)[0]
        c = np.clip((c - NEUTRAL_COEFF) / (1.0 - NEUTRAL_COEFF), 0.0, 1.0)
        out.append(neutralize(v, c, ref)[0])
    return np.stack(out)


# -- texture -------------------------------------------------------------------------------
def _face_mask(size: int) -> np.ndarray:
    tri, _ = _atlas_raster(size)
    return tri >= 0


def _view_texture(view: EnrollmentView, size: int,
                  feather: float) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Colour (S, S, 3) float32, blend weight (S, S) and seen mask (S, S) of one view."""
    tri_img, bary = _atlas_raster(size)
    face = view.face
    img = np.ascontiguousarray(view.image[..., :3])
    h, w = img.shape[:2]
    lm = np.asarray(face.landmarks_2d, dtype=np.float64)[:NUM_MESH]
    cos, vis = view_visibility(face, load_topology().triangles, (w, h))
    triangles = model_triangles()
    xy = _interp(lm[:, :2], tri_img, bary, triangles).astype(np.float32)  # (S, S, 2)
    colour = cv2.remap(img, xy[..., 0] - 0.5, xy[..., 1] - 0.5, cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
    c = _interp(np.where(vis, cos, -1.0)[:, None], tri_img, bary, triangles)[..., 0]
    # A texel is hidden when any corner of its triangle is hidden.
    hidden = (~vis)[triangles[np.maximum(tri_img, 0)]].any(-1)
    inside = (xy[..., 0] >= 0) & (xy[..., 0] < w) & (xy[..., 1] >= 0) & (xy[..., 1] < h)
    seen = (tri_img >= 0) & (c > SEEN_COS) & ~hidden & inside
    dist = cv2.distanceTransform(seen.astype(np.uint8), cv2.DIST_L2, 5)
    fade = np.clip(dist / max(feather, 1.0), 1.0 / max(feather, 1.0), 1.0)
    weight = np.where(seen, np.clip(c, 0.0, 1.0) ** 2 * fade, 0.0).astype(np.float32)
    return colour, weight, seen


def build_texture(views: Sequence[EnrollmentView], size: int = 512,
                  feather: float = 12.0) -> Tuple[np.ndarray, Dict[str, float], np.ndarray]:
    """Texture atlas (S, S, 3) uint8 RGB blended from all views, coverage fractions by source.

    Returns the atlas, the fractions of the face texels "seen", "mirrored" and "filled",
    and (V,) the fraction each view saw.
    """
    face = _face_mask(size)
    acc = np.zeros((size, size, 3), dtype=np.float64)
    wsum = np.zeros((size, size), dtype=np.float64)
    seen_any = np.zeros((size, size), dtype=bool)
    per_view = []
    feather = feather * size / 512.0
    for v in views:
        colour, weight, seen = _view_texture(v, size, feather)
        acc += weight[..., None] * colour
        wsum += weight
        seen_any |= seen
        per_view.append(float(seen.sum() / face.sum()))
    tex = np.zeros((size, size, 3), dtype=np.float64)
    tex[seen_any] = acc[seen_any] / wsum[seen_any][:, None]
    # Mirror: the canonical face is symmetric, its mirror texel is u -> 1 - u.
    mirrored = face & ~seen_any & seen_any[:, ::-1]
    tex[mirrored] = tex[:, ::-1][mirrored]
    known = seen_any | mirrored
    holes = face & ~known
    out = np.clip(np.rint(tex), 0, 255).astype(np.uint8)
    if known.any():
        # Every unknown texel (holes and the outside of the face) first takes its nearest known
        # colour, so that the neighbour fill of the holes never pulls in black.
        _, labels = cv2.distanceTransformWithLabels((~known).astype(np.uint8), cv2.DIST_L2, 5,
                                                    labelType=cv2.DIST_LABEL_PIXEL)
        rows, cols = np.nonzero(known)
        lut = np.zeros((labels.max() + 1, 3), dtype=np.uint8)
        lut[labels[rows, cols]] = out[rows, cols]
        out = np.where(known[..., None], out, lut[labels]).astype(np.uint8)
        if holes.any():
            out = np.asarray(cv2.inpaint(out, holes.astype(np.uint8), 5, cv2.INPAINT_TELEA),
                             dtype=np.uint8)
    n = float(face.sum())
    coverage = {"seen": float(seen_any.sum() / n), "mirrored": float(mirrored.sum() / n),
                "filled": float(holes.sum() / n)}
    return out, coverage, np.array(per_view)


# -- enrolment -----------------------------------------------------------------------------
def enroll(views: Sequence[EnrollmentView], name: str = "face", face_id: int = -1,
           texture_size: int = 512, feather: float = 12.0) -> Enrollment:
    """Fuse several views of one person into one textured identity model (module docstring).

    views: at least one; texture_size: atlas side in texels (64..4096); feather: seam blend
    width in texels at 512 (scaled with the atlas).
    """
    if not views:
        raise ValueError("enroll needs at least one view (front, left, right, ...)")
    if not 64 <= int(texture_size) <= 4096:
        raise ValueError(f"texture_size must be in [64, 4096], got {texture_size}")
    triangles = load_topology().triangles  # visibility: the open mesh
    local = np.stack([face_frame_points(v.face) for v in views])  # (V, 478, 3)
    weights = np.stack([vertex_weights(v.face, triangles,
                                       (v.image.shape[1], v.image.shape[0])) for v in views])
    # Size: the views' metric sizes weighted by their precision (alignment with scale would
    # drift to one view's).
    sw = scale_weights(views)
    size = weighted_size(local, sw)
    reliability = np.array([view_reliability(v.face) for v in views])
    weights = weights * reliability[:, None]
    # Measured against the canonical face, towards which the expression is taken off.
    coeffs = [neutral_coefficients(canonical_coefficients(x)) for x in local]
    neutral = neutralize_views(local, weights, coeffs)
    ident, _ = fuse_aligned(neutral, weights, size)
    shapes = np.stack([align(x, ident) for x in local])
    texture, coverage, seen = build_texture(views, texture_size, feather)
    model = FaceModel(name=name, face_id=int(face_id), vertices=ident.astype(np.float32),
                      triangles=model_triangles(), uv=load_topology().uv.astype(np.float32),
                      texture=texture, coverage=coverage,
                      view_names=tuple(v.name for v in views),
                      view_coverage=tuple(float(s) for s in seen),
                      metric_vertices=metric_model(ident, views, local, weights, sw).astype(
                          np.float32))
    return Enrollment(model=model, view_shapes=shapes,
                      view_identities=np.stack([align(x, ident) for x in neutral]),
                      view_expressions=shapes - ident[None], vertex_weights=weights,
                      view_seen=seen, coverage=coverage)


def weighted_size(shapes: np.ndarray, scale_w: np.ndarray) -> float:
    """Metres: the face size (``identity.face_size``) of views (V, 478, 3), their logs
    averaged with the views' scale weights (V,) (:func:`scale_weights`; alignment with scale
    would drift to one view's)."""
    logs = np.log([face_size(x) for x in shapes])
    return float(np.exp((scale_w * logs).sum() / scale_w.sum()))


def metric_model(ident: np.ndarray, views: Sequence[EnrollmentView], local: np.ndarray,
                 weights: np.ndarray, scale_w: np.ndarray) -> np.ndarray:
    """(478, 3) metres: the fused identity ``ident`` (image proportions) in true perspective.

    Each view's perspective correction (:func:`metric_frame_points` minus its ``local``
    (V, 478, 3) :func:`face_frame_points`: the same pose removed, so the difference is the
    correction alone, a few mm) is averaged per vertex with the fusion's ``weights`` (V, 478)
    and added; the result takes the views' own metric size in true perspective, weighted as
    the identity's is (``scale_w`` (V,), :func:`weighted_size`). Each correction is taken in
    its view's own face frame, not turned by the small rotation that aligned the view on the
    fused shape (a degree or so: micrometres on a correction of millimetres). On renders with
    exact truth the exported model is closer to the true head than the identity shape
    (docs/accuracy.md, R3).
    """
    metric = np.stack([metric_frame_points(v.face) for v in views])  # (V, 478, 3)
    w = np.asarray(weights, dtype=np.float64) + 1e-6  # a vertex no view sees: plain mean
    shape = ident + (w[..., None] * (metric - local)).sum(0) / w.sum(0)[:, None]
    return shape * (weighted_size(metric, scale_w) / face_size(shape))


def largest_face(faces: Sequence[FaceResult]) -> Optional[FaceResult]:
    """The face with the largest box, or None."""
    if not faces:
        return None
    return max(faces, key=lambda f: float((f.box[2] - f.box[0]) * (f.box[3] - f.box[1])))


def views_from_images(engine, images: Sequence[np.ndarray],
                      names: Optional[Sequence[str]] = None) -> List[EnrollmentView]:
    """Run ``engine`` (a :class:`~face3d_ros.core.pipeline.engine.FaceEngine`) on RGB images (one
    batch) and take the largest face of each as a view, its landmarks refined on their own crop as
    the tracker (and so the node) refines them. Raises ValueError naming an image without a
    face."""
    names = list(names) if names is not None else [f"view{i}" for i in range(len(images))]
    if len(names) != len(images):
        raise ValueError(f"{len(images)} images but {len(names)} names")
    rgb = [np.ascontiguousarray(np.asarray(im)[..., :3]) for im in images]
    frames = engine.process_batch(rgb, refine_rois=1)
    views = []
    for n, im, fr in zip(names, rgb, frames):
        face = largest_face(fr.faces)
        if face is None:
            raise ValueError(f"no face found in view '{n}': use a photo where the face is "
                             "visible and at least ~60 px wide")
        views.append(EnrollmentView(n, im, face))
    return views


# -- preview rendering ---------------------------------------------------------------------
def _rot(yaw_deg: float, pitch_deg: float) -> np.ndarray:
    a, b = np.radians(yaw_deg), np.radians(pitch_deg)
    rz = np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])
    ry = np.array([[np.cos(b), 0.0, np.sin(b)], [0.0, 1.0, 0.0], [-np.sin(b), 0.0, np.cos(b)]])
    return rz @ ry


def render_model(model: FaceModel, yaw_deg: float = 0.0, pitch_deg: float = 0.0,
                 size: int = 256, vertices: Optional[np.ndarray] = None,
                 background: Tuple[int, int, int] = (255, 255, 255),
                 shading: float = 0.35) -> np.ndarray:
    """(size, size, 3) uint8 RGB orthographic picture of the textured model seen from the
    front, the head turned by yaw and pitch (degrees, signs as ``core.types``: yaw > 0 turned to
    the subject's left), lit from the viewer (``shading`` in [0, 1] mixes in Lambert shading).

    vertices: (478 or 468, 3) m overrides the model's shape (e.g. an expression applied).
    """
    v = model.mesh_vertices if vertices is None else np.asarray(vertices)[:NUM_MESH]
    v = np.asarray(v, dtype=np.float64) - model.mesh_vertices.astype(np.float64).mean(0)
    p = v @ _rot(yaw_deg, pitch_deg).T  # face turned; the viewer looks along -x
    extent = 0.24  # metres across the picture
    k = size / extent
    xy = np.stack((p[:, 1] * k + size / 2, -p[:, 2] * k + size / 2), axis=-1)
    tri_img, bary, _ = rasterize(xy, -p[:, 0], model.triangles, (size, size))
    out = np.empty((size, size, 3), dtype=np.float64)
    out[:] = background
    m = tri_img >= 0
    uv = _interp(model.uv.astype(np.float64), tri_img, bary, model.triangles)
    th, tw = model.texture.shape[:2]
    tex = cv2.remap(model.texture, (uv[..., 0] * tw - 0.5).astype(np.float32),
                    ((1.0 - uv[..., 1]) * th - 0.5).astype(np.float32), cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REPLICATE).astype(np.float64)
    n = vertex_normals(p, model.triangles)
    lam = np.clip(_interp(n[:, :1], tri_img, bary, model.triangles)[..., 0], 0.0, 1.0)
    shade = (1.0 - shading) + shading * lam
    out[m] = tex[m] * shade[m][:, None]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
