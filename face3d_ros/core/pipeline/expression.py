"""Named expression coefficients from metric landmarks, invariant to distance and head turn.

Each coefficient is a geometric measure taken in the face frame (pose removed, size divided by
the inter-ocular distance), compared with the same measure on a neutral face and mapped to
[0, 1] by a documented span: 0 is the neutral face, 1 a full expression.

The neutral face is the person's own when known (their enrolled identity), else the stored
*expression neutral* (``canonical.CanonicalFace.expression_neutral``): the measures of the
eyes (:data:`EYE_MEASURES`) taken on the canonical face (portraits with open eyes), those of
the mouth and brows on neutral faces (a head scan and a portrait with a relaxed, closed mouth;
``tools.make_canonical``). The canonical face itself is not neutral there: one of its two
portraits smiles with her mouth open, so against it a relaxed mouth read as puckered and a
smile as nothing.

| name | measure (face frame, / inter-ocular distance) | span for 1.0 |
|---|---|---|
| eye_blink_left/right | lid opening / eye width (``eye_openness``) < 85 % of neutral * | to 0.10 |
| eye_wide_left/right | lid opening / eye width above 115 % of neutral * | +50 % |
| jaw_open | inner-lip gap (13-14) | 0.45 |
| mouth_smile_left/right | corner raised, and out from the nose midline | 0.06 rise / 0.12 out |
| brow_up | mean brow height above the nose bridge (168, 6) | +0.12 (~7.5 mm, a full raise) |
| brow_down_left/right | brow height below neutral | -0.05 |
| mouth_pucker | mouth width below neutral | -30 % |
| mouth_funnel | mouth_pucker's narrowing x lips apart (inner-lip gap above neutral) | gap +0.10 |
| cheek_squint_left/right | lower lid to cheek distance below neutral | -30 % |

* 90 % and 110 % of the person's own open eye (:class:`OpenEyeBaseline`).

A tracked face is measured against its person's own neutral (:class:`OwnNeutral`, one per
track): their open eye, and their *resting face* (:class:`RestingFace`: the median of the other
measures over the last seconds of the track with the head facing the camera), the person-
specific normalisation of facial action unit tools (Baltrusaitis et al., FG 2015; OpenFace
2.0). People's resting brows, mouth corners and lips differ from the average's by as much as
a small expression: the facecap head's brows sit ~3 mm higher and read brow_up 0.38 against
the average (docs/accuracy.md). A resting face is taken to differ from the average's by no
more than neutral faces do (:func:`resting_spread`: per measure and direction, what a neutral
face reads of the coefficient that way drives, :func:`neutral_levels`), so a person who keeps
smiling still reads most of the smile.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

from .geometry import CLOSED_EYE_OPENNESS, eye_openness

EXPRESSION_NAMES: Tuple[str, ...] = (
    "eye_blink_left", "eye_blink_right", "eye_wide_left", "eye_wide_right", "jaw_open",
    "mouth_smile_left", "mouth_smile_right", "brow_up", "brow_down_left", "brow_down_right",
    "mouth_pucker", "mouth_funnel", "cheek_squint_left", "cheek_squint_right",
)

#: Eye openness below (1 - dead zone) x the neutral's starts a blink, above (1 + dead zone) x
#: an eye_wide. Against the stored (average) neutral: people's open eyes differ about this much
#: (the facecap head's read 14 % more open than the canonical face's).
POPULATION_EYE_DEAD_ZONE = 0.15
#: The same against the person's own open eye (:class:`OpenEyeBaseline`): twice the spread of
#: one open eye's openness over head poses within +-20 deg (5 % on facecap renders, 25 poses).
OWN_EYE_DEAD_ZONE = 0.10

#: Inner-lip gap above neutral (/ inter-ocular distance, ~6 mm) at which a narrowed mouth reads
#: as fully funnelled: a funnel (FACS AU22) is a pucker's narrowing (AU18) with the lips apart.
#: It is measured in the image plane: the mesh network's relative depth does not move with the
#: lips (on facecap renders lip protrusion read -0.287 at mouthFunnel 0 and -0.284 at 1, of
#: the eye distance; measured so, mouth_funnel read 0.27-0.31 at every weight and 0.47-0.54 on
#: the neutral face turned by 30 deg).
FUNNEL_LIPS_APART = 0.10

#: Spans for 1.0 (module docstring's table) of the coefficients not named elsewhere: the mouth
#: corners' rise and spread (mouth_smile, each half of it), the brows' drop (brow_down), the
#: inner-lip gap (jaw_open), and the fractions of the neutral's mouth width (mouth_pucker) and
#: lower lid to cheek distance (cheek_squint).
SMILE_RISE, SMILE_OUT = 0.06, 0.12
BROW_DROP = 0.05
JAW_GAP = 0.45
PUCKER_FRACTION = CHEEK_SQUINT_FRACTION = 0.3

#: Expression coefficients up to this are what a neutral face reads (issue 9's target), against
#: the stored (average) neutral: how far a person's own neutral may move a coefficient
#: (:class:`OwnNeutral`), and what enrolment leaves in a view (``core.people.enrollment``).
NEUTRAL_COEFF = 0.15
#: Coefficients that a neutral face reads higher, against the canonical face (docs/accuracy.md:
#: the canonical is the average of two portraits, one smiling with her mouth open), measured
#: on the frontal renders of two neutral heads: mouth_pucker 0.51-0.54, brow_up 0.32-0.40 (up
#: to 0.49 while the brows were measured above the eye corners). Levels just above those
#: readings, not per-person offsets. (mouth_funnel, which needs the lips apart, reads under
#: 0.05 there; it read 0.49-0.60 while it was measured by the lips' depth.)
NEUTRAL_LEVELS: Dict[str, float] = {"mouth_pucker": 0.6, "brow_up": 0.5}

#: Brow raise (brow height above the nose bridge / inter-ocular distance) read as brow_up
#: 1.0: a full raise lifts the brows by 7-10 mm, about 0.12 of the 62 mm between the eyes.
#: (With 0.08, a neutral face whose brows sit 3 mm above the average's, as the facecap
#: head's do, read 0.6.)
BROW_RAISE = 0.12

# Mesh indices (subject's right / left).
_EYE = {"right": (33, 133), "left": (263, 362)}  # outer, inner corner
_LOWER_LID = {"right": 145, "left": 374}
_BROW = {"right": (105, 66, 107), "left": (334, 296, 336)}
#: The brows' height is taken above the nose bridge between the eyes (mesh 168 and 6), not
#: above the eye corners: on renders with exact truth the corners' height moves with the
#: head's pitch and the eyes' own, the bridge's with neither. Over head pitch -30..30 the
#: brows above the corners changed by 0.089 / 0.078 of the eye distance (the head scan /
#: facecap: the neutral scan looking up 20 deg read brow_down 0.8), above the bridge by
#: 0.020 / 0.035; over eye pitch -20..20, 0.025 against 0.010; turning the head by 30 deg,
#: -0.03 against -0.017; a full smile +0.013 against -0.001. The brows' own motion shows as
#: much (browInnerUp +0.032, browDown -0.045 at full weight, against +0.027 / -0.072).
_BROW_REFERENCE = (168, 6)
#: The mouth corners' spread is taken from the midline of the nose's lower end (tip and
#: subnasale, mesh 1 and 2), not from the face frame's, which the pose fit sets between the
#: eyes: with the head turned by 30 deg the mesh network puts the lower face 4-5 mm towards
#: the nearer side in that frame (the neutral facecap head read mouth_smile 0.33-0.35 on that
#: side), the nose's end with it. A one-sided smile moves the lips' middle with it, not the
#: nose (0.004 of the eye distance at full mouthSmile_L, the lips' middle 0.015).
_NOSE_MIDLINE = (1, 2)
_CORNER = {"right": 61, "left": 291}
_CHEEK = {"right": 50, "left": 280}
_UPPER_INNER_LIP, _LOWER_INNER_LIP = 13, 14
_UPPER_LIP, _LOWER_LIP = 0, 17


#: The raw measures (:func:`measures`), in the order of the stored expression neutral.
MEASURE_NAMES: Tuple[str, ...] = (
    "open_right", "brow_right", "rise_right", "out_right", "cheek_right",
    "open_left", "brow_left", "rise_left", "out_left", "cheek_left",
    "gap", "width")
#: Measures of the eyes: the expression neutral takes them from faces with open eyes.
EYE_MEASURES: Tuple[str, ...] = ("open_right", "cheek_right", "open_left", "cheek_left")
#: Measures of a person's resting face (:class:`RestingFace`): all but the eyes' openness,
#: which :class:`OpenEyeBaseline` learns apart (an eye is open or not; the rest is a shape).
RESTING_MEASURES: Tuple[str, ...] = tuple(n for n in MEASURE_NAMES if not n.startswith("open_"))


def neutral_levels() -> np.ndarray:
    """(K,) what a neutral face reads of each coefficient against the stored neutral
    (``EXPRESSION_NAMES`` order): :data:`NEUTRAL_LEVELS`, else :data:`NEUTRAL_COEFF`."""
    return np.array([NEUTRAL_LEVELS.get(n, NEUTRAL_COEFF) for n in EXPRESSION_NAMES])


def measures(local: np.ndarray, openness: Optional[np.ndarray] = None
             ) -> Dict[str, np.ndarray]:
    """Raw measures (:data:`MEASURE_NAMES`) of (N, 478, 3) face-frame points; each (N,),
    unitless. openness: (N, 2) their ``geometry.eye_openness`` when already computed."""
    eye_c = {s: 0.5 * (local[:, o] + local[:, i]) for s, (o, i) in _EYE.items()}
    if openness is None:
        openness = eye_openness(local)  # (N, 2) right, left
    iod = np.linalg.norm(eye_c["left"] - eye_c["right"], axis=-1)
    m: Dict[str, np.ndarray] = {}
    lip_mid_z = 0.5 * (local[:, _UPPER_LIP, 2] + local[:, _LOWER_LIP, 2])
    bridge_z = local[:, list(_BROW_REFERENCE), 2].mean(1)
    midline_y = local[:, list(_NOSE_MIDLINE), 1].mean(1)
    for s in _EYE:
        low = _LOWER_LID[s]
        m[f"open_{s}"] = openness[:, 0 if s == "right" else 1]
        m[f"brow_{s}"] = (local[:, list(_BROW[s]), 2].mean(1) - bridge_z) / iod
        m[f"rise_{s}"] = (local[:, _CORNER[s], 2] - lip_mid_z) / iod
        m[f"out_{s}"] = np.abs(local[:, _CORNER[s], 1] - midline_y) / iod
        m[f"cheek_{s}"] = (local[:, low, 2] - local[:, _CHEEK[s], 2]) / iod
    m["gap"] = np.linalg.norm(local[:, _UPPER_INNER_LIP] - local[:, _LOWER_INNER_LIP],
                              axis=-1) / iod
    m["width"] = np.abs(local[:, _CORNER["left"], 1] - local[:, _CORNER["right"], 1]) / iod
    return m


class _RunningMedian:
    """Per column, the median of the last ``window`` finite values pushed (rows of ``width``;
    NaN for a column that has no value that frame), NaN while a column holds fewer than
    ``min_samples``. A plain ring buffer, its median from one sort (NaN sorts last): it runs for
    every tracked face on every frame, and ``np.nanmedian`` made each call 41 us instead of 15.
    """

    def __init__(self, window: int, width: int, min_samples: int) -> None:
        if not 1 <= min_samples <= window:
            raise ValueError(f"min_samples must be in [1, window={window}], got {min_samples}")
        self._buf = np.full((window, width), np.nan)
        self._next = 0
        self.min_samples = min_samples

    def push(self, row: np.ndarray) -> None:
        """Add one frame's values (width,), NaN where a column has none (infinite values,
        e.g. of a degenerate face, count as none)."""
        r = np.asarray(row, dtype=np.float64)
        self._buf[self._next % len(self._buf)] = np.where(np.isfinite(r), r, np.nan)
        self._next += 1

    def value(self) -> np.ndarray:
        """(width,) the median per column, NaN where under ``min_samples`` values."""
        count = np.isfinite(self._buf).sum(0)  # (width,)
        ordered = np.sort(self._buf, axis=0)  # finite values first, NaN last
        cols = np.arange(self._buf.shape[1])
        median = 0.5 * (ordered[np.maximum(count - 1, 0) // 2, cols] + ordered[count // 2, cols])
        return np.where(count >= self.min_samples, median, np.nan)


def _facing(yaw_deg: float, pitch_deg: float, max_turn_deg: float) -> bool:
    return abs(yaw_deg) <= max_turn_deg and abs(pitch_deg) <= max_turn_deg


class OpenEyeBaseline:
    """The person's own open-eye openness (``geometry.eye_openness``, right and left), learnt
    over a track: the median of the last ``window`` frames' readings of each eye, once
    ``min_samples`` of them are in (about 1 s at 30 Hz); NaN before.

    Only readings that can be an open eye enter: the head within ``max_turn_deg`` of facing
    the camera in yaw and pitch (the openness read drops ~10 % at pitch -20 deg), and the eye
    at least ``floor`` x the stored neutral's openness, so a closed or half-closed eye never
    does (a person who keeps their eyes shut keeps the stored neutral and reads blinks). Blinks
    last 0.1-0.4 s, a small part of any window, so the median is the open eye.
    """

    def __init__(self, window: int = 150, min_samples: int = 30, max_turn_deg: float = 20.0,
                 floor: float = 0.75) -> None:
        self._median = _RunningMedian(window, 2, min_samples)
        self.min_samples = min_samples
        self.max_turn_deg = max_turn_deg
        n = stored_neutral()
        self._lowest = floor * np.array([n["open_right"], n["open_left"]])  # (2,)

    def observe(self, openness: np.ndarray, yaw_deg: float, pitch_deg: float) -> np.ndarray:
        """Take one frame's openness (2,) right, left at head yaw/pitch (deg); return the
        baseline (2,), NaN for an eye not yet known."""
        if _facing(yaw_deg, pitch_deg, self.max_turn_deg):
            o = np.asarray(openness, dtype=np.float64)
            self._median.push(np.where(o >= self._lowest, o, np.nan))
        return self.value()

    def value(self) -> np.ndarray:
        """(2,) the median open-eye openness per eye, NaN where under ``min_samples`` readings."""
        return self._median.value()


class RestingFace:
    """The person's own resting face, learnt over a track: per measure of
    :data:`RESTING_MEASURES` (brows, mouth corners, lips, cheeks), the median of the last
    ``window`` samples, one taken every ``every`` frames with the head within ``max_turn_deg``
    of facing the camera (yaw and pitch: the measures are the average's neutral there, and the
    mesh network's view deformation moves the mouth and brows of a turned head), once
    ``min_samples`` are in (3 s at 30 Hz); NaN before. The median is the face a person shows
    most of the time: an expression held for less than half of the window (60 s at 30 Hz)
    does not move it. A brow raise held longer does, and relaxing after it then reads as a
    frown (the brows may sit higher than the average's by a full frown's span,
    :func:`resting_spread`): the price of learning a person's brows.
    """

    def __init__(self, window: int = 300, every: int = 6, min_samples: int = 15,
                 max_turn_deg: float = 20.0) -> None:
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self._median = _RunningMedian(window, len(RESTING_MEASURES), min_samples)
        self.every = every
        self.min_samples = min_samples
        self.max_turn_deg = max_turn_deg
        self._seen = 0
        self._value = np.full(len(RESTING_MEASURES), np.nan)

    def observe(self, values: np.ndarray, yaw_deg: float, pitch_deg: float) -> np.ndarray:
        """Take one frame's measures (len(RESTING_MEASURES),) at head yaw/pitch (deg); return
        the resting face's (len(RESTING_MEASURES),), NaN while unknown."""
        if _facing(yaw_deg, pitch_deg, self.max_turn_deg):
            if self._seen % self.every == 0:
                self._median.push(values)
                self._value = self._median.value()  # the sort only when a sample enters
            self._seen += 1
        return self.value()

    def value(self) -> np.ndarray:
        """(len(RESTING_MEASURES),) the median per measure, NaN while under ``min_samples``."""
        return self._value.copy()


class OwnNeutral:
    """A tracked person's own neutral: their open eye (:class:`OpenEyeBaseline`) and their
    resting face (:class:`RestingFace`). One per track (``FaceTracker``)."""

    def __init__(self) -> None:
        self.eyes = OpenEyeBaseline()
        self.face = RestingFace()


def observe_own(own: Sequence[OwnNeutral], m: Dict[str, np.ndarray], yaw_deg: np.ndarray,
                pitch_deg: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Feed one frame of N faces to their people's own neutrals.

    own: N :class:`OwnNeutral`; m: the frame's measures (:func:`measures`, each (N,));
    yaw_deg, pitch_deg: (N,) head angles. Returns own_eyes (N, 2) and own_face
    (N, len(RESTING_MEASURES)) for :func:`coefficients_from_measures`, NaN where unknown.
    """
    opens = np.stack((m["open_right"], m["open_left"]), axis=-1)  # (N, 2)
    rest = np.stack([m[k] for k in RESTING_MEASURES], axis=-1)  # (N, R)
    eyes = [o.eyes.observe(e, y, p) for o, e, y, p in zip(own, opens, yaw_deg, pitch_deg)]
    face = [o.face.observe(r, y, p) for o, r, y, p in zip(own, rest, yaw_deg, pitch_deg)]
    return (np.stack(eyes) if eyes else np.zeros((0, 2)),
            np.stack(face) if face else np.zeros((0, len(RESTING_MEASURES))))


def neutral_measures(faces: np.ndarray) -> np.ndarray:
    """(len(MEASURE_NAMES),) the mean measures of (N, 478, 3) face-frame shapes, made
    left/right symmetric (each sided measure the mean of its two sides)."""
    m = {k: float(np.mean(v)) for k, v in measures(np.asarray(faces, np.float64)).items()}
    for name in MEASURE_NAMES:
        if name.endswith("_right"):
            base = name[:-len("_right")]
            m[name] = m[base + "_left"] = 0.5 * (m[name] + m[base + "_left"])
    return np.array([m[name] for name in MEASURE_NAMES])


@lru_cache(maxsize=1)
def stored_neutral() -> Dict[str, float]:
    """The stored expression neutral's measures (an average person's; cached), the reference of
    coefficients read without a person's own neutral."""
    from .canonical import DATA_FILE, load_canonical

    neutral = load_canonical().expression_neutral
    if not np.all(np.isfinite(neutral)):
        raise ValueError(f"{DATA_FILE} holds an expression neutral of other measures than "
                         f"{MEASURE_NAMES}; rebuild it with "
                         "'python -m face3d_ros.tools.make_canonical'")
    return dict(zip(MEASURE_NAMES, neutral.tolist()))


@lru_cache(maxsize=1)
def canonical_measures() -> Dict[str, float]:
    """The measures of the canonical face itself (cached): the reference of coefficients
    measured against it (``core.people.identity.canonical_coefficients``)."""
    from .canonical import load_canonical

    can = load_canonical().vertices.astype(np.float64)[None]
    return {k: float(v[0]) for k, v in measures(can).items()}


def expression_coefficients(local: np.ndarray, neutral: Optional[np.ndarray] = None,
                            openness: Optional[np.ndarray] = None,
                            own_eyes: Optional[np.ndarray] = None,
                            own_face: Optional[np.ndarray] = None) -> np.ndarray:
    """(N, K) coefficients in [0, 1], ordered as :data:`EXPRESSION_NAMES`.

    local: (N, 478, 3) landmarks in the face frame (pose removed), any uniform scale.
    neutral: (478, 3) the person's own neutral face (their enrolled identity) to measure
    against; None uses the stored expression neutral, an average person's.
    openness: (N, 2) the points' ``geometry.eye_openness`` when already computed (any
    similarity of the points has the same).
    own_eyes, own_face: each person's own open eye and resting face (:func:`observe_own`),
    see :func:`coefficients_from_measures`.
    """
    m = measures(np.asarray(local, dtype=np.float64), openness)
    if neutral is None:
        return coefficients_from_measures(m, stored_neutral(), own_eyes, own_face)
    ref = measures(np.asarray(neutral, dtype=np.float64).reshape(1, -1, 3))
    return coefficients_from_measures(m, {k: float(v[0]) for k, v in ref.items()}, own_eyes,
                                      own_face)


def coefficients_from_measures(m: Dict[str, np.ndarray], n: Mapping[str, float],
                               own_eyes: Optional[np.ndarray] = None,
                               own_face: Optional[np.ndarray] = None) -> np.ndarray:
    """(N, K) coefficients in [0, 1] (:data:`EXPRESSION_NAMES` order) of measures ``m`` (each
    (N,), :func:`measures`) against the neutral measures ``n``: the spans of the module
    docstring's table.

    own_eyes: (N, 2) open-eye openness right, left (:class:`OpenEyeBaseline`) that replaces
    the neutral's where finite, with :data:`OWN_EYE_DEAD_ZONE`.
    own_face: (N, len(RESTING_MEASURES)) the person's resting face (:class:`RestingFace`)
    that replaces the neutral's measures where finite, each within :func:`resting_spread` of
    the neutral's: an expression held for most of the resting face's window reads at most a
    neutral face's reading of it (:func:`neutral_levels`) less.
    """
    if own_face is None:
        return _coefficients(m, n, own_eyes)
    face = np.asarray(own_face, dtype=np.float64).reshape(-1, len(RESTING_MEASURES))
    known = np.isfinite(face)
    if not known.any():
        return _coefficients(m, n, own_eyes)
    below, above = resting_spread(n)
    neutral = np.array([n[k] for k in RESTING_MEASURES])  # (R,)
    rest = np.where(known, neutral + np.clip(face - neutral, -below, above), neutral)  # (N, R)
    own: Dict[str, np.ndarray | float] = dict(n)
    own.update(zip(RESTING_MEASURES, rest.T))
    return _coefficients(m, own, own_eyes)


def resting_spread(n: Mapping[str, float]) -> Tuple[np.ndarray, np.ndarray]:
    """How far below and above the neutral measures ``n`` a person's resting face may lie,
    each (len(RESTING_MEASURES),) in the measures' units (/ inter-ocular distance).

    Per direction, what a neutral face reads (:func:`neutral_levels`) of the coefficient that
    way drives, times that coefficient's span: the brows up by brow_up's 0.5 x
    :data:`BROW_RAISE` (0.06, ~3.7 mm), down by brow_down's 0.15 x :data:`BROW_DROP`; the mouth
    narrower by mouth_pucker's 0.6 of its span; the lips apart by mouth_funnel's 0.15 (the
    smaller of funnel's and jaw_open's spans). A direction that drives no coefficient takes
    :data:`NEUTRAL_COEFF` of the measure's span.
    """
    lv = dict(zip(EXPRESSION_NAMES, neutral_levels()))

    def level(name: Optional[str]) -> float:
        return NEUTRAL_COEFF if name is None else float(lv[name])

    # kind -> (coefficient driven below the neutral, coefficient driven above it, span below,
    # span above); the cheeks' and the mouth width's spans are fractions of their neutral.
    fixed: Dict[str, Tuple[Optional[str], Optional[str], float, float]] = {
        "brow": ("brow_down_left", "brow_up", BROW_DROP, BROW_RAISE),
        "rise": (None, "mouth_smile_left", SMILE_RISE, SMILE_RISE),
        "out": (None, "mouth_smile_left", SMILE_OUT, SMILE_OUT),
        "gap": (None, "mouth_funnel", min(FUNNEL_LIPS_APART, JAW_GAP),
                min(FUNNEL_LIPS_APART, JAW_GAP))}
    below, above = [], []
    down: Optional[str]
    up: Optional[str]
    for k in RESTING_MEASURES:
        kind = k.split("_")[0]
        if kind == "cheek":
            span = CHEEK_SQUINT_FRACTION * abs(n[k])
            down, up, span_down, span_up = "cheek_squint_left", None, span, span
        elif kind == "width":
            span = PUCKER_FRACTION * abs(n[k])
            down, up, span_down, span_up = "mouth_pucker", None, span, span
        elif kind in fixed:
            down, up, span_down, span_up = fixed[kind]
        else:
            raise ValueError(f"no resting spread for the measure {k!r}")
        below.append(level(down) * span_down)
        above.append(level(up) * span_up)
    return np.array(below), np.array(above)


def _coefficients(m: Dict[str, np.ndarray], n: Mapping[str, np.ndarray | float],
                  own_eyes: Optional[np.ndarray]) -> np.ndarray:
    """:func:`coefficients_from_measures` against one neutral (each measure a float or
    (N,))."""

    def ramp(x: np.ndarray, span: np.ndarray | float) -> np.ndarray:
        return np.clip(x / span, 0.0, 1.0)

    out = {}
    for s in ("left", "right"):
        o = m[f"open_{s}"]
        on: np.ndarray | float = n[f"open_{s}"]
        dz: np.ndarray | float = POPULATION_EYE_DEAD_ZONE
        if own_eyes is not None:
            own = np.asarray(own_eyes, dtype=np.float64)[:, 0 if s == "right" else 1]
            known = np.isfinite(own)
            on = np.where(known, own, on)
            dz = np.where(known, OWN_EYE_DEAD_ZONE, POPULATION_EYE_DEAD_ZONE)
        shut = (1.0 - dz) * on
        out[f"eye_blink_{s}"] = ramp(shut - o, shut - CLOSED_EYE_OPENNESS)
        out[f"eye_wide_{s}"] = ramp(o - (1.0 + dz) * on, 0.5 * on)
        out[f"mouth_smile_{s}"] = np.clip(
            0.5 * ramp(m[f"rise_{s}"] - n[f"rise_{s}"], SMILE_RISE)
            + 0.5 * ramp(m[f"out_{s}"] - n[f"out_{s}"], SMILE_OUT), 0.0, 1.0)
        out[f"brow_down_{s}"] = ramp(n[f"brow_{s}"] - m[f"brow_{s}"], BROW_DROP)
        out[f"cheek_squint_{s}"] = ramp(n[f"cheek_{s}"] - m[f"cheek_{s}"],
                                        CHEEK_SQUINT_FRACTION * np.abs(n[f"cheek_{s}"]))
    brow = 0.5 * (m["brow_left"] + m["brow_right"])
    out["brow_up"] = ramp(brow - 0.5 * (n["brow_left"] + n["brow_right"]), BROW_RAISE)
    out["jaw_open"] = ramp(m["gap"] - n["gap"], JAW_GAP)
    out["mouth_pucker"] = ramp(n["width"] - m["width"], PUCKER_FRACTION * n["width"])
    out["mouth_funnel"] = out["mouth_pucker"] * ramp(m["gap"] - n["gap"], FUNNEL_LIPS_APART)
    return np.stack([out[name] for name in EXPRESSION_NAMES], axis=-1).astype(np.float32)
