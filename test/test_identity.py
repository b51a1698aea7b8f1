"""Identity/expression split, intensity, transfer and running identity fusion on real photos.

Source: skimage's astronaut (smiling, mouth a little open); target identity: matplotlib's
grace_hopper.jpg. Identities come from ``core.people.enrollment`` (expression removed as far as the
views allow).
"""

import cv2
import numpy as np
import pytest

from face3d_ros.core.people import enrollment as E
from face3d_ros.core.people import identity as idn

SMILE = ("mouth_smile_left", "mouth_smile_right")


@pytest.fixture(scope="module")
def engine(model_dir):
    from face3d_ros.core.config import EngineConfig
    from face3d_ros.core.pipeline.engine import FaceEngine

    return FaceEngine(EngineConfig(device="cpu", model_dir=str(model_dir)))


@pytest.fixture(scope="module")
def faces(engine, astronaut_rgb, grace_hopper_rgb):
    views = E.views_from_images(
        engine, [astronaut_rgb, np.ascontiguousarray(astronaut_rgb[:, ::-1]), grace_hopper_rgb,
                 np.ascontiguousarray(grace_hopper_rgb[:, ::-1])],
        ["astronaut", "astronaut_mirrored", "hopper", "hopper_mirrored"])
    return {"astronaut": views[0], "astronaut_id": E.enroll(views[:2]).model.vertices,
            "hopper": views[2], "hopper_id": E.enroll(views[2:]).model.vertices}


def _rms_mm(a, b):
    return 1e3 * float(np.sqrt(((idn.align(a, b) - b)[:468] ** 2).sum(-1).mean()))


def test_intensity_scales_the_expression(faces):
    ident = faces["astronaut_id"].astype(np.float64)
    observed = E.face_frame_points(faces["astronaut"].face)
    disp = idn.split(observed, ident)
    np.testing.assert_allclose(idn.apply_expression(ident, disp, 0.0), ident, atol=1e-12)
    np.testing.assert_allclose(idn.apply_expression(ident, disp, 1.0), idn.align(observed, ident),
                               atol=1e-9)
    levels = [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5]
    shapes = [idn.apply_expression(ident, disp, a) for a in levels]
    dist = [float(np.linalg.norm(s - ident, axis=-1).mean()) * 1e3 for s in shapes]
    smile = [np.mean([idn.expression_of(s)[k] for k in SMILE]) for s in shapes]
    jaw = [idn.expression_of(s)["jaw_open"] for s in shapes]
    print("\nintensity: " + ", ".join(f"{a:.2f}" for a in levels))
    print("mean displacement (mm): " + ", ".join(f"{d:.3f}" for d in dist))
    print("smile: " + ", ".join(f"{s:.3f}" for s in smile))
    print("jaw_open: " + ", ".join(f"{j:.3f}" for j in jaw))
    assert dist[0] == 0.0 and all(b > a for a, b in zip(dist, dist[1:]))
    assert all(b >= a - 1e-6 for a, b in zip(smile, smile[1:]))
    assert smile[4] > smile[0] + 0.3  # the smile is in the displacement
    obs = idn.expression_of(idn.align(observed, ident))
    assert smile[4] == pytest.approx(np.mean([obs[k] for k in SMILE]), abs=1e-5)
    assert jaw[-1] > jaw[0]
    for bad in (-0.1, 1.6):
        with pytest.raises(ValueError, match="intensity"):
            idn.apply_expression(ident, disp, bad)


def test_transfer_keeps_the_target_identity(faces):
    src_id = faces["astronaut_id"].astype(np.float64)
    tgt_id = faces["hopper_id"].astype(np.float64)
    disp = idn.split(E.face_frame_points(faces["astronaut"].face), src_id)
    moved = idn.transfer(disp, src_id, tgt_id)
    result = idn.apply_expression(tgt_id, moved, 1.0)
    to_target, to_source = _rms_mm(result, tgt_id), _rms_mm(result, src_id)
    between = _rms_mm(src_id, tgt_id)
    # The smile is measured against each person's own neutral face (their identity).
    smile_s = np.mean([idn.expression_of(idn.apply_expression(src_id, disp, 1.0), src_id)[k]
                       for k in SMILE])
    smile_r = np.mean([idn.expression_of(result, tgt_id)[k] for k in SMILE])
    print(f"\nidentities apart {between:.2f} mm; transferred face to target identity "
          f"{to_target:.2f} mm, to source identity {to_source:.2f} mm; smile of the source "
          f"{smile_s:.3f}, moved onto the target {smile_r:.3f}")
    assert to_target < to_source
    assert smile_s > 0.1 and smile_r > 0.5 * smile_s
    curve = [np.mean([idn.expression_of(idn.apply_expression(tgt_id, moved, a), tgt_id)[k]
                      for k in SMILE]) for a in (0.0, 0.5, 1.0, 1.5)]
    print("target smile at intensity 0, 0.5, 1, 1.5: " + ", ".join(f"{c:.3f}" for c in curve))
    assert curve[0] == pytest.approx(0.0, abs=1e-9)
    assert all(b >= a - 1e-6 for a, b in zip(curve, curve[1:])) and curve[-1] > curve[0] + 0.1
    # Scaled to the target: the displacement's size follows the face size ratio.
    ratio = idn.face_size(tgt_id) / idn.face_size(src_id)
    assert np.linalg.norm(moved[:468], axis=-1).mean() == pytest.approx(
        ratio * np.linalg.norm(disp[:468], axis=-1).mean(), rel=0.25)
    # Normalised displacements are the same for both faces (global scaling only).
    g = idn.transfer(disp, src_id, tgt_id, per_region=False)
    np.testing.assert_allclose(idn.normalise_displacement(g, tgt_id),
                               idn.normalise_displacement(disp, src_id), atol=1e-12)


def test_neutralize_leaves_a_neutral_face_alone(faces):
    from face3d_ros.core.pipeline.canonical import load_canonical

    can = load_canonical().vertices.astype(np.float64)
    ident, disp = idn.neutralize(can)
    assert float(np.abs(disp).max()) < 1e-3  # canonical = neutral: (almost) nothing removed
    obs = E.face_frame_points(faces["astronaut"].face)
    ident, disp = idn.neutralize(obs)
    assert float(np.linalg.norm(disp[list(idn.REGION_LANDMARKS["mouth"])], axis=-1).mean()) > \
        5.0 * float(np.linalg.norm(disp[[1, 4, 6, 168]], axis=-1).mean())


def _jittered(image, k):
    """A slightly shifted and scaled copy (a hand-held camera): real landmark jitter."""
    h, w = image.shape[:2]
    rng = np.random.default_rng(k)
    m = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), rng.uniform(-2, 2), rng.uniform(0.96, 1.04))
    m[:, 2] += rng.uniform(-6, 6, 2)
    return cv2.warpAffine(np.ascontiguousarray(image), m, (w, h), borderMode=cv2.BORDER_REFLECT)


def test_running_identity_converges_and_stops_flicker(engine, astronaut_rgb):
    frames = engine.process_batch([_jittered(astronaut_rgb, k) for k in range(10)])
    obs = [E.face_frame_points(f.faces[0]) for f in frames]
    fusion = idn.RunningIdentity(forgetting=0.05)
    updates = [fusion.update(x) for x in obs]
    assert updates[-1].frames == 10
    id_steps = [_rms_mm(b.identity, a.identity) for a, b in zip(updates, updates[1:])]
    raw = [_rms_mm(b, a) for a, b in zip(obs, obs[1:])]
    ref = updates[-1].identity
    raw_al = [idn.align(x, ref) for x in obs]
    raw_flicker = [1e3 * float(np.linalg.norm(b - a, axis=-1)[:468].mean())
                   for a, b in zip(raw_al[4:], raw_al[5:])]
    out_flicker = [1e3 * float(np.linalg.norm(b.mesh - a.mesh, axis=-1)[:468].mean())
                   for a, b in zip(updates[4:], updates[5:])]
    print("\nraw frame-to-frame shape change (mm): " + ", ".join(f"{r:.3f}" for r in raw))
    print("identity change per frame (mm): " + ", ".join(f"{s:.3f}" for s in id_steps))
    print(f"mesh flicker frames 5-10: raw {np.mean(raw_flicker):.3f} mm, fused output "
          f"{np.mean(out_flicker):.3f} mm")
    # The identity approaches the batch estimate of all ten frames as frames accumulate.
    neutral = [idn.neutralize(x)[0] for x in obs]
    batch = E.fuse_shapes(np.stack([idn.align(n, ref) for n in neutral]), np.ones((10, 478)))
    err = [_rms_mm(u.identity, batch) for u in updates]
    print("identity to the 10-frame batch estimate (mm): " + ", ".join(f"{e:.3f}" for e in err))
    assert err[-1] < 0.5 * err[1] and err[-1] < 0.5 * err[0]
    assert np.mean(id_steps[-3:]) < 0.5 * np.mean(raw)
    assert np.mean(out_flicker) < 0.6 * np.mean(raw_flicker)
    # The fused output keeps the smile the frames show.
    smile = np.mean([idn.expression_of(updates[-1].mesh)[k] for k in SMILE])
    smile_id = np.mean([idn.expression_of(updates[-1].identity)[k] for k in SMILE])
    assert smile > smile_id + 0.2


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError, match=r"\(478, 3\)"):
        idn.split(np.zeros((468, 3)), np.zeros((478, 3)))
    with pytest.raises(ValueError, match="forgetting"):
        idn.RunningIdentity(forgetting=0.0)
