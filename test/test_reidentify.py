"""Re-identification by identity shape on real photos (core only, no rclpy).

Enrolled identities: the astronaut (skimage) and Grace Hopper (matplotlib), each enrolled from
the photo, its mirror image and +-15 degree rotations. Live "frames" of a person are other
perturbations of the same photo (rotation, scale, brightness, noise, blur): these are the only
real images of these people at hand, so the same-person distances printed here are a lower
bound of what a live camera gives (docs/enrollment.md, re-identification).
"""

import cv2
import numpy as np
import pytest

from face3d_ros.core import enrollment as E
from face3d_ros.core import identity as idn


def _warp(image, angle, scale=1.0):
    h, w = image.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), angle, scale)
    return cv2.warpAffine(np.ascontiguousarray(image), m, (w, h),
                          borderMode=cv2.BORDER_REFLECT)


def _enrol_views(image):
    return [image, np.ascontiguousarray(image[:, ::-1]), _warp(image, 15.0),
            _warp(image, -15.0)]


def _live_frames(image):
    """Six perturbed copies: rotations, scales, brightness, sensor noise."""
    noisy = image.astype(np.float64) + np.random.default_rng(0).normal(0.0, 8.0, image.shape)
    return [_warp(image, 8.0), _warp(image, -8.0), _warp(image, 0.0, 0.7),
            _warp(image, 5.0, 0.8),
            np.clip(image.astype(np.float64) * 0.7 + 20.0, 0, 255).astype(np.uint8),
            np.clip(noisy, 0, 255).astype(np.uint8)]


@pytest.fixture(scope="module")
def engine(model_dir):
    from face3d_ros.core.config import EngineConfig
    from face3d_ros.core.engine import FaceEngine

    return FaceEngine(EngineConfig(device="cpu", model_dir=str(model_dir)))


@pytest.fixture(scope="module")
def people(engine, astronaut_rgb, grace_hopper_rgb):
    out = {}
    for name, image in (("astronaut", astronaut_rgb), ("hopper", grace_hopper_rgb)):
        model = E.enroll(E.views_from_images(engine, _enrol_views(image)), name=name).model
        frames = [E.largest_face(f.faces) for f in engine.process_batch(_live_frames(image))]
        assert all(f is not None for f in frames), f"a live frame of {name} lost its face"
        out[name] = (model, frames)
    return out


def _feed(reid, track_id, frames):
    return [reid.update(track_id, E.face_frame_points(f), f.head_pose.yaw, f.head_pose.pitch,
                        np.asarray(f.expression.values)) for f in frames]


def test_measured_distances_separate_the_two_people(people):
    """Per-frame and running distances, printed: the figures the threshold comes from."""
    rows = {}
    for live in ("astronaut", "hopper"):
        frames = people[live][1]
        for model_name in ("astronaut", "hopper"):
            model = people[model_name][0]
            single = [idn.shape_distance(E.face_frame_points(f), model.vertices)
                      for f in frames]
            running = idn.RunningIdentity()
            fused = []
            for f in frames:
                running.update(E.face_frame_points(f))
                fused.append(idn.shape_distance(running.identity, model.vertices))
            rows[(live, model_name)] = (single, fused)
            print(f"\n{live} frames vs {model_name} model: per frame "
                  + " ".join(f"{d:.4f}" for d in single) + "; running "
                  + " ".join(f"{d:.4f}" for d in fused))
    from face3d_ros.core.canonical import load_canonical

    mean_face = load_canonical().vertices
    to_mean = {n: idn.shape_distance(mean_face, people[n][0].vertices) for n in people}
    print("mean face vs models: " + ", ".join(f"{n} {d:.4f}" for n, d in to_mean.items()))
    same = [d for k in (("astronaut", "astronaut"), ("hopper", "hopper"))
            for d in rows[k][1][idn.REID_MIN_FRAMES - 1:]]
    other = [d for k in (("astronaut", "hopper"), ("hopper", "astronaut"))
             for d in rows[k][1][idn.REID_MIN_FRAMES - 1:]]
    print(f"running, from frame {idn.REID_MIN_FRAMES}: same person max {max(same):.4f}, "
          f"other person min {min(other):.4f}; threshold {idn.REID_THRESHOLD}, "
          f"margin {idn.REID_MARGIN}")
    assert max(same) < idn.REID_THRESHOLD < min(other)
    assert min(other) - max(same) > 2 * idn.REID_MARGIN


def test_astronaut_recognised_after_a_few_frames(people):
    reid = idn.Reidentifier()
    for pid, name in ((1, "astronaut"), (2, "hopper")):
        reid.add(pid, name, people[name][0].vertices)
    matches = _feed(reid, 5, people["astronaut"][1])
    assert [m.reason for m in matches[:idn.REID_MIN_FRAMES - 1]] == \
        ["too few frames"] * (idn.REID_MIN_FRAMES - 1)
    for m in matches[idn.REID_MIN_FRAMES - 1:]:
        assert m.known and (m.person_id, m.name) == (1, "astronaut"), m
        assert m.distance < idn.REID_THRESHOLD and m.second - m.distance >= idn.REID_MARGIN
    assert reid.track_of(1) == 5 and reid.track_of(2) is None
    reid.prune([])
    assert reid.track_of(1) is None


def test_hopper_is_not_taken_for_the_astronaut(people):
    reid = idn.Reidentifier()
    reid.add(1, "astronaut", people["astronaut"][0].vertices)
    matches = _feed(reid, 9, people["hopper"][1])
    assert all(not m.known and m.person_id == idn.UNKNOWN_ID and m.name == "" for m in matches)
    assert all(m.reason == "too far" for m in matches[idn.REID_MIN_FRAMES - 1:])
    assert min(m.distance for m in matches) > idn.REID_THRESHOLD
    # Enrolling her makes the same track known as Hopper from its next frame.
    reid.add(2, "hopper", people["hopper"][0].vertices)
    again = _feed(reid, 9, people["hopper"][1][:1])[0]
    assert again.known and again.name == "hopper"


def test_unknown_without_identities_and_when_ambiguous(people):
    reid = idn.Reidentifier()
    m = _feed(reid, 1, people["astronaut"][1][:3])[-1]
    assert not m.known and m.reason == "no identities" and m.distance == np.inf
    # The same shape enrolled twice under two ids: nearest and second are equally near.
    twin = idn.Reidentifier()
    twin.add(1, "astronaut", people["astronaut"][0].vertices)
    twin.add(2, "astronaut twin", people["astronaut"][0].vertices)
    m = _feed(twin, 1, people["astronaut"][1][:4])[-1]
    assert not m.known and m.reason == "ambiguous"


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="threshold"):
        idn.Reidentifier(threshold=0.0)
    with pytest.raises(ValueError, match="min_frames"):
        idn.Reidentifier(min_frames=0)
    with pytest.raises(ValueError, match="person_id"):
        idn.Reidentifier().add(-1, "x", np.zeros((478, 3)))
    with pytest.raises(ValueError, match=r"\(478, 3\)"):
        idn.shape_distance(np.zeros((468, 3)), np.zeros((478, 3)))
