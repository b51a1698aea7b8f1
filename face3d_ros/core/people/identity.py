"""Identity and expression: split a face into its identity shape and an expression displacement,
scale the expression (intensity 0.0 to 1.5), move it to another identity, and fuse the identity of
a tracked face over time.

All shapes are (478, 3) metres in the face frame of ``core.types`` (x out of the face, y the
subject's left, z up, origin between the eyes): the 468 mesh vertices then the two irises.

* :func:`split` aligns an observed face onto an identity (similarity fit on the rigid points)
  and returns the expression displacement = aligned face - identity.
* :func:`apply_expression` is ``identity + intensity * displacement``: 0 gives the identity,
  1 the observed expression, 1.5 an exaggerated one.
* :func:`transfer` expresses a displacement in the source's normalised face frame (divided by
  the source's face size, per region by the size of that region: eyes, brows, mouth) and
  scales it to the target's, so that it moves across identities. The expression coefficients
  of ``core.pipeline.expression`` follow the displacement (:func:`expression_of`).
* :func:`neutralize` estimates the identity of a single observation: in the regions an
  expression moves (mouth and jaw, eyes, brows) the deviation from the canonical neutral face
  (fitted to the person's rigid points) is removed in proportion to the expression
  coefficients of that region. Identity detail there is only as good as that prior.
* :class:`RunningIdentity` fuses the identity of a tracked face frame by frame (per-vertex
  Huber mean with a forgetting factor, visibility-weighted) and gives de-flickered meshes.
* :class:`Reidentifier` matches tracked faces to enrolled identities by shape
  (:func:`shape_distance` of each track's running identity on :data:`REID_INDICES`), with a
  threshold, a margin to the second-best identity and a clear "unknown" answer. Shape alone
  separates few people; see docs/enrollment.md for the measured figures and the limits.

One module (over 400 lines) because split, expression transfer, neutralisation and the
running identity all work on the same aligned face-frame shapes and rigid-point fit.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from ..pipeline.canonical import load_canonical
from ..pipeline.expression import (EXPRESSION_NAMES, canonical_measures,
                                   coefficients_from_measures, expression_coefficients, measures)
from ..pipeline.geometry import RIGID_INDICES
from ..types import NUM_LANDMARKS, NUM_MESH

#: Expression regions: the landmarks that define each, and the coefficients that gate it.
REGION_LANDMARKS: Dict[str, Tuple[int, ...]] = {
    "mouth": (0, 13, 14, 17, 37, 39, 40, 61, 78, 80, 81, 82, 84, 87, 88, 91, 95, 146, 178,
              181, 185, 191, 267, 269, 270, 291, 308, 310, 311, 312, 314, 317, 318, 321, 324,
              375, 402, 405, 409, 415, 152, 148, 377, 176, 400),
    "eye_right": (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246),
    "eye_left": (263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388,
                 466),
    "brow_right": (70, 63, 105, 66, 107, 55, 65, 52, 53, 46),
    "brow_left": (300, 293, 334, 296, 336, 285, 295, 282, 283, 276),
}
REGION_GATES: Dict[str, Tuple[str, ...]] = {
    "mouth": ("jaw_open", "mouth_smile_left", "mouth_smile_right", "mouth_pucker",
              "mouth_funnel"),
    "eye_right": ("eye_blink_right", "eye_wide_right", "cheek_squint_right"),
    "eye_left": ("eye_blink_left", "eye_wide_left", "cheek_squint_left"),
    "brow_right": ("brow_up", "brow_down_right"),
    "brow_left": ("brow_up", "brow_down_left"),
}
#: Inner and outer radius (metres, canonical face) of each region's soft mask: full weight
#: within the inner radius of a defining landmark, falling to zero at the outer one.
REGION_RADII: Dict[str, Tuple[float, float]] = {
    "mouth": (0.006, 0.028), "eye_right": (0.003, 0.012), "eye_left": (0.003, 0.012),
    "brow_right": (0.004, 0.014), "brow_left": (0.004, 0.014),
}
_IRIS_EYE = {"eye_right": slice(468, 473), "eye_left": slice(473, 478)}

#: Maximum intensity accepted by :func:`apply_expression`.
MAX_INTENSITY = 1.5


@lru_cache(maxsize=1)
def region_masks() -> Dict[str, np.ndarray]:
    """Region name -> (478,) soft mask in [0, 1] on the canonical face (irises follow the
    mask of their eye region)."""
    can = load_canonical().vertices.astype(np.float64)
    out = {}
    for name, idx in REGION_LANDMARKS.items():
        r0, r1 = REGION_RADII[name]
        d = np.linalg.norm(can[:, None] - can[list(idx)][None], axis=-1).min(axis=1)
        m = np.clip((r1 - d) / (r1 - r0), 0.0, 1.0)
        m[NUM_MESH:] = 0.0
        if name in _IRIS_EYE:
            m[_IRIS_EYE[name]] = 1.0
        out[name] = m
    return out


def face_size(shape: np.ndarray) -> float:
    """Size of a face (metres): RMS distance of its rigid points from their centroid."""
    p = np.asarray(shape, dtype=np.float64)[list(RIGID_INDICES)]
    return float(np.sqrt(((p - p.mean(0)) ** 2).sum(-1).mean()))


def _rigid_weights() -> np.ndarray:
    w = np.full(NUM_LANDMARKS, 0.05)
    w[list(RIGID_INDICES)] = 1.0
    w[NUM_MESH:] = 0.0
    return w


def align(points: np.ndarray, reference: np.ndarray, scale: bool = True,
          weights: Optional[np.ndarray] = None) -> np.ndarray:
    """``points`` (P, 3) moved onto ``reference`` (P, 3) by the weighted similarity (or rigid,
    ``scale=False``) transform that fits them best; default weights favour the rigid points."""
    src = np.asarray(points, dtype=np.float64)
    dst = np.asarray(reference, dtype=np.float64)
    w = _rigid_weights()[:len(src)] if weights is None else np.asarray(weights, np.float64)
    w = w / w.sum()
    mu_s, mu_d = w @ src, w @ dst
    xs, xd = src - mu_s, dst - mu_d
    cov = (w[:, None] * xd).T @ xs
    u, sig, vh = np.linalg.svd(cov)
    d = np.sign(np.linalg.det(u @ vh))
    diag = np.array([1.0, 1.0, d])
    rot = u @ np.diag(diag) @ vh
    s = float((sig * diag).sum() / (w @ (xs ** 2).sum(-1))) if scale else 1.0
    return s * (xs @ rot.T) + mu_d


def _check_shape(name: str, a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.shape != (NUM_LANDMARKS, 3):
        raise ValueError(f"{name} must be (478, 3) face-frame points in metres, got {a.shape}; "
                         "take core.people.enrollment.face_frame_points(face)")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} holds non-finite values")
    return a


def split(face_points: np.ndarray, identity: np.ndarray) -> np.ndarray:
    """(478, 3) expression displacement (metres, the identity's face frame) of an observation.

    face_points: (478, 3) metres in the face frame (pose removed). identity: (478, 3) metres.
    The observation is aligned onto the identity (similarity on the rigid points) first, so
    ``apply_expression(identity, split(x, identity), 1.0)`` is the aligned observation.
    """
    x = _check_shape("face_points", face_points)
    ident = _check_shape("identity", identity)
    return align(x, ident) - ident


def apply_expression(identity: np.ndarray, displacement: np.ndarray,
                     intensity: float = 1.0) -> np.ndarray:
    """(478, 3) ``identity + intensity * displacement``; intensity in [0, 1.5]."""
    if not (0.0 <= float(intensity) <= MAX_INTENSITY):
        raise ValueError(f"intensity must be in [0, {MAX_INTENSITY}], got {intensity!r}")
    return _check_shape("identity", identity) + float(intensity) * _check_shape(
        "displacement", displacement)


def _region_extent(shape: np.ndarray, name: str) -> np.ndarray:
    p = shape[list(REGION_LANDMARKS[name])]
    return np.maximum(p.max(0) - p.min(0), 1e-4)


def transfer_scale(source_identity: np.ndarray, target_identity: np.ndarray,
                   per_region: bool = True) -> np.ndarray:
    """(478, 3) per-vertex, per-axis factors that take a displacement from the source's face to
    the target's: the ratio of face sizes, and inside each expression region the ratio of the
    region's extents along y and z (x, the depth, keeps the face-size ratio)."""
    src = _check_shape("source_identity", source_identity)
    tgt = _check_shape("target_identity", target_identity)
    g = face_size(tgt) / face_size(src)
    factors = np.full((NUM_LANDMARKS, 3), g)
    if per_region:
        masks = region_masks()
        for name in REGION_LANDMARKS:
            ratio = np.full(3, g)
            ratio[1:] = (_region_extent(tgt, name) / _region_extent(src, name))[1:]
            ratio = np.clip(ratio, 0.5 * g, 2.0 * g)
            m = masks[name][:, None]
            factors = (1.0 - m) * factors + m * ratio[None]
    return factors


def normalise_displacement(displacement: np.ndarray, identity: np.ndarray) -> np.ndarray:
    """(478, 3) displacement divided by the face size of ``identity`` (unitless)."""
    return _check_shape("displacement", displacement) / face_size(identity)


def transfer(displacement: np.ndarray, source_identity: np.ndarray,
             target_identity: np.ndarray, per_region: bool = True) -> np.ndarray:
    """(478, 3) the source's expression displacement made for the target's face (metres).

    Apply it with :func:`apply_expression` on ``target_identity``.
    """
    return _check_shape("displacement", displacement) * transfer_scale(
        source_identity, target_identity, per_region)


def expression_of(shape: np.ndarray, identity: Optional[np.ndarray] = None
                  ) -> Dict[str, float]:
    """Named expression coefficients (``core.pipeline.expression``) of a face-frame shape (478, 3),
    measured against ``identity`` (the person's neutral shape) when given, else against the
    canonical (average) face (:func:`canonical_coefficients`)."""
    x = _check_shape("shape", shape)
    values = (canonical_coefficients(x) if identity is None
              else expression_coefficients(x[None], _check_shape("identity", identity))[0])
    return {n: float(v) for n, v in zip(EXPRESSION_NAMES, values)}


def canonical_coefficients(face_points: np.ndarray) -> np.ndarray:
    """(K,) expression coefficients (``EXPRESSION_NAMES`` order) of a face-frame shape
    (478, 3) measured against the canonical face: the reference :func:`neutralize` takes the
    expression off towards. (The engine publishes coefficients measured against the
    expression neutral, whose mouth is relaxed and closed; the canonical face's is half a
    smile, so those would not match the displacement removed here.)"""
    m = measures(_check_shape("face_points", face_points)[None])
    return coefficients_from_measures(m, canonical_measures())[0]


def expression_gates(coefficients: np.ndarray) -> Dict[str, float]:
    """Region -> how much of its deviation from neutral is expression, in [0, 1]: the largest
    coefficient (ordered as ``EXPRESSION_NAMES``) that moves the region."""
    c = dict(zip(EXPRESSION_NAMES, np.asarray(coefficients, dtype=np.float64)))
    return {r: float(np.clip(max(c[n] for n in names), 0.0, 1.0))
            for r, names in REGION_GATES.items()}


def neutral_reference(face_points: np.ndarray) -> np.ndarray:
    """(478, 3) the canonical neutral face fitted to an observation's rigid points by a per-axis
    scaled affine map (the person's proportions, the canonical's neutral mouth, eyes, brows).

    The per-axis scales are taken along the face's own axes: the observation is first brought
    into the canonical face's frame (similarity on the rigid points) and the fit is carried
    back, so the result turns with the observation (the same whatever frame it comes in).
    """
    x = _check_shape("face_points", face_points)
    can = load_canonical().vertices.astype(np.float64)
    local = align(x, can)
    idx = list(RIGID_INDICES)
    out = np.empty_like(can)
    for k in range(3):
        a = np.stack((can[idx, k], np.ones(len(idx))), axis=-1)
        coef, *_ = np.linalg.lstsq(a, local[idx, k], rcond=None)
        out[:, k] = can[:, k] * coef[0] + coef[1]
    return align(out, x)


def neutralize(face_points: np.ndarray, coefficients: Optional[np.ndarray] = None,
               reference: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Identity estimate and expression displacement of one observation (each (478, 3) m).

    In each expression region the deviation from the neutral reference is taken as
    expression in proportion to that region's gate (:func:`expression_gates` of the
    coefficients, computed from the points when None); elsewhere the shape is identity.
    reference: (478, 3) the person's own neutral shape, in the observation's frame (e.g. the
    other views of an enrolment); None: :func:`neutral_reference`, the canonical face fitted
    to the observation. The coefficients must be measured against the same reference
    (:func:`canonical_coefficients` for None; computed so when None), not the ones the engine
    publishes.
    """
    x = _check_shape("face_points", face_points)
    if coefficients is None:
        coefficients = (canonical_coefficients(x) if reference is None else
                        expression_coefficients(x[None], _check_shape("reference", reference))[0])
    gates = expression_gates(coefficients)
    masks = region_masks()
    amount = np.zeros(NUM_LANDMARKS)
    for r, g in gates.items():
        amount = np.maximum(amount, g * masks[r])
    ref = neutral_reference(x) if reference is None else _check_shape("reference", reference)
    disp = amount[:, None] * (x - ref)
    return x - disp, disp


@dataclass(frozen=True)
class IdentityUpdate:
    """One frame through :class:`RunningIdentity`.

    identity: (478, 3) m, the fused identity after this frame. displacement: (478, 3) m, this
    frame's expression displacement against it. mesh: (478, 3) m, the de-flickered face
    (identity + filtered displacement) in the identity's face frame. frames: frames fused.
    """

    identity: np.ndarray
    displacement: np.ndarray
    mesh: np.ndarray
    frames: int


class RunningIdentity:
    """Running robust fusion of the identity of one tracked face, and de-flickered meshes.

    Per frame (:meth:`update`): the observation (face-frame points) is aligned onto the current
    identity; its neutral estimate (:func:`neutralize`) updates a per-vertex Huber mean whose
    step is ``max(1 / n, forgetting)`` (an average of the first frames, then an exponential
    memory of about ``1 / forgetting`` frames), weighted per vertex by visibility. A per-vertex
    noise level (running mean absolute deviation) shrinks displacements smaller than it
    (``deadband`` times the noise) and a first-order filter (``smoothing``) smooths the rest, so
    still faces stop flickering while real expressions pass.

    forgetting: in (0, 1]. huber_k: residuals beyond k noise levels are down-weighted.
    deadband: >= 0. smoothing: in (0, 1], weight of the newest displacement.
    """

    def __init__(self, forgetting: float = 0.02, huber_k: float = 2.0, deadband: float = 1.0,
                 smoothing: float = 0.5) -> None:
        if not 0.0 < forgetting <= 1.0:
            raise ValueError(f"forgetting must be in (0, 1], got {forgetting!r}")
        if not 0.0 < smoothing <= 1.0:
            raise ValueError(f"smoothing must be in (0, 1], got {smoothing!r}")
        if huber_k <= 0.0 or deadband < 0.0:
            raise ValueError("huber_k must be > 0 and deadband >= 0")
        self.forgetting, self.huber_k = forgetting, huber_k
        self.deadband, self.smoothing = deadband, smoothing
        self.reset()

    def reset(self) -> None:
        """Forget everything (a new person)."""
        self._mean: Optional[np.ndarray] = None
        self._noise: Optional[np.ndarray] = None
        self._wsum: Optional[np.ndarray] = None
        self._disp: Optional[np.ndarray] = None
        self.frames = 0

    @property
    def identity(self) -> Optional[np.ndarray]:
        """(478, 3) m, the current identity estimate (None before the first frame)."""
        return None if self._mean is None else self._mean.copy()

    def update(self, face_points: np.ndarray, weights: Optional[np.ndarray] = None
               ) -> IdentityUpdate:
        """Fuse one observation (478, 3) m; weights: (478,) per-vertex visibility in [0, 1].
        Its expression is measured from the points (:func:`neutralize`)."""
        x = _check_shape("face_points", face_points)
        w = np.ones(NUM_LANDMARKS) if weights is None else np.clip(
            np.asarray(weights, dtype=np.float64).reshape(NUM_LANDMARKS), 0.0, 1.0)
        if self._mean is None:
            neutral, _ = neutralize(x)
            self._mean = neutral
            self._noise = np.full(NUM_LANDMARKS, np.inf)  # set by the second frame
            self._wsum = w.copy()
            self._disp = np.zeros_like(x)
            self.frames = 1
            disp = x - neutral
            self._disp = disp
            return IdentityUpdate(self._mean.copy(), disp, x.copy(), 1)
        assert self._noise is not None and self._wsum is not None and self._disp is not None
        aligned = align(x, self._mean)
        neutral, _ = neutralize(aligned)
        r = neutral - self._mean
        rn = np.linalg.norm(r, axis=-1)
        if self.frames == 1:  # first residuals: the noise level (robust to single outliers)
            self._noise = np.maximum(rn, float(np.median(rn)))
        huber = np.minimum(1.0, self.huber_k * self._noise / np.maximum(rn, 1e-12))
        self._wsum = self._wsum + w
        step = np.maximum(w / np.maximum(self._wsum, 1e-9), self.forgetting * w) * huber
        self._mean = self._mean + step[:, None] * r
        self._noise = self._noise + np.maximum(1.0 / (self.frames + 1), 0.1) * (
            np.minimum(rn, 3.0 * self._noise) - self._noise)
        self.frames += 1
        disp = aligned - self._mean
        mag = np.linalg.norm(disp, axis=-1)
        shrink = np.clip(1.0 - self.deadband * self._noise / np.maximum(mag, 1e-12), 0.0, 1.0)
        self._disp = self.smoothing * disp * shrink[:, None] + (1.0 - self.smoothing) * self._disp
        return IdentityUpdate(self._mean.copy(), disp, self._mean + self._disp, self.frames)


# -- re-identification ---------------------------------------------------------------------
#: Points compared by :func:`shape_distance`: the rigid points (forehead, nose bridge, eye
#: corners, cheekbones, temples) plus the nose (tip, wings, nostrils, columella), more eye
#: corners, the chin and the jaw sides. Expression moves them little; the mouth, lids and brows
#: are left out.
REID_INDICES: Tuple[int, ...] = tuple(sorted(set(RIGID_INDICES) | {
    1, 2, 4, 5, 6, 168, 197, 195, 98, 327, 48, 278, 64, 294, 33, 133, 362, 263, 130, 359, 243,
    463, 226, 446, 152, 234, 454, 10, 127, 356, 93, 323, 132, 361}))

#: Largest :func:`shape_distance` (unitless, a fraction of the face size) at which a track's
#: running identity is taken as an enrolled person. Chosen from the figures measured by
#: test/test_reidentify.py (docs/enrollment.md), models and live faces both from the tracker:
#: same person (perturbed copies of the enrolment photos) at most 0.013 from the third tracked
#: frame on, the population-mean face 0.019-0.027, another person 0.031 and more.
REID_THRESHOLD = 0.016
#: Least gap between the second-best and the best distance for a decision.
REID_MARGIN = 0.005
#: Frames a track must have fused before it can be recognised.
REID_MIN_FRAMES = 3


def shape_distance(face_points: np.ndarray, identity: np.ndarray,
                   indices: Sequence[int] = REID_INDICES) -> float:
    """Unitless identity-shape distance of an observation to an identity.

    face_points, identity: (478, 3) metres in the face frame. The observation is moved onto the
    identity by the similarity transform that fits ``indices`` best (so distance and head size
    drop out), and the RMS residual over ``indices`` is divided by ``face_size(identity)``.
    0 is the same shape; 0.01 is about 0.5 mm RMS on an adult face.
    """
    x = _check_shape("face_points", face_points)
    ident = _check_shape("identity", identity)
    idx = list(indices)
    w = np.zeros(NUM_LANDMARKS)
    w[idx] = 1.0
    moved = align(x, ident, weights=w)
    rms = float(np.sqrt(((moved[idx] - ident[idx]) ** 2).sum(-1).mean()))
    return rms / face_size(ident)


@dataclass(frozen=True)
class Match:
    """The answer of :class:`Reidentifier` for one track after one frame.

    person_id: the matched identity's id, or -1 (unknown). name: its name ("" when unknown).
    distance: :func:`shape_distance` of the track's running identity to the best identity
    (inf with no identity enrolled). second: the same to the second best (inf when fewer than
    two). frames: frames fused for the track. known: True when recognised.
    reason: why the answer is unknown ("" when known): "no identities", "too few frames",
    "too far", "ambiguous".
    """

    person_id: int
    name: str
    distance: float
    second: float
    frames: int
    known: bool
    reason: str = ""


UNKNOWN_ID = -1


class Reidentifier:
    """Matches tracked faces to enrolled identities by identity shape, frame by frame.

    Each track (by its tracker id) has a :class:`RunningIdentity`; every :meth:`update` fuses
    the face's points (expression removed as far as one frame allows) and compares the running
    identity with every enrolled identity (:func:`shape_distance`). A track is recognised as
    the nearest identity when it has fused at least ``min_frames`` frames, the distance is at
    most ``threshold`` and the second-best identity is at least ``margin`` further away;
    otherwise the answer is unknown, with the reason. Frames with the head turned further than
    ``max_angle_deg`` (yaw or pitch) are not fused (their landmarks are least reliable); the
    previous answer stands.

    threshold, margin: unitless (fractions of the face size). min_frames: >= 1.
    """

    def __init__(self, threshold: float = REID_THRESHOLD, margin: float = REID_MARGIN,
                 min_frames: int = REID_MIN_FRAMES, max_angle_deg: float = 35.0) -> None:
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {threshold!r}")
        if not 0.0 <= margin < 1.0:
            raise ValueError(f"margin must be in [0, 1), got {margin!r}")
        if int(min_frames) < 1:
            raise ValueError(f"min_frames must be >= 1, got {min_frames!r}")
        self.threshold, self.margin = float(threshold), float(margin)
        self.min_frames, self.max_angle_deg = int(min_frames), float(max_angle_deg)
        self._ids: List[int] = []
        self._names: List[str] = []
        self._shapes: List[np.ndarray] = []
        self._tracks: Dict[int, RunningIdentity] = {}
        self._last: Dict[int, Match] = {}

    @property
    def person_ids(self) -> Tuple[int, ...]:
        """Ids of the enrolled identities, in the order they were added."""
        return tuple(self._ids)

    def add(self, person_id: int, name: str, vertices: np.ndarray) -> None:
        """Enrol (or replace) identity ``person_id`` (>= 0) with shape (478, 3) m, face frame.

        Every track is judged again from its next frame.
        """
        if int(person_id) < 0:
            raise ValueError(f"person_id must be >= 0, got {person_id}")
        shape = _check_shape("vertices", vertices)
        if person_id in self._ids:
            k = self._ids.index(person_id)
            self._names[k], self._shapes[k] = str(name), shape
        else:
            self._ids.append(int(person_id))
            self._names.append(str(name))
            self._shapes.append(shape)
        self._last.clear()

    def compare(self, face_points: np.ndarray) -> List[Tuple[int, float]]:
        """(person id, :func:`shape_distance`) of a face-frame shape (478, 3) m to every
        identity, nearest first."""
        d = [(pid, shape_distance(face_points, s)) for pid, s in zip(self._ids, self._shapes)]
        return sorted(d, key=lambda t: t[1])

    def decide(self, face_points: np.ndarray, frames: int) -> Match:
        """The answer for an identity estimate (478, 3) m fused from ``frames`` frames."""
        ranked = self.compare(face_points)
        if not ranked:
            return Match(UNKNOWN_ID, "", np.inf, np.inf, frames, False, "no identities")
        best_id, best = ranked[0]
        second = ranked[1][1] if len(ranked) > 1 else np.inf
        reason = ("too few frames" if frames < self.min_frames else
                  "too far" if best > self.threshold else
                  "ambiguous" if second - best < self.margin else "")
        if reason:
            return Match(UNKNOWN_ID, "", best, second, frames, False, reason)
        return Match(best_id, self._names[self._ids.index(best_id)], best, second, frames, True)

    def update(self, track_id: int, face_points: np.ndarray, yaw_deg: float = 0.0,
               pitch_deg: float = 0.0) -> Match:
        """Fuse one frame of track ``track_id`` (>= 0) and answer who it is.

        face_points: (478, 3) m in the face frame (``enrollment.face_frame_points``). yaw_deg,
        pitch_deg: the head angles (degrees).
        """
        running = self._tracks.get(track_id)
        if running is None:
            running = self._tracks[track_id] = RunningIdentity()
        turned = max(abs(float(yaw_deg)), abs(float(pitch_deg))) > self.max_angle_deg
        if not turned or running.identity is None:
            running.update(face_points)
        elif track_id in self._last:
            return self._last[track_id]
        identity = running.identity
        assert identity is not None
        match = self.decide(identity, running.frames)
        self._last[track_id] = match
        return match

    def prune(self, alive: Iterable[int]) -> None:
        """Forget the tracks whose ids are not in ``alive`` (they left the view)."""
        keep = set(int(i) for i in alive)
        for tid in [t for t in self._tracks if t not in keep]:
            del self._tracks[tid]
            self._last.pop(tid, None)

    def track_of(self, person_id: int) -> Optional[int]:
        """The track currently recognised as ``person_id``, or None."""
        for tid, m in self._last.items():
            if m.known and m.person_id == person_id:
                return tid
        return None
