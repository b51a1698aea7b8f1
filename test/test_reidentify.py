"""Re-identification by identity shape on real photos (core only, no rclpy).

Enrolled identities: the astronaut (skimage) and Grace Hopper (matplotlib), each enrolled from
the photo and its mirror image with the faces the tracker settles on (as the people node's
EnrollFace action collects them from the perception node's faces). Live faces of a person are
tracked sequences of other perturbations of the same photo (rotation, scale, brightness,
noise): these are the only real images of these people at hand, so the same-person distances
printed here are a lower bound of what a live camera gives (docs/enrollment.md,
re-identification).
"""

import cv2
import numpy as np
import pytest

from face3d_ros.core.people import enrollment as E
from face3d_ros.core.people import identity as idn
from face3d_ros.core.pipeline.canonical import load_canonical
from face3d_ros.core.config import TrackerConfig

TRACKED_FRAMES = 8


def _warp(image, angle, scale=1.0):
    h, w = image.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), angle, scale)
    return cv2.warpAffine(np.ascontiguousarray(image), m, (w, h),
                          borderMode=cv2.BORDER_REFLECT)


def _live_images(image):
    """Six perturbed copies: rotations, scales, brightness, sensor noise."""
    noisy = image.astype(np.float64) + np.random.default_rng(0).normal(0.0, 8.0, image.shape)
    return [_warp(image, 8.0), _warp(image, -8.0), _warp(image, 0.0, 0.7),
            _warp(image, 5.0, 0.8),
            np.clip(image.astype(np.float64) * 0.7 + 20.0, 0, 255).astype(np.uint8),
            np.clip(noisy, 0, 255).astype(np.uint8)]


def _tracked(engine, image, frames=TRACKED_FRAMES):
    """The confirmed faces (track id >= 0) of ``frames`` tracker calls on one still image."""
    from face3d_ros.core.pipeline.tracking import FaceTracker

    tracker = FaceTracker(engine, TrackerConfig())
    out = []
    for i in range(frames):
        faces = tracker.process(image, None, 0.1 * i).faces
        assert len(faces) == 1
        if faces[0].track_id >= 0:
            out.append(faces[0])
    return out


@pytest.fixture(scope="module")
def engine(model_dir):
    from face3d_ros.core.config import EngineConfig
    from face3d_ros.core.pipeline.engine import FaceEngine

    return FaceEngine(EngineConfig(device="cpu", model_dir=str(model_dir)))


@pytest.fixture(scope="module")
def people(engine, astronaut_rgb, grace_hopper_rgb):
    """name -> (model, [tracked face sequence per live image], detection-ROI face)."""
    out = {}
    for name, image in (("astronaut", astronaut_rgb), ("hopper", grace_hopper_rgb)):
        views = [E.EnrollmentView(n, im, _tracked(engine, im)[-1])
                 for n, im in (("front", image), ("mirrored",
                                                  np.ascontiguousarray(image[:, ::-1])))]
        model = E.enroll(views, name=name).model
        live = [_tracked(engine, im) for im in _live_images(image)]
        single = E.views_from_images(engine, [image])[0].face
        out[name] = (model, live, single)
    return out


def _running(sequence, model):
    running = idn.RunningIdentity()
    out = []
    for f in sequence:
        running.update(E.face_frame_points(f))
        out.append(idn.shape_distance(running.identity, model.vertices))
    return out


def test_measured_distances_separate_the_two_people(people):
    """Running distances from the third tracked frame on, printed: the figures the threshold
    comes from; and the limits (the mean face, a face from a detection crop)."""
    k = idn.REID_MIN_FRAMES - 1
    dist = {}
    for live in people:
        for model_name in people:
            model = people[model_name][0]
            runs = [_running(seq, model) for seq in people[live][1]]
            dist[(live, model_name)] = [d for r in runs for d in r[k:]]
            print(f"\n{live} live vs {model_name} model, running from frame {k + 1}: "
                  + "; ".join(" ".join(f"{d:.4f}" for d in r[k:]) for r in runs))
    same = dist[("astronaut", "astronaut")] + dist[("hopper", "hopper")]
    other = dist[("astronaut", "hopper")] + dist[("hopper", "astronaut")]
    mean_face = {n: idn.shape_distance(load_canonical().vertices, people[n][0].vertices)
                 for n in people}
    untracked = {n: idn.shape_distance(E.face_frame_points(people[n][2]), people[n][0].vertices)
                 for n in people}
    print(f"same person max {max(same):.4f}, other person min {min(other):.4f}, mean face "
          + ", ".join(f"{n} {d:.4f}" for n, d in mean_face.items())
          + "; one photo's detection crop vs its tracked model "
          + ", ".join(f"{n} {d:.4f}" for n, d in untracked.items())
          + f"; threshold {idn.REID_THRESHOLD}, margin {idn.REID_MARGIN}")
    assert max(same) < idn.REID_THRESHOLD < min(other)
    assert min(other) - max(same) > 2 * idn.REID_MARGIN
    assert min(mean_face.values()) > idn.REID_THRESHOLD  # an average face is nobody here


def _feed(reid, track_id, sequence):
    return [reid.update(track_id, E.face_frame_points(f), f.head_pose.yaw, f.head_pose.pitch)
            for f in sequence]


def test_astronaut_recognised_after_a_few_frames(people):
    reid = idn.Reidentifier()
    for pid, name in ((1, "astronaut"), (2, "hopper")):
        reid.add(pid, name, people[name][0].vertices)
    for track, seq in enumerate(people["astronaut"][1]):
        matches = _feed(reid, track, seq)
        k = idn.REID_MIN_FRAMES - 1
        assert [m.reason for m in matches[:k]] == ["too few frames"] * k
        for m in matches[k:]:
            assert m.known and (m.person_id, m.name) == (1, "astronaut"), m
            assert m.distance < idn.REID_THRESHOLD and m.second - m.distance >= idn.REID_MARGIN
        assert reid.track_of(1) == track and reid.track_of(2) is None
        reid.prune([])
        assert reid.track_of(1) is None


def test_hopper_is_not_taken_for_the_astronaut(people):
    reid = idn.Reidentifier()
    reid.add(1, "astronaut", people["astronaut"][0].vertices)
    for seq in people["hopper"][1]:
        matches = _feed(reid, 9, seq)
        assert all(not m.known and m.person_id == idn.UNKNOWN_ID and m.name == ""
                   for m in matches)
        assert all(m.reason == "too far" for m in matches[idn.REID_MIN_FRAMES - 1:])
        reid.prune([])
    # Enrolling her makes a track known as Hopper once it has its frames.
    reid.add(2, "hopper", people["hopper"][0].vertices)
    again = _feed(reid, 9, people["hopper"][1][0])[-1]
    assert again.known and again.name == "hopper"


def test_unknown_without_identities_and_when_ambiguous(people):
    seq = people["astronaut"][1][0]
    m = _feed(idn.Reidentifier(), 1, seq)[-1]
    assert not m.known and m.reason == "no identities" and m.distance == np.inf
    # The same shape enrolled twice under two ids: nearest and second are equally near.
    twin = idn.Reidentifier()
    twin.add(1, "astronaut", people["astronaut"][0].vertices)
    twin.add(2, "astronaut twin", people["astronaut"][0].vertices)
    m = _feed(twin, 1, seq)[-1]
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
