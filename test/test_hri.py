"""The ROS4HRI (REP-155) and TF content rules of ``face3d_ros.ros.hri``: plain numbers, no ROS.

Built by hand: face ids, normalised ROIs, the 70 landmarks (iBUG-68 + pupils, the person's
right first), the face_<id>/gaze_<id> transforms against a known head pose and gaze, the FACS
vector and the categorical expression, and the cropped/aligned images.
"""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from face3d_ros.core.pipeline.expression import EXPRESSION_NAMES
from face3d_ros.core.pipeline.geometry import IBUG68_INDICES, LEFT_IRIS_CENTER, RIGHT_IRIS_CENTER
from face3d_ros.ros import hri


def _rot(q):
    """(3, 3) from hri's x, y, z, w quaternion."""
    return Rotation.from_quat(q).as_matrix()


# The face frame of a person looking straight into the camera (x out of the face = towards
# the camera, y the person's left = the image's right, z up), in the optical frame.
FRONTAL = np.array([[0.0, 1.0, 0.0],
                    [0.0, 0.0, -1.0],
                    [-1.0, 0.0, 0.0]])


def test_face_ids_start_with_a_letter_and_only_confirmed_faces_have_one():
    assert hri.face_id(3) == "f00003"
    assert hri.face_id(123456) == "f123456"
    assert hri.face_id(0) == "f00000"
    assert hri.face_id(-1) is None


def test_roi_is_normalised_from_the_top_left_and_clipped():
    assert hri.normalized_roi([64, 32, 192, 160], 256, 320) == pytest.approx(
        (0.25, 0.1, 0.75, 0.5))
    assert hri.normalized_roi([-10, -5, 300, 400], 256, 320) == (0.0, 0.0, 1.0, 1.0)
    with pytest.raises(ValueError):
        hri.normalized_roi([0, 0, 1, 1], 0, 10)


def test_70_landmarks_are_ibug68_then_the_pupils():
    assert hri.NUM_HRI_LANDMARKS == len(hri.HRI_LANDMARK_INDICES) == 70
    assert hri.HRI_LANDMARK_INDICES[:68] == tuple(IBUG68_INDICES)
    # REP-155: RIGHT_PUPIL = 68, LEFT_PUPIL = 69, the person's right and left.
    assert hri.HRI_LANDMARK_INDICES[68] == RIGHT_IRIS_CENTER
    assert hri.HRI_LANDMARK_INDICES[69] == LEFT_IRIS_CENTER
    w, h = 640, 480
    pts = np.zeros((478, 3))
    pts[:, 0] = np.arange(478)  # x = index, to read back which point went where
    pts[:, 1] = 240.0
    pts[RIGHT_IRIS_CENTER, :2] = (100.0, 200.0)
    pts[LEFT_IRIS_CENTER, :2] = (900.0, -20.0)  # outside the image: clipped
    out = hri.landmarks_70(pts, w, h, confidence=0.8)
    assert out.shape == (70, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out[:68, 0], np.array(IBUG68_INDICES) / w, rtol=1e-6)
    np.testing.assert_allclose(out[:68, 1], 0.5)
    np.testing.assert_allclose(out[68], (100 / w, 200 / h, 0.8), rtol=1e-6)
    np.testing.assert_allclose(out[69], (1.0, 0.0, 0.8), rtol=1e-6)
    with pytest.raises(ValueError):
        hri.landmarks_70(np.zeros((468, 2)), w, h, 1.0)


def test_ibug_right_points_are_the_persons_right():
    """The iBUG 'right' eye corner (36) of a frontal face is on the image's left."""
    from face3d_ros.core.pipeline.canonical import load_canonical

    pts = np.asarray(load_canonical().vertices, np.float64)  # metres, face frame (y: left)
    right_eye_outer = pts[hri.HRI_LANDMARK_INDICES[36]]
    left_eye_outer = pts[hri.HRI_LANDMARK_INDICES[45]]
    right_pupil = pts[hri.HRI_LANDMARK_INDICES[68]]
    left_pupil = pts[hri.HRI_LANDMARK_INDICES[69]]
    assert right_eye_outer[1] < left_eye_outer[1]
    assert right_pupil[1] < left_pupil[1]


@pytest.mark.parametrize("q", [(0, 0, 0, 1), (0.3, -0.2, 0.1, 0.93), (1, 0, 0, 0),
                               (0, 1, 0, 0), (0, 0, 1, 0), (0.5, 0.5, -0.5, 0.5)])
def test_quaternion_round_trip(q):
    r = Rotation.from_quat(q).as_matrix()
    out = hri.quaternion_from_matrix(r)
    assert np.linalg.norm(out) == pytest.approx(1.0) and out[3] >= 0.0
    np.testing.assert_allclose(_rot(out), r, atol=1e-9)


def test_face_frame_is_the_head_pose():
    rot = Rotation.from_euler("zyx", [10, -25, 5], degrees=True).as_matrix() @ FRONTAL
    t = np.array([0.05, -0.02, 0.8])
    face, gaze = hri.face_transforms(7, rot, t, None, 0.0, "cam_optical")
    assert (face.parent, face.child) == ("cam_optical", "face_f00007")
    assert (gaze.parent, gaze.child) == ("face_f00007", "gaze_f00007")
    np.testing.assert_allclose(face.translation, t)
    np.testing.assert_allclose(_rot(face.rotation), rot, atol=1e-9)
    np.testing.assert_allclose(gaze.translation, 0.0)
    with pytest.raises(ValueError):
        hri.face_transforms(-1, rot, t, None, 0.0, "cam_optical")


def test_gaze_frame_without_gaze_is_the_face_in_optical_convention():
    """As hri_face_detect: gaze z = face x, gaze x = the person's right (-face y), y down."""
    face, gaze = hri.face_transforms(1, FRONTAL, [0, 0, 1], None, 0.0, "cam")
    face_r_gaze = _rot(gaze.rotation)
    np.testing.assert_allclose(face_r_gaze[:, 2], [1, 0, 0], atol=1e-9)
    np.testing.assert_allclose(face_r_gaze[:, 0], [0, -1, 0], atol=1e-9)
    np.testing.assert_allclose(face_r_gaze[:, 1], [0, 0, -1], atol=1e-9)
    # In the camera: looking into the camera (-z), x to the image's left, y down the image.
    cam_r_gaze = _rot(face.rotation) @ face_r_gaze
    np.testing.assert_allclose(cam_r_gaze, [[-1, 0, 0], [0, 1, 0], [0, 0, -1]], atol=1e-9)


def test_gaze_frame_z_is_the_gaze_ray():
    d = np.array([0.3, 0.1, -1.0])
    d /= np.linalg.norm(d)
    face, gaze = hri.face_transforms(2, FRONTAL, [0, 0, 1], d, 0.9, "cam")
    cam_r_gaze = _rot(face.rotation) @ _rot(gaze.rotation)
    np.testing.assert_allclose(cam_r_gaze[:, 2], d, atol=1e-9)
    np.testing.assert_allclose(cam_r_gaze.T @ cam_r_gaze, np.eye(3), atol=1e-9)
    assert np.linalg.det(cam_r_gaze) == pytest.approx(1.0)
    # x stays horizontal for the person (perpendicular to the face's up axis), y points down.
    assert abs(cam_r_gaze[:, 0] @ FRONTAL[:, 2]) < 1e-9
    assert cam_r_gaze[:, 1] @ FRONTAL[:, 2] < 0
    # A zero-confidence gaze, a zero or a non-finite ray fall back to the head.
    for direction, conf in ((d, 0.0), ([0, 0, 0], 1.0), ([np.nan, 0, 1], 1.0)):
        _, g = hri.face_transforms(2, FRONTAL, [0, 0, 1], direction, conf, "cam")
        np.testing.assert_allclose(_rot(g.rotation)[:, 2], [1, 0, 0], atol=1e-9)


def test_a_slightly_skewed_head_rotation_still_gives_a_valid_quaternion():
    skew = FRONTAL + 1e-3 * np.array([[0, 1, 0], [0, 0, 0], [0, 0, 0]])
    face, _ = hri.face_transforms(1, skew, [0, 0, 1], None, 0.0, "cam")
    assert np.linalg.norm(face.rotation) == pytest.approx(1.0)
    np.testing.assert_allclose(_rot(face.rotation), FRONTAL, atol=2e-3)


def _expr(**values):
    out = {n: 0.0 for n in EXPRESSION_NAMES}
    out.update(values)
    return out


def test_facs_vector_maps_the_corresponding_units_only():
    intensity, conf = hri.facs_vector(
        _expr(eye_blink_left=1.0, eye_blink_right=0.6, jaw_open=0.7, mouth_smile_left=0.4,
              mouth_smile_right=0.6, brow_up=0.3), confidence=0.9)
    assert intensity.shape == conf.shape == (99,)
    assert intensity[45] == pytest.approx(0.8)  # blink
    assert intensity[26] == pytest.approx(0.7)  # jaw drop
    assert intensity[12] == pytest.approx(0.5)  # lip corner puller
    assert intensity[1] == pytest.approx(0.3)  # inner brow raiser
    mapped = sorted(hri.FACS_FROM_EXPRESSION)
    assert mapped == [1, 4, 5, 6, 12, 18, 22, 26, 45]
    assert set(np.flatnonzero(conf)) == set(mapped) and np.all(conf[mapped] == np.float32(0.9))
    others = np.setdiff1d(np.arange(99), mapped)
    assert not intensity[others].any() and not conf[others].any()
    # Every mapped name is one of face3d's coefficients.
    assert {n for names in hri.FACS_FROM_EXPRESSION.values() for n in names} <= set(
        EXPRESSION_NAMES)


@pytest.mark.parametrize("values, want", [
    (dict(), "neutral"),
    (dict(mouth_smile_left=0.7, mouth_smile_right=0.7), "happy"),  # 12C
    (dict(mouth_smile_left=0.3, mouth_smile_right=0.3, cheek_squint_left=0.3,
          cheek_squint_right=0.3), "happy"),  # 6+12
    (dict(eye_wide_left=0.5, eye_wide_right=0.5, jaw_open=0.6), "surprised"),  # 5B+26
    (dict(brow_up=0.5, jaw_open=0.5), "surprised"),  # 1+2+26
    (dict(jaw_open=0.5), ""),  # speaking, yawning: no rule
    (dict(mouth_smile_left=0.3, mouth_smile_right=0.3), ""),  # a slight 12 alone
])
def test_categorical_expression_follows_emfacs(values, want):
    intensity, _ = hri.facs_vector(_expr(**values), 1.0)
    name, strength = hri.categorical_expression(intensity)
    assert name == want
    assert (0.0 < strength <= 1.0) if want else strength == 0.0


def test_cropped_face_is_letterboxed_and_aligned_face_levels_the_eyes():
    rgb = np.zeros((200, 300, 3), np.uint8)
    rgb[50:150, 100:150] = 255  # a 50 x 100 white box
    crop = hri.cropped_face(rgb, [100, 50, 150, 150])
    assert crop.shape == (128, 128, 3) and crop.dtype == np.uint8
    assert crop[64, 64].tolist() == [255, 255, 255]
    assert crop[64, 5].tolist() == [0, 0, 0] and crop[64, 122].tolist() == [0, 0, 0]  # bars
    assert crop[2, 64].tolist() == [255, 255, 255] and crop[125, 64].tolist() == [255] * 3
    # Eyes on a line tilted by 30 degrees: the aligned image has them level.
    pts = np.zeros((478, 3))
    c = np.array([150.0, 100.0])
    a = np.radians(30.0)
    off = 30.0 * np.array([np.cos(a), np.sin(a)])
    pts[RIGHT_IRIS_CENTER, :2], pts[LEFT_IRIS_CENTER, :2] = c - off, c + off
    img = np.zeros((200, 300, 3), np.uint8)
    for x, y in np.rint([c - off, c + off]).astype(int):
        img[y - 2:y + 3, x - 2:x + 3] = 255
    out = hri.aligned_face(img, [100, 50, 200, 150], pts)
    ys, xs = np.nonzero(out[..., 0] > 128)
    left_blob, right_blob = ys[xs < 64], ys[xs >= 64]
    assert len(left_blob) and len(right_blob)
    assert abs(left_blob.mean() - right_blob.mean()) < 1.5
