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
| eye_blink_left/right | lid opening / eye width (``eye_openness``) < 85 % of neutral | to 0.10 |
| eye_wide_left/right | lid opening / eye width above 115 % of neutral | +50 % |
| jaw_open | inner-lip gap (13-14) | 0.45 |
| mouth_smile_left/right | mouth corner raised and pulled out | 0.06 rise / 0.12 out |
| brow_up | mean brow height above the eyes | +0.12 (~7.5 mm, a full raise) |
| brow_down_left/right | brow height below neutral | -0.05 |
| mouth_pucker | mouth width below neutral | -30 % |
| mouth_funnel | lips pushed forward (x) relative to the nose tip | 0.06 |
| cheek_squint_left/right | lower lid to cheek distance below neutral | -30 % |
"""

from __future__ import annotations

from functools import lru_cache
from typing import Dict, Optional, Tuple

import numpy as np
import torch

from .geometry import CLOSED_EYE_OPENNESS, eye_openness

EXPRESSION_NAMES: Tuple[str, ...] = (
    "eye_blink_left", "eye_blink_right", "eye_wide_left", "eye_wide_right", "jaw_open",
    "mouth_smile_left", "mouth_smile_right", "brow_up", "brow_down_left", "brow_down_right",
    "mouth_pucker", "mouth_funnel", "cheek_squint_left", "cheek_squint_right",
)

#: Brow raise (brow height above the eyes / inter-ocular distance) read as brow_up 1.0: a full
#: raise lifts the brows by 7-10 mm, about 0.12 of the 62 mm between the eyes. (With 0.08, a
#: neutral face whose brows sit 4 mm above the average's, as the facecap head's do, read 0.8.)
BROW_RAISE = 0.12

# Mesh indices (subject's right / left).
_EYE = {"right": (33, 133), "left": (263, 362)}  # outer, inner corner
_LOWER_LID = {"right": 145, "left": 374}
_BROW = {"right": (105, 66, 107), "left": (334, 296, 336)}
_CORNER = {"right": 61, "left": 291}
_CHEEK = {"right": 50, "left": 280}
_UPPER_INNER_LIP, _LOWER_INNER_LIP = 13, 14
_UPPER_LIP, _LOWER_LIP = 0, 17
_NOSE_TIP = 1


#: The raw measures (:func:`measures`), in the order of the stored expression neutral.
MEASURE_NAMES: Tuple[str, ...] = (
    "open_right", "brow_right", "rise_right", "out_right", "cheek_right",
    "open_left", "brow_left", "rise_left", "out_left", "cheek_left",
    "gap", "width", "protrusion")
#: Measures of the eyes: the expression neutral takes them from faces with open eyes.
EYE_MEASURES: Tuple[str, ...] = ("open_right", "cheek_right", "open_left", "cheek_left")


def measures(local: np.ndarray, openness: Optional[np.ndarray] = None
             ) -> Dict[str, np.ndarray]:
    """Raw measures (:data:`MEASURE_NAMES`) of (N, 478, 3) face-frame points; each (N,),
    unitless. openness: (N, 2) their ``geometry.eye_openness`` when already computed."""
    eye_c = {s: 0.5 * (local[:, o] + local[:, i]) for s, (o, i) in _EYE.items()}
    if openness is None:
        openness = eye_openness(torch.from_numpy(local)).numpy()  # (N, 2) right, left
    iod = np.linalg.norm(eye_c["left"] - eye_c["right"], axis=-1)
    m: Dict[str, np.ndarray] = {}
    lip_mid_z = 0.5 * (local[:, _UPPER_LIP, 2] + local[:, _LOWER_LIP, 2])
    for s in _EYE:
        low = _LOWER_LID[s]
        m[f"open_{s}"] = openness[:, 0 if s == "right" else 1]
        m[f"brow_{s}"] = (local[:, list(_BROW[s]), 2].mean(1) - eye_c[s][:, 2]) / iod
        m[f"rise_{s}"] = (local[:, _CORNER[s], 2] - lip_mid_z) / iod
        m[f"out_{s}"] = np.abs(local[:, _CORNER[s], 1]) / iod
        m[f"cheek_{s}"] = (local[:, low, 2] - local[:, _CHEEK[s], 2]) / iod
    m["gap"] = np.linalg.norm(local[:, _UPPER_INNER_LIP] - local[:, _LOWER_INNER_LIP],
                              axis=-1) / iod
    m["width"] = np.abs(local[:, _CORNER["left"], 1] - local[:, _CORNER["right"], 1]) / iod
    lips_x = 0.5 * (local[:, _UPPER_LIP, 0] + local[:, _LOWER_LIP, 0])
    m["protrusion"] = (lips_x - local[:, _NOSE_TIP, 0]) / iod
    return m


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
def _neutral() -> Dict[str, float]:
    from .canonical import load_canonical

    return dict(zip(MEASURE_NAMES, load_canonical().expression_neutral.tolist()))


@lru_cache(maxsize=1)
def canonical_measures() -> Dict[str, float]:
    """The measures of the canonical face itself (cached): the reference of coefficients
    measured against it (``core.people.identity.canonical_coefficients``)."""
    from .canonical import load_canonical

    can = load_canonical().vertices.astype(np.float64)[None]
    return {k: float(v[0]) for k, v in measures(can).items()}


def expression_coefficients(local: np.ndarray, neutral: Optional[np.ndarray] = None,
                            openness: Optional[np.ndarray] = None) -> np.ndarray:
    """(N, K) coefficients in [0, 1], ordered as :data:`EXPRESSION_NAMES`.

    local: (N, 478, 3) landmarks in the face frame (pose removed), any uniform scale.
    neutral: (478, 3) the person's own neutral face (their enrolled identity) to measure
    against; None uses the stored expression neutral, an average person's.
    openness: (N, 2) the points' ``geometry.eye_openness`` when already computed (any
    similarity of the points has the same).
    """
    m = measures(np.asarray(local, dtype=np.float64), openness)
    if neutral is None:
        return coefficients_from_measures(m, _neutral())
    ref = measures(np.asarray(neutral, dtype=np.float64).reshape(1, -1, 3))
    return coefficients_from_measures(m, {k: float(v[0]) for k, v in ref.items()})


def coefficients_from_measures(m: Dict[str, np.ndarray], n: Dict[str, float]) -> np.ndarray:
    """(N, K) coefficients in [0, 1] (:data:`EXPRESSION_NAMES` order) of measures ``m`` (each
    (N,), :func:`measures`) against the neutral measures ``n``: the spans of the module
    docstring's table."""

    def ramp(x: np.ndarray, span: float) -> np.ndarray:
        return np.clip(x / span, 0.0, 1.0)

    out = {}
    for s in ("left", "right"):
        o, on = m[f"open_{s}"], n[f"open_{s}"]
        out[f"eye_blink_{s}"] = ramp(0.85 * on - o, 0.85 * on - CLOSED_EYE_OPENNESS)
        out[f"eye_wide_{s}"] = ramp(o - 1.15 * on, 0.5 * on)
        out[f"mouth_smile_{s}"] = np.clip(0.5 * ramp(m[f"rise_{s}"] - n[f"rise_{s}"], 0.06)
                                          + 0.5 * ramp(m[f"out_{s}"] - n[f"out_{s}"], 0.12),
                                          0.0, 1.0)
        out[f"brow_down_{s}"] = ramp(n[f"brow_{s}"] - m[f"brow_{s}"], 0.05)
        out[f"cheek_squint_{s}"] = ramp(n[f"cheek_{s}"] - m[f"cheek_{s}"],
                                        0.3 * abs(n[f"cheek_{s}"]))
    brow = 0.5 * (m["brow_left"] + m["brow_right"])
    out["brow_up"] = ramp(brow - 0.5 * (n["brow_left"] + n["brow_right"]), BROW_RAISE)
    out["jaw_open"] = ramp(m["gap"] - n["gap"], 0.45)
    out["mouth_pucker"] = ramp(n["width"] - m["width"], 0.3 * n["width"])
    out["mouth_funnel"] = ramp(m["protrusion"] - n["protrusion"], 0.06)
    return np.stack([out[name] for name in EXPRESSION_NAMES], axis=-1).astype(np.float32)
