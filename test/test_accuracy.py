"""Accuracy regression tests: a small fixed subset of ``face3d-accuracy`` (issue 9).

Renders of two real head models with exact truth (``face3d_ros.tools.head_render``; the models
are read from ``../shared/data/heads`` beside the repository, or ``$FACE3D_HEADS_DIR``, and the
render tests skip with the reason where that folder is absent) and two real photos (no head
models needed). Each figure is computed with the benchmark's own functions
(``face3d_ros.tools.accuracy``) and printed (``pytest -s``).

Thresholds: every one is a named constant below with issue 9's target in its comment. Where
the figure measured when this file was written already met the target, the threshold is the
target; otherwise it is that figure plus about 20 % (so the test catches a regression, not a
missed target) and the comment says so. Tighten them towards the target as the accuracy work
lands.
"""

import numpy as np
import pytest

from face3d_ros.tools import accuracy as A

# --------------------------------------------------------------------------------------------
# Thresholds (deg unless stated)

# Frontal head pose offset (geodesic): target <= 1.5 (met on the head scan).
FRONTAL_OFFSET_LPS_DEG = 1.5
# Frontal offset on facecap: target <= 1.5; measured 4.6 (pitch +4.8), + 20 %.
FRONTAL_OFFSET_FACECAP_DEG = 5.5
# Head pose MAE per angle (yaw, pitch, roll) over POSE_SET on the head scan: target <= 3 (met).
POSE_MAE_DEG = 3.0
# Turned heads (TURNED_SET): yaw read within 5 deg (target up to +-75: met on both heads at
# +-60 and on facecap at +-75 since the pose fit allows for the mesh network's view
# deformation; before it the scan read 51.8 at 60).
TURNED_YAW_ERR_DEG = 5.0
# Yaw -> roll leak, |read roll| on pure-yaw renders: target <= 3. Met on facecap (2.5 at 60;
# 6.7 before the view deformation); the scan reads 3.6 at 60 (9.3 before), + 20 %.
YAW_ROLL_LEAK_FACECAP_DEG = 3.0
YAW_ROLL_LEAK_LPS_DEG = 4.3
# Combined-gaze MAE over GAZE_EYES at head yaw 0: target <= 5 (met since the eyeball centres
# are placed without the networks' follow of the eyes: 2.9; before it 6.8).
GAZE_MAE_HEAD_FRONTAL_DEG = 5.0
# The same at head yaw +30: target <= 5; measured 6.3 (before the follow model 10.5), + 20 %.
GAZE_MAE_HEAD_TURNED_DEG = 7.6
# face3d's eye model (iris ray met with the eyeball sphere, at the radius face3d read) from the
# true iris centres and the true eyeball centres, combined-gaze MAE at head yaw 30: measured
# 0.4 on GAZE_EYES (0.5 on table 2g's grid; 0.2 with the radius at the true scale: the
# renders' iris plane sits 10.45 mm from the centre, the model's 10.5 mm); no target, about
# twice the measured figure (a sixth of the gaze target).
EYE_MODEL_EXACT_DEG = 0.8
# The same recomputation from face3d's own inputs against its published gaze, each render:
# measured within 0.05.
RECOMPUTED_GAZE_DEG = 0.2
# Photo mirror bias |(gaze yaw + mirrored gaze yaw) / 2| (combined, each photo): target <= 1
# (met with mesh_flip: 0.3 astronaut, 0.5 Grace Hopper; before it 3.3 and 4.0).
PHOTO_MIRROR_BIAS_DEG = 1.0
# Astronaut eye contact, combined gaze against the ray to the camera: target <= 5; measured
# 12.2, + 20 % (12.9 with mesh_flip, which brings Grace Hopper from 4.3 to 1.4).
EYE_CONTACT_ASTRONAUT_DEG = 14.6
# Grace Hopper eye contact: target <= 5 (met: 3.5; 1.4 before the follow model, whose gain of
# ~1 no longer shrinks her small offsets).
EYE_CONTACT_HOPPER_DEG = 5.0
# Blink of a fully closed eye (eyeBlink = 1), each eye, lower bound: target >= 0.8 (met since
# the lid-pair openness measure: 0.84 left, 1.00 right; before it 0.55 / 0.70).
CLOSED_EYE_BLINK_MIN = 0.8
# That closed eye's gaze confidence, upper bound: target <= 0.3 (met: 0.22 left, 0.00 right).
CLOSED_EYE_GAZE_CONFIDENCE_MAX = 0.3
# jaw_open against jawOpen over JAW_WEIGHTS: Pearson r >= 0.9 and monotone (both met).
JAW_OPEN_R_MIN = 0.9
# brow_up rise from browInnerUp 0 to 1 (facecap raises only the inner brow): measured 0.29.
BROW_UP_RISE_MIN = 0.15
# Neutral face, largest coefficient: target <= 0.15; measured 0.38 (brow_up: facecap's brows
# sit ~3 mm higher than the neutral faces') since the brows are measured above the nose bridge
# (0.59 above the eye corners; 0.54, mouth_pucker, against the canonical face), + 20 %.
NEUTRAL_MAX = 0.46
# A neutral head pitched by +-20 deg: brow_down at most, and brow_up's change from facing the
# camera at most (no target of its own; issue 9's neutral face <= 0.15). Measured above the
# nose bridge: brow_down 0.00, brow_up change 0.15; above the eye corners the head scan
# looking up read brow_down 0.81 and looking down brow_up +0.28. brow_down: the neutral
# target; brow_up: the measured change + 20 %.
PITCHED_BROW_DOWN_MAX = 0.15
# The neutral facecap head turned by +-30 deg, mouth_smile on either side: target <= 0.15 (the
# neutral face's); measured 0.20 since the corners' spread is taken from the nose's midline
# (0.35 from the face frame's), + 20 %.
TURNED_NEUTRAL_SMILE_MAX = 0.24
PITCHED_BROW_UP_CHANGE_MAX = 0.18
# Neutral face, the mouth's coefficients (pucker, funnel, smile, jaw_open): target <= 0.15;
# measured 0.20 (mouth_pucker) since mouth_funnel needs the lips apart (0.27, mouth_funnel,
# while it was measured by the lips' depth; 0.54, mouth_pucker, before the expression
# neutral), + 20 %.
NEUTRAL_MOUTH_MAX = 0.24
# A tracked neutral face against the person's own resting face (after four seconds of the head
# swaying within 6 deg), largest coefficient facing the camera: target <= 0.15 (met: 0.10;
# against the stored average 0.38, brow_up). After it, in this test's stream, full jawOpen,
# browInnerUp and browDown_L still read (0.85, 0.26 and 0.43 when written: the resting face
# does not absorb them; browDown read 0 on single images, facecap's brows sitting high).
TRACKED_NEUTRAL_MAX = 0.15
TRACKED_JAW_OPEN_MIN = 0.6
TRACKED_BROW_DOWN_MIN = 0.3
# mouth_funnel against mouthFunnel over FUNNEL_WEIGHTS: Pearson r >= 0.9 and monotone (met:
# 0.98 since it is the pucker's narrowing with the lips apart; 0.54, not monotone, measured by
# the lips' depth).
FUNNEL_R_MIN = 0.9
# mouth_smile_left/right against mouthSmile_L/R over SMILE_WEIGHTS: Pearson r >= 0.9 and
# monotone (met since the expression neutral: r 0.97 / 0.96; always 0 before).
SMILE_R_MIN = 0.9
# eye_blink_left/right of a tracked face against the person's own open eye, over BLINK_WEIGHTS:
# Pearson r >= 0.9 and monotone (met: 0.97 / 0.97; single images, against the stored average
# open eye, read 0.86 / 0.85: facecap's eyes are 14 % more open than the average's).
OWN_EYE_BLINK_R_MIN = 0.9
# A two-frame blink of a tracked face with the node's smoothing: on its closed frames blink
# >= 0.8 and that eye's gaze confidence <= 0.3 (issue 9's closed-eye targets; met: 1.00 /
# 0.00; through the landmark smoothing it read 0.68 at most, with full confidence on a frame).

# --------------------------------------------------------------------------------------------
# The subset

POSE_SET = ((0, 0, 0), (30, 0, 0), (-30, 0, 0), (0, 20, 0), (0, -20, 0), (0, 0, 30),
            (0, 0, -30))  # (yaw, pitch, roll), head scan
#: (head, yaw) pure-yaw renders of turned heads
TURNED_SET = (("lps", -60.0), ("lps", 60.0), ("facecap", -60.0), ("facecap", 60.0),
              ("facecap", -75.0), ("facecap", 75.0))
GAZE_EYES = tuple((y, p) for y in (-20, 0, 20) for p in (-15, 0, 15))  # facecap, head yaw 0
JAW_WEIGHTS = (0.0, 0.5, 1.0)
SMILE_WEIGHTS = (0.0, 0.5, 1.0)
BLINK_WEIGHTS = (0.0, 0.5, 1.0)
FUNNEL_WEIGHTS = (0.0, 0.5, 1.0)
MOUTH = ("mouth_pucker", "mouth_funnel", "mouth_smile_left", "mouth_smile_right", "jaw_open")


@pytest.fixture(scope="module")
def acc():
    """The benchmark's renderer + engine (CPU), caching renders across the tests."""
    pytest.importorskip("face3d_ros.tools.head_render",
                        reason="the head renderer (face3d_ros/tools/head_render.py) is absent")
    return A.Accuracy(None, device="cpu")


@pytest.fixture(scope="module")
def heads():
    """The head models folder; skips the render tests with the reason when it is absent."""
    from face3d_ros.tools.head_render import heads_dir

    try:
        return heads_dir()
    except FileNotFoundError as exc:
        pytest.skip(f"head models absent ({exc}); the photo tests still run")


def _found(acc, spec):
    s = acc.sample(spec)
    assert s.found, f"no face found in the render {spec}"
    return s


@pytest.mark.parametrize("head, limit", [("lps", FRONTAL_OFFSET_LPS_DEG),
                                         ("facecap", FRONTAL_OFFSET_FACECAP_DEG)])
def test_frontal_pose_offset(acc, heads, head, limit):
    """A head facing the camera reads a pose close to zero."""
    off = A.frontal_offset(_found(acc, A.Spec(head)))
    print(f"\nfrontal offset {head}: yaw {off['yaw']:+.2f} pitch {off['pitch']:+.2f} "
          f"roll {off['roll']:+.2f} geodesic {off['geodesic']:.2f} deg (limit {limit})")
    assert off["geodesic"] <= limit


def test_pose_mae_small_set(acc, heads):
    """Head pose MAE per angle over a few poses of the head scan."""
    samples = [_found(acc, A.Spec("lps", *pose)) for pose in POSE_SET]
    m = A.pose_mae(samples)
    print(f"\npose MAE lps: yaw {m['yaw']:.2f} pitch {m['pitch']:.2f} roll {m['roll']:.2f}, "
          f"geodesic mean {m['geodesic']:.2f} max {m['geodesic_max']:.2f} deg "
          f"(limit {POSE_MAE_DEG} per angle)")
    assert max(m["yaw"], m["pitch"], m["roll"]) <= POSE_MAE_DEG


def test_turned_head_yaw_and_roll_leak(acc, heads):
    """Heads turned far to the side read their yaw within 5 deg and little roll (the mesh
    network's deformation of a turned face is allowed for in the pose fit)."""
    leak_limit = {"lps": YAW_ROLL_LEAK_LPS_DEG, "facecap": YAW_ROLL_LEAK_FACECAP_DEG}
    print()
    for head, yaw in TURNED_SET:
        s = _found(acc, A.Spec(head, yaw=yaw))
        e = A.pose_errors(s)
        print(f"{head} yaw {yaw:+.0f}: read yaw {s.reading.yaw:+.1f} roll {s.reading.roll:+.1f} "
              f"(limits {TURNED_YAW_ERR_DEG} / {leak_limit[head]})")
        assert abs(e["yaw"]) <= TURNED_YAW_ERR_DEG
        assert abs(s.reading.roll) <= leak_limit[head]


def test_gaze_mae_head_frontal(acc, heads):
    """Combined-gaze angular error over a small eye grid with the head facing the camera."""
    errs = [A.gaze_errors(_found(acc, A.Spec("facecap", eye_yaw=y, eye_pitch=p)))
            for y, p in GAZE_EYES]
    mae = float(np.mean([e["combined"] for e in errs]))
    print(f"\ngaze MAE head yaw 0: combined {mae:.2f}, right "
          f"{np.mean([e['right'] for e in errs]):.2f}, left "
          f"{np.mean([e['left'] for e in errs]):.2f} deg (limit {GAZE_MAE_HEAD_FRONTAL_DEG})")
    assert mae <= GAZE_MAE_HEAD_FRONTAL_DEG


def test_gaze_mae_head_turned(acc, heads):
    """Combined-gaze angular error over the same eye grid with the head turned by 30 deg
    (the eyeball centres' depth matters only here)."""
    errs = [A.gaze_errors(_found(acc, A.Spec("facecap", yaw=30.0, eye_yaw=y, eye_pitch=p)))
            for y, p in GAZE_EYES]
    mae = float(np.mean([e["combined"] for e in errs]))
    print(f"\ngaze MAE head yaw +30: combined {mae:.2f} deg (limit {GAZE_MAE_HEAD_TURNED_DEG})")
    assert mae <= GAZE_MAE_HEAD_TURNED_DEG


def test_gaze_error_split_by_input(acc, heads):
    """Table 2g on the turned-head grid: recomputed from face3d's own inputs, the eye model
    gives the published gaze; given the true iris centres and the true eyeball centres it
    reads the true gaze within a fraction of a degree (the model and the radius face3d reads
    are right); swapping either input for the truth alone removes part of the error (both
    inputs carry some)."""
    split = [A.gaze_sources(_found(acc, A.Spec("facecap", yaw=30.0, eye_yaw=y, eye_pitch=p)),
                            acc.camera) for y, p in GAZE_EYES]
    mean = {k: float(np.mean([s[k] for s in split])) for k in split[0]}
    print("\ngaze error split, head yaw +30: " + ", ".join(
        f"{k} {v:.2f}" for k, v in mean.items()))
    # The recomputation from face3d's own inputs is the reading itself (published float32
    # values: within a few hundredths of a degree).
    assert max(abs(s["recomputed"] - s["as read"]) for s in split) <= RECOMPUTED_GAZE_DEG
    assert mean["both true"] <= EYE_MODEL_EXACT_DEG
    for swapped in ("true iris centres", "true eyeball centres"):
        assert mean[swapped] < mean["as read"]


@pytest.mark.parametrize("photo", ["astronaut", "grace_hopper"])
def test_photo_mirror_bias(acc, photo):
    """A photo and its mirror image give opposite gaze yaw."""
    a, b = acc.photo(photo)
    assert a.found and b.found, f"no face in {photo} or its mirror image"
    m = A.mirror_sums(a, b)
    print(f"\nmirror sum/2 {photo}: right {m['right']:+.2f} left {m['left']:+.2f} combined "
          f"{m['combined']:+.2f} head {m['head']:+.2f} deg (limit {PHOTO_MIRROR_BIAS_DEG})")
    assert abs(m["combined"]) <= PHOTO_MIRROR_BIAS_DEG


@pytest.mark.parametrize("photo, limit", [("astronaut", EYE_CONTACT_ASTRONAUT_DEG),
                                          ("grace_hopper", EYE_CONTACT_HOPPER_DEG)])
def test_eye_contact(acc, photo, limit):
    """The astronaut and Grace Hopper look into the lens: the combined gaze points at the
    camera."""
    a, _ = acc.photo(photo)
    assert a.found
    c = A.eye_contact(a)
    print(f"\neye contact {photo}: yaw {c['yaw']:+.2f} pitch {c['pitch']:+.2f} angle "
          f"{c['angle']:.2f} deg (limit {limit})")
    assert c["angle"] <= limit


@pytest.mark.parametrize("blend, coef, eye", [("eyeBlink_L", "eye_blink_left", 1),
                                              ("eyeBlink_R", "eye_blink_right", 0)])
def test_closed_eye_blinks(acc, heads, blend, coef, eye):
    """A fully closed eye reads a high blink coefficient and a low gaze confidence."""
    s = _found(acc, A.Spec("facecap", blend=((blend, 1.0),)))
    value = s.reading.expression[coef]
    conf = float(s.reading.gaze_confidence[eye])
    print(f"\n{blend}=1: {coef} {value:.2f} (min {CLOSED_EYE_BLINK_MIN}), that eye's gaze "
          f"confidence {conf:.2f} (max {CLOSED_EYE_GAZE_CONFIDENCE_MAX})")
    assert value >= CLOSED_EYE_BLINK_MIN
    assert conf <= CLOSED_EYE_GAZE_CONFIDENCE_MAX


def test_jaw_open_monotone(acc, heads):
    """jaw_open rises with the jawOpen weight."""
    values = [_found(acc, A.Spec("facecap", blend=(("jawOpen", w),) if w else ()))
              .reading.expression["jaw_open"] for w in JAW_WEIGHTS]
    fit = A.expression_curve(JAW_WEIGHTS, values)
    print(f"\njaw_open at {JAW_WEIGHTS}: {np.round(values, 3).tolist()}, r {fit['r']:.3f}, "
          f"monotone {fit['monotone']} (r min {JAW_OPEN_R_MIN})")
    assert fit["monotone"]
    assert fit["r"] >= JAW_OPEN_R_MIN


@pytest.mark.parametrize("blend, coef, other", [
    ("mouthSmile_L", "mouth_smile_left", "mouth_smile_right"),
    ("mouthSmile_R", "mouth_smile_right", "mouth_smile_left")])
def test_smile_follows_the_weight(acc, heads, blend, coef, other):
    """mouth_smile_* rises with the mouthSmile weight of its own side (it read 0 throughout
    while measured against the canonical face, whose mouth is half a smile)."""
    samples = [_found(acc, A.Spec("facecap", blend=((blend, w),) if w else ()))
               for w in SMILE_WEIGHTS]
    values = [s.reading.expression[coef] for s in samples]
    fit = A.expression_curve(SMILE_WEIGHTS, values)
    print(f"\n{coef} at {blend} {SMILE_WEIGHTS}: {np.round(values, 3).tolist()}, r "
          f"{fit['r']:.3f}, monotone {fit['monotone']}; {other} at 1: "
          f"{samples[-1].reading.expression[other]:.3f} (r min {SMILE_R_MIN})")
    assert fit["monotone"] and fit["r"] >= SMILE_R_MIN
    assert samples[-1].reading.expression[other] < values[-1]  # sides not swapped


def test_funnel_follows_the_weight(acc, heads):
    """mouth_funnel rises with mouthFunnel (the lips narrow and part), and a jaw opened
    without narrowing the mouth reads less funnel than a full funnel."""
    values = [_found(acc, A.Spec("facecap", blend=(("mouthFunnel", w),) if w else ()))
              .reading.expression["mouth_funnel"] for w in FUNNEL_WEIGHTS]
    fit = A.expression_curve(FUNNEL_WEIGHTS, values)
    jaw = _found(acc, A.Spec("facecap", blend=(("jawOpen", 1.0),))).reading.expression
    print(f"\nmouth_funnel at mouthFunnel {FUNNEL_WEIGHTS}: {np.round(values, 3).tolist()}, r "
          f"{fit['r']:.3f}, monotone {fit['monotone']}; at jawOpen 1: {jaw['mouth_funnel']:.3f} "
          f"(r min {FUNNEL_R_MIN})")
    assert fit["monotone"] and fit["r"] >= FUNNEL_R_MIN
    assert jaw["mouth_funnel"] < 0.5 * values[-1]


def test_brow_up_rises_with_the_brows(acc, heads):
    """brow_up rises when browInnerUp lifts the brows (it fell while the brows came from the
    edge of the iris network's eye crop: r -0.94)."""
    values = [_found(acc, A.Spec("facecap", blend=(("browInnerUp", w),) if w else ()))
              .reading.expression["brow_up"] for w in (0.0, 1.0)]
    print(f"\nbrow_up at browInnerUp 0 and 1: {np.round(values, 3).tolist()}")
    assert values[1] >= values[0] + BROW_UP_RISE_MIN


@pytest.mark.parametrize("head", ["lps", "facecap"])
def test_brows_do_not_follow_the_head_pitch(acc, heads, head):
    """A neutral head looking up or down reads no frown and (almost) no more brow raise than
    facing the camera: the brows are measured above the nose bridge, whose height does not
    move with the pitch as the eye corners' does."""
    front = _found(acc, A.Spec(head)).reading.expression
    for pitch in (-20.0, 20.0):
        e = _found(acc, A.Spec(head, pitch=pitch)).reading.expression
        down = max(e["brow_down_left"], e["brow_down_right"])
        change = abs(e["brow_up"] - front["brow_up"])
        print(f"\n{head} pitch {pitch:+.0f}: brow_down {down:.2f} (max {PITCHED_BROW_DOWN_MAX}), "
              f"brow_up {e['brow_up']:.2f} against {front['brow_up']:.2f} facing (change max "
              f"{PITCHED_BROW_UP_CHANGE_MAX})")
        assert down <= PITCHED_BROW_DOWN_MAX
        assert change <= PITCHED_BROW_UP_CHANGE_MAX


@pytest.mark.parametrize("yaw", [-30.0, 30.0])
def test_turned_neutral_face_does_not_smile(acc, heads, yaw):
    """A neutral face turned by 30 deg reads no smile on its nearer side: the mouth corners'
    spread is taken from the nose's midline, which the mesh network shifts with the lower face
    when the head turns."""
    e = _found(acc, A.Spec("facecap", yaw=yaw)).reading.expression
    smile = max(e["mouth_smile_left"], e["mouth_smile_right"])
    print(f"\nneutral at head yaw {yaw:+.0f}: mouth_smile left {e['mouth_smile_left']:.2f} right "
          f"{e['mouth_smile_right']:.2f} (max {TURNED_NEUTRAL_SMILE_MAX})")
    assert smile <= TURNED_NEUTRAL_SMILE_MAX


def test_neutral_face_coefficients(acc, heads):
    """A neutral face reads low on every expression coefficient."""
    expr = _found(acc, A.Spec("facecap")).reading.expression
    name = max(expr, key=expr.get)
    print("\nneutral: " + ", ".join(f"{k} {v:.2f}" for k, v in expr.items())
          + f"; max {name} {expr[name]:.2f} (limit {NEUTRAL_MAX})")
    assert expr[name] <= NEUTRAL_MAX
    mouth = max(MOUTH, key=expr.get)
    print(f"neutral mouth: max {mouth} {expr[mouth]:.2f} (limit {NEUTRAL_MOUTH_MAX})")
    assert expr[mouth] <= NEUTRAL_MOUTH_MAX


@pytest.mark.parametrize("blend, coef, other", [
    ("eyeBlink_L", "eye_blink_left", "eye_blink_right"),
    ("eyeBlink_R", "eye_blink_right", "eye_blink_left")])
def test_tracked_blink_against_own_open_eye(acc, heads, blend, coef, other):
    """A tracked face's blink follows the eyeBlink weight from half closed on, measured against
    the person's own open eye (on single images, against the average's, eyeBlink 0.5 reads no
    blink on facecap's wider eyes)."""
    readings = acc.tracked([A.Spec("facecap", blend=((blend, w),) if w else ())
                            for w in BLINK_WEIGHTS], A.Spec("facecap"),
                           A.OWN_EYE_WARMUP_FRAMES)
    assert all(r is not None for r in readings), "the tracked face was lost"
    values = [r.expression[coef] for r in readings]
    fit = A.expression_curve(BLINK_WEIGHTS, values)
    print(f"\ntracked {coef} at {blend} {BLINK_WEIGHTS}: {np.round(values, 3).tolist()}, r "
          f"{fit['r']:.3f}, monotone {fit['monotone']}; {other} at 1: "
          f"{readings[-1].expression[other]:.3f} (r min {OWN_EYE_BLINK_R_MIN})")
    assert fit["monotone"] and fit["r"] >= OWN_EYE_BLINK_R_MIN
    assert values[1] > 0.1  # half closed already reads as closing
    assert readings[-1].expression[other] < 0.1  # the other eye stays open


def test_two_frame_blink_through_the_tracker(acc, heads):
    """A short blink reaches full blink and zero gaze confidence on its closed frames with the
    node's default smoothing, and is over when the eye opens (the landmark filter, tuned for
    pose and gaze, once smeared it over eight frames at two thirds of its height)."""
    weights = A.BLINK_SEQUENCE
    readings = acc.tracked([A.Spec("facecap", blend=(("eyeBlink_L", w),) if w else ())
                            for w in weights], A.Spec("facecap"), A.OWN_EYE_WARMUP_FRAMES,
                           smoothing=True)
    assert all(r is not None for r in readings), "the tracked face was lost"
    blink = [r.expression["eye_blink_left"] for r in readings]
    conf = [float(r.gaze_confidence[1]) for r in readings]
    print(f"\nweights {weights}: eye_blink_left {np.round(blink, 2).tolist()}, left gaze "
          f"confidence {np.round(conf, 2).tolist()}")
    closed = [k for k, w in enumerate(weights) if w == 1.0]
    assert min(blink[k] for k in closed) >= CLOSED_EYE_BLINK_MIN
    assert max(conf[k] for k in closed) <= CLOSED_EYE_GAZE_CONFIDENCE_MAX
    assert max(blink[closed[-1] + 2:]) < 0.1  # open again: no blink left
    assert max(r.expression["eye_blink_right"] for r in readings) < 0.1  # the other eye


def test_tracked_neutral_face_against_own_resting_face(acc, heads):
    """A tracked face is measured against the person's own resting face: the neutral facecap
    head, whose brows sit higher than the average's (brow_up 0.38 on a single image), reads
    neutral once tracked for two seconds of small head motion, and expressions shown after it
    still read."""
    neutral = A.Spec("facecap")
    readings = acc.tracked([neutral, A.Spec("facecap", blend=(("jawOpen", 1.0),)),
                            A.Spec("facecap", blend=(("browInnerUp", 1.0),)),
                            A.Spec("facecap", blend=(("browDown_L", 1.0),))],
                           A.resting_sway(neutral), A.RESTING_WARMUP_FRAMES)
    assert all(r is not None for r in readings), "the tracked face was lost"
    rest, jaw, brow, frown = (r.expression for r in readings)
    name = max(rest, key=rest.get)
    print(f"\ntracked neutral: max {name} {rest[name]:.2f} (limit {TRACKED_NEUTRAL_MAX}); "
          f"jawOpen 1: jaw_open {jaw['jaw_open']:.2f}; browInnerUp 1: brow_up "
          f"{brow['brow_up']:.2f}; browDown_L 1: brow_down_left {frown['brow_down_left']:.2f}")
    assert rest[name] <= TRACKED_NEUTRAL_MAX
    assert jaw["jaw_open"] >= TRACKED_JAW_OPEN_MIN
    assert brow["brow_up"] >= BROW_UP_RISE_MIN
    assert frown["brow_down_left"] >= TRACKED_BROW_DOWN_MIN
