"""The known-truth head renderer: pose round trip, symmetry, pupils, lids, both heads."""

import os
from pathlib import Path

import numpy as np
import pytest

from face3d_ros.core.pipeline.geometry import euler_from_rotation
from face3d_ros.tools import head_render as hr

ROOT = Path(__file__).resolve().parents[1]
HEADS = Path(os.environ.get(hr.HEADS_ENV) or ROOT.parent / "shared" / "data" / "heads")
needs_heads = pytest.mark.skipif(
    not (HEADS / hr.HEAD_FILES["facecap"]).is_file(),
    reason=f"head models not found in {HEADS} (set {hr.HEADS_ENV})")

CAMERA = hr.camera_from_fov(640, 480, 60.0)


def pose(yaw=0.0, pitch=0.0, roll=0.0, eye_px=95.0, head="facecap", offset=(0.0, 0.0)):
    """(camera_R_face, translation) of a head with its eye corners ``eye_px`` apart."""
    dist = hr.distance_for_eye_corners(hr.load_head(head, HEADS), eye_px, CAMERA.fx)
    t = np.array([offset[0], offset[1], dist])
    return hr.camera_R_face_from_euler(yaw, pitch, roll, t), t


def render(head="facecap", yaw=0.0, pitch=0.0, roll=0.0, eye_px=95.0, **kwargs):
    rot, t = pose(yaw, pitch, roll, eye_px, head)
    return hr.render(head, CAMERA, rot, t, folder=HEADS, **kwargs)


@pytest.mark.parametrize("angles, position", [
    ((30.0, -10.0, 5.0), (0.0, 0.0, 0.6)),
    ((-45.0, 20.0, -15.0), (0.15, -0.1, 0.8)),
    ((10.0, 35.0, 25.0), (-0.2, 0.12, 1.5)),
])
def test_euler_round_trip(angles, position):
    """euler_from_rotation reads back the angles the helper was given, anywhere in the image."""
    rot = hr.camera_R_face_from_euler(*angles, position)
    assert np.allclose(rot.T @ rot, np.eye(3), atol=1e-12) and np.linalg.det(rot) > 0
    got = euler_from_rotation(rot[None], np.asarray(position)[None])[0]
    assert np.allclose(got, angles, atol=1e-9)


def test_lid_weights_follow_gaze():
    """Looking to the subject's left: Out on the left eye, In on the right; down is Down."""
    w = hr.gaze_lid_weights(np.array([[12.5, 30.0], [12.5, 30.0]]))
    assert w == {"eyeLookIn_R": 0.5, "eyeLookDown_R": 1.0, "eyeLookOut_L": 0.5,
                 "eyeLookDown_L": 1.0}
    w = hr.gaze_lid_weights(np.array([[-25.0, -5.0], [-25.0, -5.0]]))
    assert w["eyeLookOut_R"] == 1.0 and w["eyeLookIn_L"] == 1.0
    assert w["eyeLookUp_R"] == pytest.approx(0.2)


def test_missing_folder_names_the_variable(tmp_path):
    with pytest.raises(FileNotFoundError, match=hr.HEADS_ENV):
        hr.load_head("facecap", tmp_path / "nowhere")


@needs_heads
def test_facecap_model_frame():
    """Real size, sides by geometry, eyes level and symmetric about the origin."""
    head = hr.load_head("facecap", HEADS)
    centres = head.eyeball_centres
    assert centres[1, 1] > 0 > centres[0, 1]  # index 1 = subject's left = +y
    assert np.linalg.norm(centres[1] - centres[0]) == pytest.approx(0.063, abs=1e-9)
    assert np.allclose(centres.mean(axis=0), 0.0, atol=1e-9)
    assert hr.eye_corner_distance(head) == pytest.approx(0.0901, abs=0.0005)
    right, left = head.head.vertices[list(head.outer_eye_corners)]
    assert right[1] < 0 < left[1] and abs(right[2] - left[2]) < 1e-4
    # the nose tip (front-most vertex) is on the midline, below the eyes
    tip = head.head.vertices[np.argmax(head.head.vertices[:, 0])]
    assert abs(tip[1]) < 1e-3 and tip[2] < -0.02
    blink = head.morph_positions[head.morph_names.index("eyeBlink_L")]
    moved = np.linalg.norm(blink, axis=1) > 1e-4
    assert head.head.vertices[moved, 1].min() > 0  # eyeBlink_L moves the subject's left lids


@needs_heads
def test_frontal_render_is_mirror_symmetric_and_pupils_dark():
    image, truth = render()
    assert image.shape == (480, 640, 3) and image.dtype == np.uint8
    assert (truth.yaw, truth.pitch, truth.roll) == pytest.approx((0.0, 0.0, 0.0), abs=1e-9)
    diff = np.abs(image.astype(np.float64) - image[:, ::-1]).mean()
    assert diff < 1.0, f"frontal render not symmetric: mean abs diff {diff:.2f}"
    # subject's right eye on the image's left
    assert truth.pupil_px[0, 0] < CAMERA.cx < truth.pupil_px[1, 0]
    for x, y in truth.pupil_px:
        assert image[int(y), int(x)].max() < 40, "the truth pupil is not on a dark pixel"
    assert np.all(truth.pupil_visibility > 0.95)
    assert truth.vertex_visible[list(truth.outer_eye_corners)].all()
    assert not truth.vertex_visible.all()  # the back of the head is hidden


@needs_heads
def test_eye_yaw_moves_pupils_to_image_right():
    _, straight = render(supersample=1)
    image, turned = render(eye_yaw=20.0, supersample=1)
    shift = turned.pupil_px[:, 0] - straight.pupil_px[:, 0]
    assert np.all(shift > 2.0), f"pupils moved {shift} px"
    assert np.all(turned.gaze_angles[:, 0] > straight.gaze_angles[:, 0] + 15.0)
    assert turned.blendshapes["eyeLookOut_L"] == pytest.approx(0.8)
    assert turned.blendshapes["eyeLookIn_R"] == pytest.approx(0.8)
    for x, y in turned.pupil_px:
        assert image[int(y), int(x)].max() < 40
    assert np.all(turned.pupil_visibility > 0.9)


@needs_heads
def test_blink_left_hides_left_pupil_only():
    _, truth = render(blendshapes={"eyeBlink_L": 1.0}, supersample=1)
    assert truth.pupil_visibility[1] < 0.05
    assert truth.pupil_visibility[0] > 0.95
    with pytest.raises(ValueError, match="no blendshapes"):
        render(blendshapes={"eyeBlink_Left": 1.0})


@needs_heads
def test_lps_renders_with_pose_truth():
    image, truth = render("lps", yaw=-30.0, pitch=10.0, roll=5.0, supersample=1)
    assert image.shape == (480, 640, 3)
    assert (truth.yaw, truth.pitch, truth.roll) == pytest.approx((-30.0, 10.0, 5.0), abs=1e-6)
    assert np.isnan(truth.pupil_px).all() and np.all(truth.pupil_visibility == 0)
    corners = truth.vertices_px[list(truth.outer_eye_corners)]
    assert np.all((corners > 0) & (corners < (640, 480)))
    centre = image[200:280, 280:360].astype(np.float64)
    assert centre.std() > 3.0  # a face, not the background


@needs_heads
def test_engine_finds_the_frontal_facecap(capsys):
    """The engine on a frontal facecap (face box ~200 x 230 px): one face, iris centres where
    the truth projects them; its pose and gaze against the truth are printed, not judged."""
    from face3d_ros.core.config import EngineConfig
    from face3d_ros.core.pipeline.engine import FaceEngine

    image, truth = render(eye_px=130.0)
    frame = FaceEngine(EngineConfig(device="cpu")).process(image, truth.intrinsics)
    assert len(frame.faces) == 1
    face = frame.faces[0]
    iris = face.landmarks_2d[[468, 473], :2]
    assert np.abs(iris - truth.iris_centres_px).max() < 3.0
    pose, gaze = face.head_pose, face.gaze
    assert abs(pose.yaw) < 10 and abs(pose.pitch) < 15 and abs(pose.roll) < 10
    with capsys.disabled():
        box = face.box
        print(f"\nengine on frontal facecap ({box[2] - box[0]:.0f} x {box[3] - box[1]:.0f} px): "
              f"yaw/pitch/roll {pose.yaw:.1f}/{pose.pitch:.1f}/{pose.roll:.1f} (truth 0/0/0), "
              f"z {pose.translation[2]:.3f} m (truth {truth.translation[2]:.3f}); gaze yaw/pitch "
              f"right {gaze.right.yaw:.1f}/{gaze.right.pitch:.1f} (truth "
              f"{truth.gaze_angles[0, 0]:.1f}/{truth.gaze_angles[0, 1]:.1f}), left "
              f"{gaze.left.yaw:.1f}/{gaze.left.pitch:.1f} (truth {truth.gaze_angles[1, 0]:.1f}/"
              f"{truth.gaze_angles[1, 1]:.1f})")
