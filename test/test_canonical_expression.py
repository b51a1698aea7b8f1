"""The canonical face (rebuilt from the portraits) and the expression measures."""

import numpy as np
import pytest

from face3d_ros.core.pipeline.canonical import load_canonical
from face3d_ros.core.pipeline.expression import (EXPRESSION_NAMES, EYE_MEASURES, MEASURE_NAMES,
                                                 OpenEyeBaseline, expression_coefficients,
                                                 measures)


def test_stored_canonical_matches_a_rebuild():
    from face3d_ros.tools.head_render import heads_dir
    from face3d_ros.tools.make_canonical import make

    try:
        heads_dir()
    except FileNotFoundError as exc:
        pytest.skip(f"the frame and eyeballs are rebuilt from the head models: {exc}")
    stored = load_canonical()
    rebuilt = make()
    assert np.abs(rebuilt.vertices - stored.vertices).max() < 1e-4  # 0.1 mm
    assert np.abs(rebuilt.eyeball_centres - stored.eyeball_centres).max() < 1e-4
    assert np.abs(rebuilt.gaze_follow - stored.gaze_follow).max() < 1e-3
    assert np.abs(rebuilt.pose_deformation).max() > 1e-3  # measured, not the zeros default
    assert np.abs(rebuilt.pose_deformation - stored.pose_deformation).max() < 1e-4  # 0.1 mm
    assert np.array_equal(rebuilt.mirror, stored.mirror)
    assert np.abs(rebuilt.expression_neutral - stored.expression_neutral).max() < 1e-4


def test_gaze_follow_is_symmetric_and_where_measured():
    """The landmark networks' follow of the eyes (geometry.eye_fit): mirror-symmetric, none on
    the irises, about half the iris's motion on the forehead and the eye corners in pitch,
    little on the nose tip and the mouth."""
    can = load_canonical()
    f = can.gaze_follow.astype(np.float64)  # (478, 2 iris x/y, 3 landmark x/y/z)
    flip_in, flip_out = np.array([-1.0, 1.0]), np.array([-1.0, 1.0, 1.0])
    assert np.allclose(f[can.mirror] * flip_in[None, :, None] * flip_out[None, None, :], f,
                       atol=1e-6)
    assert np.all(f[468:] == 0.0)
    assert 0.3 < f[10, 1, 1] < 0.8 and 0.3 < f[33, 1, 1] < 0.9  # forehead, outer eye corner
    assert abs(f[1, 1, 1]) < 0.15 and abs(f[0, 1, 1]) < 0.15  # nose tip, upper lip


def test_canonical_is_metric_symmetric_and_frontal():
    can = load_canonical()
    v = can.vertices
    width = v[:, 1].max() - v[:, 1].min()
    assert 0.12 < width < 0.17  # a human face, metres
    # the mirror permutation is an involution and maps the shape onto its reflection
    assert np.array_equal(can.mirror[can.mirror], np.arange(478))
    assert np.allclose(v[can.mirror] * [1, -1, 1], v, atol=1e-6)
    # nose tip in front of the eyes, forehead above the chin, left eye on +y
    assert v[1, 0] > v[33, 0] and v[10, 2] > v[152, 2] and v[263, 1] > 0 > v[33, 1]
    assert np.allclose(0.5 * (v[468] + v[473]), 0.0, atol=0.004)  # origin between the eyes
    assert can.uv.min() >= 0.0 and can.uv.max() <= 1.0


def coefficients(points, neutral=None):
    """Coefficients of ``points`` against ``neutral`` (default: the canonical face itself, so
    that a change of the canonical shape is the only expression)."""
    if neutral is None:
        neutral = load_canonical().vertices.astype(np.float64)
    return dict(zip(EXPRESSION_NAMES, expression_coefficients(points[None], neutral)[0]))


def test_a_face_measured_against_itself_has_no_expression():
    can = load_canonical().vertices.astype(np.float64)
    assert max(coefficients(can).values()) < 1e-6


def test_expression_neutral_is_symmetric_with_the_canonical_eyes_and_a_relaxed_mouth():
    """The stored expression neutral: the canonical face's eyes, a closed relaxed mouth (the
    canonical's own mouth is half a smile, open: one of its portraits smiles)."""
    can = load_canonical()
    neutral = dict(zip(MEASURE_NAMES, can.expression_neutral))
    own = {k: float(v[0]) for k, v in measures(can.vertices.astype(np.float64)[None]).items()}
    for name in EYE_MEASURES:
        assert neutral[name] == pytest.approx(own[name], abs=1e-9)
    for name in MEASURE_NAMES:
        if name.endswith("_right"):
            assert neutral[name] == neutral[name.replace("_right", "_left")]
    # Narrower, closed and less raised at the corners than the canonical's mouth.
    assert neutral["width"] < 0.95 * own["width"] and neutral["gap"] < 0.6 * own["gap"]
    assert neutral["rise_left"] < 0.6 * own["rise_left"]
    # So the canonical face, read against the neutral, smiles and opens its mouth a little,
    # and reads no pucker.
    c = dict(zip(EXPRESSION_NAMES, expression_coefficients(
        can.vertices.astype(np.float64)[None])[0]))
    print(f"\ncanonical against the expression neutral: "
          f"{ {k: round(float(v), 2) for k, v in c.items() if v > 0} }")
    assert c["mouth_smile_left"] > 0.3 and c["mouth_smile_right"] > 0.3
    assert c["jaw_open"] > 0.1 and c["mouth_pucker"] == 0.0
    assert max(c[n] for n in ("eye_blink_left", "eye_blink_right", "eye_wide_left",
                              "eye_wide_right")) == 0.0


def test_expressions_respond_to_the_right_motion():
    can = load_canonical().vertices.astype(np.float64)
    jaw = can.copy()
    jaw[[14, 17, 152, 87, 317, 178, 402]] -= [0, 0, 0.02]  # lower lip and chin down 2 cm
    c = coefficients(jaw)
    assert c["jaw_open"] > 0.5 and c["eye_blink_left"] == 0.0

    from face3d_ros.core.pipeline.landmarks import LEFT_EYE_CONTOUR_INDEX as left

    blink = can.copy()
    blink[list(left[9:16])] = blink[list(left[1:8])]  # left upper lid onto the lower lid
    c = coefficients(blink)
    assert c["eye_blink_left"] > 0.9 and c["eye_blink_right"] == 0.0

    brows = can.copy()
    brows[[105, 66, 107, 334, 296, 336]] += [0, 0, 0.008]
    c = coefficients(brows)
    assert c["brow_up"] > 0.5 and c["brow_down_left"] == 0.0


def test_funnel_is_a_narrowed_mouth_with_the_lips_apart():
    """A narrowed closed mouth reads pucker, not funnel; narrowed and open, both; open and not
    narrowed (the jaw), no funnel."""
    can = load_canonical().vertices.astype(np.float64)
    neutral = can.copy()
    neutral[[14, 17]] = neutral[[13, 0]] - [0, 0, 0.002]  # lips closed (the canonical's part)
    corners = [61, 291]

    def narrowed(points):
        out = points.copy()
        out[corners, 1] *= 0.7
        return out

    def opened(points):
        out = points.copy()
        out[[14, 17]] -= [0, 0, 0.008]
        return out

    closed_narrow = coefficients(narrowed(neutral), neutral)
    open_narrow = coefficients(opened(narrowed(neutral)), neutral)
    open_wide = coefficients(opened(neutral), neutral)
    assert closed_narrow["mouth_pucker"] > 0.5 and closed_narrow["mouth_funnel"] == 0.0
    assert open_narrow["mouth_pucker"] > 0.5 and open_narrow["mouth_funnel"] > 0.5
    assert open_wide["jaw_open"] > 0.1 and open_wide["mouth_funnel"] == 0.0


def test_expressions_do_not_depend_on_scale():
    can = load_canonical().vertices.astype(np.float64)
    jaw = can.copy()
    jaw[[14, 17]] -= [0, 0, 0.01]
    assert expression_coefficients(jaw[None]) == pytest.approx(
        expression_coefficients(2.5 * jaw[None]), abs=1e-6)
    assert expression_coefficients(jaw[None], can) == pytest.approx(
        expression_coefficients(2.5 * jaw[None], 0.5 * can), abs=1e-6)


def _stored_open_eye() -> float:
    return float(dict(zip(MEASURE_NAMES, load_canonical().expression_neutral))["open_right"])


def test_open_eye_baseline_learns_the_open_eye_and_never_a_closed_one():
    """The baseline is the median of open-eye readings of a head facing the camera: blinks,
    shut eyes and turned heads do not enter, and it is unknown until enough have."""
    avg = _stored_open_eye()
    b = OpenEyeBaseline(window=50, min_samples=10)
    for _ in range(9):
        assert np.isnan(b.observe(np.array([1.1, 1.2]) * avg, 0.0, 0.0)).all()
    for _ in range(30):  # turned or pitched too far, or shut: nothing enters
        b.observe(np.array([0.5, 0.5]) * avg, 30.0, 0.0)
        b.observe(np.array([0.5, 0.5]) * avg, 0.0, -25.0)
        b.observe(np.array([0.3, 0.3]) * avg, 0.0, 0.0)
    assert np.isnan(b.value()).all()
    for i in range(10):  # winks of the left eye among open frames: each eye its own
        b.observe(np.array([1.1, 0.4 if i % 3 == 0 else 1.2]) * avg, 5.0, -5.0)
    assert b.value() == pytest.approx([1.1 * avg, 1.2 * avg])
    for _ in range(50):  # eyes kept shut for a window: back to unknown (the stored average)
        b.observe(np.array([0.3, 0.3]) * avg, 0.0, 0.0)
    assert np.isnan(b.value()).all()
    for _ in range(60):  # the window forgets: another person's eyes
        b.observe(np.array([0.9, 0.9]) * avg, 0.0, 0.0)
    assert b.value() == pytest.approx([0.9 * avg, 0.9 * avg])
    with pytest.raises(ValueError, match="min_samples"):
        OpenEyeBaseline(window=5, min_samples=6)


def test_blink_against_the_own_open_eye():
    """Against a person's own open eye the blink starts at 90 % of it (OWN_EYE_DEAD_ZONE);
    against the stored average at 85 % of the average's: wide eyes half closed read no blink
    there, but do against their own; NaN (unknown) keeps the average."""
    from face3d_ros.core.pipeline.expression import coefficients_from_measures

    can = load_canonical()
    n = dict(zip(MEASURE_NAMES, can.expression_neutral))
    avg = n["open_right"]
    own = 1.15 * avg
    m = {k: np.full(3, v) for k, v in n.items()}
    m["open_right"] = np.array([own, 0.8 * own, 1.2 * own])  # open, partly closed, wide
    m["open_left"] = np.full(3, own)
    eyes = np.array([[own, own], [own, own], [np.nan, np.nan]])
    c = dict(zip(EXPRESSION_NAMES, coefficients_from_measures(m, n, eyes).T))
    plain = dict(zip(EXPRESSION_NAMES, coefficients_from_measures(m, n).T))
    assert c["eye_blink_right"][0] == 0.0 and c["eye_blink_left"].max() == 0.0
    assert c["eye_blink_right"][1] > 0.1 and plain["eye_blink_right"][1] == 0.0
    assert c["eye_wide_right"][2] == plain["eye_wide_right"][2] > 0.0  # unknown: the average


def test_a_canonical_face_of_other_measures_loads_and_expression_names_the_rebuild(
        tmp_path, monkeypatch):
    """A stored face whose expression neutral has other measures (an older version's) still
    loads, so make_canonical can rebuild it; expression coefficients refuse it, naming the
    rebuild."""
    from face3d_ros.core.pipeline import canonical, expression
    from face3d_ros.core.pipeline.canonical import DATA_FILE

    with np.load(DATA_FILE) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["expression_neutral"] = np.append(arrays["expression_neutral"], -0.29)
    arrays["expression_measures"] = np.array(MEASURE_NAMES + ("protrusion",))
    path = tmp_path / "old_canonical.npz"
    np.savez(path, **arrays)
    old = load_canonical(path)
    assert np.array_equal(old.vertices, load_canonical().vertices)
    assert np.isnan(old.expression_neutral).all()
    monkeypatch.setattr(canonical, "load_canonical", lambda path=DATA_FILE: old)
    expression.stored_neutral.cache_clear()
    try:
        with pytest.raises(ValueError, match="make_canonical"):
            expression_coefficients(load_canonical().vertices.astype(np.float64)[None])
    finally:
        monkeypatch.undo()
        expression.stored_neutral.cache_clear()
    assert expression_coefficients(load_canonical().vertices.astype(np.float64)[None]).shape \
        == (1, len(EXPRESSION_NAMES))


def test_resting_face_learns_the_facing_median():
    """The resting face is the median of each measure over frames of a head facing the camera,
    unknown until enough are in; turned heads do not enter."""
    from face3d_ros.core.pipeline.expression import RESTING_MEASURES, RestingFace

    r = RestingFace(window=40, every=1, min_samples=10)
    base = np.linspace(0.1, 1.0, len(RESTING_MEASURES))
    for _ in range(9):
        assert np.isnan(r.observe(base, 0.0, 0.0)).all()
    for _ in range(30):  # turned or pitched too far: nothing enters
        r.observe(base + 1.0, 25.0, 0.0)
        r.observe(base + 1.0, 0.0, -21.0)
    assert np.isnan(r.value()).all()
    for i in range(11):  # a short expression among resting frames does not move the median
        r.observe(base + (0.5 if i % 4 == 0 else 0.0), 10.0, -10.0)
    assert r.value() == pytest.approx(base)


def test_own_resting_face_lies_within_the_spread_of_neutral_faces():
    """Against the person's own resting face, a resting face with brows higher than the
    average's reads no brow_up, and its frown reads as a frown; a smile held as the resting
    face still reads all but the neutral level (0.15) of itself; NaN keeps the average."""
    from face3d_ros.core.pipeline.expression import (BROW_DROP, BROW_RAISE, NEUTRAL_COEFF,
                                                     RESTING_MEASURES, SMILE_OUT, SMILE_RISE,
                                                     coefficients_from_measures)

    n = dict(zip(MEASURE_NAMES, load_canonical().expression_neutral))
    rest = {k: np.full(3, v) for k, v in n.items()}
    for side in ("left", "right"):
        rest[f"brow_{side}"] = rest[f"brow_{side}"] + 0.4 * BROW_RAISE  # high brows
        # the third face smiles fully all the time
        rest[f"rise_{side}"] = rest[f"rise_{side}"] + np.array([0.0, 0.0, SMILE_RISE])
        rest[f"out_{side}"] = rest[f"out_{side}"] + np.array([0.0, 0.0, SMILE_OUT])
    own = np.array([[rest[k][i] for k in RESTING_MEASURES] for i in range(3)])
    own[1] = np.nan  # the second person's resting face is not known yet
    frown = {k: v.copy() for k, v in rest.items()}
    for side in ("left", "right"):
        frown[f"brow_{side}"] = frown[f"brow_{side}"] - BROW_DROP  # a full frown from rest

    def coeffs(m, own_face=None):
        return dict(zip(EXPRESSION_NAMES, coefficients_from_measures(m, n, own_face=own_face).T))

    plain, c, f = coeffs(rest), coeffs(rest, own), coeffs(frown, own)
    assert plain["brow_up"] == pytest.approx([0.4] * 3, abs=1e-6)
    assert c["brow_up"][[0, 2]] == pytest.approx([0.0, 0.0], abs=1e-6)
    assert f["brow_down_left"][[0, 2]] == pytest.approx([1.0, 1.0], abs=1e-6)
    assert (coeffs(frown)["brow_down_left"] < 0.1).all()  # against the average: hardly
    assert plain["mouth_smile_left"][2] == pytest.approx(1.0, abs=1e-6)
    assert c["mouth_smile_left"][2] == pytest.approx(1.0 - NEUTRAL_COEFF, abs=1e-6)
    assert c["brow_up"][1] == plain["brow_up"][1]  # unknown: the average's
    assert f["brow_down_left"][1] == coeffs(frown)["brow_down_left"][1]


def test_resting_face_samples_every_nth_facing_frame():
    """One sample every ``every`` facing frames: a minute of a 30 Hz stream in 300 samples;
    infinite readings (a degenerate face) count as none."""
    from face3d_ros.core.pipeline.expression import RESTING_MEASURES, RestingFace

    r = RestingFace(window=10, every=3, min_samples=4)
    ones = np.ones(len(RESTING_MEASURES))
    for i in range(9):  # samples at facing frames 0, 3, 6: three, not yet four
        assert np.isnan(r.observe(ones * i, 0.0, 0.0)).all()
        r.observe(ones * 100.0, 45.0, 0.0)  # turned: not counted
    bad = ones * 9.0
    bad[0] = np.inf
    assert r.observe(bad, 0.0, 0.0)[1:] == pytest.approx(np.median([0, 3, 6, 9]) * ones[1:])
    assert np.isnan(r.value()[0])  # three finite values of the first measure
    with pytest.raises(ValueError, match="every"):
        RestingFace(every=0)


def test_relaxing_after_a_held_expression_reads_little():
    """A resting face learnt while a person held a frown, a pucker or a wide mouth: relaxed,
    the face reads at most a neutral face's level of the opposite coefficient."""
    from face3d_ros.core.pipeline.expression import (BROW_DROP, NEUTRAL_COEFF,
                                                     PUCKER_FRACTION, RESTING_MEASURES,
                                                     coefficients_from_measures,
                                                     resting_spread)

    n = dict(zip(MEASURE_NAMES, load_canonical().expression_neutral))
    relaxed = {k: np.full(3, v) for k, v in n.items()}
    held = {k: np.full(3, v) for k, v in n.items()}
    for side in ("left", "right"):
        held[f"brow_{side}"][0] -= BROW_DROP  # a full frown
    held["width"][1] *= 1.0 - PUCKER_FRACTION  # a full pucker
    held["width"][2] *= 1.0 + PUCKER_FRACTION  # a wide mouth
    own = np.array([[held[k][i] for k in RESTING_MEASURES] for i in range(3)])
    c = dict(zip(EXPRESSION_NAMES, coefficients_from_measures(relaxed, n, own_face=own).T))
    assert c["brow_up"][0] <= NEUTRAL_COEFF
    assert max(float(v.max()) for v in c.values()) <= NEUTRAL_COEFF + 1e-6
    below, above = resting_spread(n)
    assert (below > 0).all() and (above > 0).all()
    brow = RESTING_MEASURES.index("brow_left")
    assert above[brow] > below[brow]  # brows may sit high (brow_up 0.5), low only a little


def test_observe_own_feeds_each_face_its_own_measures():
    """observe_own stacks the measures in RESTING_MEASURES order, per face, and returns
    nothing known until enough frames are in."""
    from face3d_ros.core.pipeline.expression import RESTING_MEASURES, OwnNeutral, observe_own

    n = dict(zip(MEASURE_NAMES, load_canonical().expression_neutral))
    m = {k: np.array([v, 2.0 * v]) for k, v in n.items()}
    own = [OwnNeutral(), OwnNeutral()]
    for _ in range(100):
        eyes, face = observe_own(own, m, np.zeros(2), np.zeros(2))
    assert eyes.shape == (2, 2) and face.shape == (2, len(RESTING_MEASURES))
    want = np.array([[n[k] for k in RESTING_MEASURES]])
    np.testing.assert_allclose(face, np.concatenate([want, 2.0 * want]))
    eyes0, face0 = observe_own([], {k: np.zeros(0) for k in n}, np.zeros(0), np.zeros(0))
    assert eyes0.shape == (0, 2) and face0.shape == (0, len(RESTING_MEASURES))
