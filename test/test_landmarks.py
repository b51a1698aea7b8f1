"""ROIs, batched crops and the mesh + iris landmark stage with the real weights (CPU)."""

import math

import cv2
import numpy as np
import pytest
import skimage.data
import torch

from images import as_tensor, hopper

from face3d_ros.core.config import EngineConfig
from face3d_ros.core.pipeline.detection import FaceDetector
from face3d_ros.core.pipeline.landmarks import (LEFT_EYE_CONTOUR_INDEX, NUM_EYELID,
                                                RIGHT_EYE_CONTOUR_INDEX, LandmarkRunner, crop_rois,
                                                roi_affine, roi_from_detection, roi_from_landmarks,
                                                rois_to_tensor)
from face3d_ros.core.pipeline.models import load_face_models
from face3d_ros.core.types import Detection, Roi

ASTRONAUT_FACE = (170, 60, 260, 180)


@pytest.fixture(scope="module")
def models():
    """Load the real networks on the CPU from the verified model cache."""
    return load_face_models(device="cpu")


@pytest.fixture(scope="module")
def detector(models):
    """Detector with the default configuration."""
    return FaceDetector(models, EngineConfig(device="cpu"))


@pytest.fixture(scope="module")
def runner(models):
    """Landmark runner with iris refinement."""
    return LandmarkRunner(models, EngineConfig(device="cpu"))


def landmarks_of(detector, runner, rgb):
    """Detect the single face in ``rgb``; return it, its ROI and its landmarks."""
    img = as_tensor(rgb)
    dets = detector.detect(img)
    assert len(dets) == 1
    roi = roi_from_detection(dets[0])
    return dets[0], roi, runner.run([img], [0], [roi])


def eyelid_polygon(contour: np.ndarray) -> np.ndarray:
    """(71, 3) eye contour -> closed eyelid polygon (lower lid 0..8, upper lid 15..9)."""
    order = list(range(9)) + list(range(15, 8, -1))
    return contour[order, :2].astype(np.float32)


# --- pure geometry ---------------------------------------------------------------------------

def test_roi_from_detection_rotation_sign_and_size():
    """Centre, 1.5x long side and rotation sign of a detection ROI."""
    kp = np.array([[100, 100], [140, 100 - 40 * math.tan(math.radians(20))], [120, 120],
                   [120, 140], [80, 100], [160, 100]], np.float32)
    det = Detection(box=np.array([90, 80, 150, 160], np.float32), score=0.9, keypoints=kp)
    roi = roi_from_detection(det)
    assert roi.center == pytest.approx((120.0, 120.0))
    assert roi.size == pytest.approx(80 * 1.5)
    # Left eye higher in the image: the head tilts counter-clockwise, rotation negative.
    assert roi.rotation == pytest.approx(math.radians(-20), abs=1e-6)


def test_roi_from_landmarks_uses_mesh_extent_and_eye_corners():
    """Tracking ROI from the mesh extent and the outer eye corners."""
    rng = np.random.default_rng(0)
    pts = np.zeros((478, 3))
    pts[:468, :2] = rng.uniform([50, 30], [150, 190], size=(468, 2))
    pts[468:, :2] = 1000.0  # iris points are ignored
    pts[33, :2], pts[263, :2] = (60, 100), (140, 100 + 80 * math.tan(math.radians(10)))
    lo, hi = pts[:468, :2].min(0), pts[:468, :2].max(0)
    roi = roi_from_landmarks(pts)
    assert roi.center == pytest.approx(tuple((lo + hi) / 2))
    assert roi.size == pytest.approx((hi - lo).max() * 1.5)
    assert roi.rotation == pytest.approx(math.radians(10))
    assert roi_from_landmarks(torch.from_numpy(pts)) == roi
    with pytest.raises(ValueError, match="468"):
        roi_from_landmarks(pts[:100])


def test_crop_is_exact_pixel_copy_and_rotates():
    """Pixel-aligned crops copy pixels; a quarter turn rotates them."""
    img = torch.arange(3 * 40 * 50, dtype=torch.float32).reshape(3, 40, 50)
    rois = [Roi(center=(20.0, 15.0), size=16.0, rotation=0.0),
            Roi(center=(20.0, 15.0), size=16.0, rotation=math.pi / 2)]
    crops, affine = crop_rois([img], [0, 0], rois, 16)
    patch = img[:, 7:23, 12:28]
    torch.testing.assert_close(crops[0], patch)
    # Crop x axis along image +y: crop[v, u] = image[y = 7 + u, x = 27 - v].
    torch.testing.assert_close(crops[1], torch.flip(patch, dims=[2]).transpose(1, 2))
    # Affine maps crop pixel centres to image pixel centres.
    uv = torch.tensor([[0.5, 0.5, 1.0], [15.5, 3.5, 1.0]])
    np.testing.assert_allclose((affine[0] @ uv.T).T.numpy(), [[12.5, 7.5], [27.5, 10.5]])
    np.testing.assert_allclose((affine[1] @ uv.T).T.numpy(), [[27.5, 7.5], [24.5, 22.5]],
                               atol=1e-5)


def test_mirrored_affine_and_multi_image_crops():
    """Mirrored affines, crops from several images, index errors."""
    a = torch.rand(3, 30, 30) * 255
    b = torch.rand(3, 20, 40) * 255
    rois = [Roi((10.0, 10.0), 8.0, 0.3), Roi((20.0, 10.0), 8.0, -0.2), Roi((15.0, 15.0), 8.0, 0)]
    crops, _ = crop_rois([a, b], torch.tensor([1, 0, 0]), rois, 8)
    for i, (img, roi) in enumerate(zip([b, a, a], rois)):
        single, _ = crop_rois([img], [0], [roi], 8)
        torch.testing.assert_close(crops[i], single[0])
    t = rois_to_tensor(rois)
    plain, mirrored = roi_affine(t, 8), roi_affine(t, 8, mirror=True)
    u = torch.tensor([1.0, 2.0, 1.0])
    torch.testing.assert_close(mirrored @ u, plain @ torch.tensor([7.0, 2.0, 1.0]))
    with pytest.raises(ValueError, match="one image index per ROI"):
        crop_rois([a], [0, 0], rois[:1], 8)
    with pytest.raises(ValueError, match="outside"):
        crop_rois([a], [1], rois[:1], 8)


def test_host_mirrored_crops_are_the_mirror_affine_samples():
    """The host path's mirrored crops (flipped copies of the crops) are what sampling the
    mirrored affine gives, for uint8 and float images."""
    from face3d_ros.core.pipeline.landmarks import _warp_host

    rng = np.random.default_rng(4)
    rois = [Roi((40.0, 30.0), 36.0, 0.3), Roi((25.0, 35.0), 20.0, -1.1)]
    t = rois_to_tensor(rois)
    plain, mirrored = roi_affine(t, 16).numpy(), roi_affine(t, 16, mirror=True).numpy()
    for img in (rng.integers(0, 256, (60, 70, 3), dtype=np.uint8),
                rng.uniform(0, 255, (60, 70, 3)).astype(np.float32)):
        both = _warp_host([img], [[0, 1]], plain, 16, cv2.BORDER_REPLICATE, 1 / 255.0, True)
        sampled = _warp_host([img], [[0, 1]], mirrored, 16, cv2.BORDER_REPLICATE, 1 / 255.0)
        assert both.shape == (4, 16, 16, 3)
        np.testing.assert_array_equal(both[:2], _warp_host([img], [[0, 1]], plain, 16,
                                                           cv2.BORDER_REPLICATE, 1 / 255.0))
        # OpenCV's bilinear weights are fixed point (1/32 px): sampling the mirrored affine
        # may round differently from the plain one by a grey level
        np.testing.assert_allclose(both[2:], sampled, atol=1.01 / 255)
        assert np.abs(both[2:] - both[:2]).max() > 0.1  # not the unmirrored crops


# --- real faces ------------------------------------------------------------------------------

def check_face(lm: np.ndarray, eye_contour: np.ndarray, box):
    """Landmarks of an upright, unmirrored face in box."""
    x0, y0, x1, y1 = box
    m = 0.15 * max(x1 - x0, y1 - y0)
    assert (lm[:, 0] > x0 - m).all() and (lm[:, 0] < x1 + m).all()
    assert (lm[:, 1] > y0 - m).all() and (lm[:, 1] < y1 + m).all()
    assert lm[10, 1] < lm[1, 1] < lm[152, 1]  # forehead above nose tip above chin
    assert lm[33, 0] < lm[133, 0] < lm[362, 0] < lm[263, 0]  # eye corners, image left->right
    assert lm[1, 2] < lm[234, 2] and lm[1, 2] < lm[454, 2]  # nose tip nearer than the cheeks
    for eye, centre in ((0, 468), (1, 473)):
        poly = eyelid_polygon(eye_contour[eye])
        assert cv2.pointPolygonTest(poly, (float(lm[centre, 0]), float(lm[centre, 1])),
                                    False) > 0
        # Centre first, then four points around it on the iris contour.
        ring = lm[centre + 1:centre + 5, :2]
        np.testing.assert_allclose(ring.mean(0), lm[centre, :2], atol=1.0)
        radius = np.linalg.norm(ring - lm[centre, :2], axis=1)
        eye_width = np.linalg.norm(eye_contour[eye, 8, :2] - eye_contour[eye, 0, :2])
        assert (radius > 0.1 * eye_width).all() and (radius < 0.4 * eye_width).all()
    # Iris depth sits with the eye: within a few px of the mesh eyelids.
    assert abs(lm[468, 2] - lm[list(RIGHT_EYE_CONTOUR_INDEX[:NUM_EYELID]), 2].mean()) < 5
    assert abs(lm[473, 2] - lm[list(LEFT_EYE_CONTOUR_INDEX[:NUM_EYELID]), 2].mean()) < 5


def test_astronaut_landmarks(detector, runner):
    """Landmarks of the astronaut sit on her face in anatomical order."""
    det, roi, out = landmarks_of(detector, runner, skimage.data.astronaut())
    assert out.landmarks.shape == (1, 478, 3) and out.eye_contour.shape == (1, 2, 71, 3)
    assert out.presence.shape == (1,) and float(out.presence[0]) > 0.9
    lm, contour = out.landmarks[0].numpy(), out.eye_contour[0].numpy()
    check_face(lm, contour, det.box)
    x0, y0, x1, y1 = ASTRONAUT_FACE
    assert x0 - 10 < lm[1, 0] < x1 + 10 and y0 < lm[1, 1] < y1  # nose tip in the face
    # The iris network's eye corners agree with the mesh's within a few px.
    assert np.linalg.norm(contour[0, 0, :2] - lm[33, :2]) < 4
    assert np.linalg.norm(contour[1, 0, :2] - lm[263, :2]) < 4


def test_hopper_landmarks(detector, runner):
    """Landmarks of Grace Hopper sit on her face in anatomical order."""
    det, _, out = landmarks_of(detector, runner, hopper())
    assert float(out.presence[0]) > 0.9
    check_face(out.landmarks[0].numpy(), out.eye_contour[0].numpy(), det.box)


def test_cat_face_flag_is_low(models, runner):
    """The mesh face flag rejects the cat's face that the detector proposes."""
    cat = as_tensor(skimage.data.chelsea())
    loose = FaceDetector(models, EngineConfig(device="cpu", detector="short",
                                              min_detection_score=0.3))
    dets = loose.detect(cat)
    assert dets, "the short-range detector should propose the cat's face at a loose threshold"
    out = runner.run([cat], [0], [roi_from_detection(dets[0])])
    assert float(out.presence[0]) < 0.2


def test_batch_of_different_sizes_equals_single_calls(detector, runner):
    """Three images of different sizes in one call equal three calls."""
    images = [as_tensor(skimage.data.astronaut()), as_tensor(hopper()),
              as_tensor(skimage.data.astronaut()[30:330, 100:420])]
    dets = detector.detect_batch(images)
    rois = [roi_from_detection(d[0]) for d in dets]
    batch = runner.run(images, torch.tensor([0, 1, 2]), rois)
    for i, (img, roi) in enumerate(zip(images, rois)):
        single = runner.run([img], [0], [roi])
        torch.testing.assert_close(batch.landmarks[i], single.landmarks[0], atol=1e-3, rtol=0)
        torch.testing.assert_close(batch.eye_contour[i], single.eye_contour[0], atol=1e-3,
                                   rtol=0)
        torch.testing.assert_close(batch.presence[i], single.presence[0], atol=1e-5, rtol=0)
    assert batch.image_index.tolist() == [0, 1, 2]
    # The same ROIs in a shuffled order and image index give the same faces.
    shuffled = runner.run(images[::-1], [2, 1, 0], rois)
    torch.testing.assert_close(shuffled.landmarks, batch.landmarks, atol=1e-3, rtol=0)


def test_rotated_image(detector, runner):
    """Rotating the image by +30 deg turns the ROI by -30 deg; landmarks follow."""
    a = skimage.data.astronaut()
    det0, roi0, out0 = landmarks_of(detector, runner, a)
    m = cv2.getRotationMatrix2D((225.0, 125.0), 30.0, 1.0)  # counter-clockwise in the image
    rotated = cv2.warpAffine(a, m, (512, 512), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REFLECT)
    _, roi1, out1 = landmarks_of(detector, runner, rotated)
    assert math.degrees(roi1.rotation - roi0.rotation) == pytest.approx(-30.0, abs=3.0)
    lm0, lm1 = out0.landmarks[0].numpy(), out1.landmarks[0].numpy()
    track0, track1 = roi_from_landmarks(lm0), roi_from_landmarks(lm1)
    assert math.degrees(track1.rotation - track0.rotation) == pytest.approx(-30.0, abs=2.0)
    # Landmarks follow the face: the rotated first result within 2 % of the face size.
    expected = lm0[:, :2] @ m[:, :2].T + m[:, 2]
    err = np.linalg.norm(expected - lm1[:, :2], axis=1)
    face = np.ptp(lm0[:468, :2], axis=0).max()
    assert err.mean() < 0.02 * face and err[468:].max() < 0.02 * face
    assert float(out1.presence[0]) > 0.9


def test_tracking_roi_matches_detection_roi(detector, runner):
    """The ROI from landmarks matches the detection ROI and tracks."""
    img = as_tensor(skimage.data.astronaut())
    _, roi, out = landmarks_of(detector, runner, skimage.data.astronaut())
    track = roi_from_landmarks(out.landmarks[0])
    assert math.dist(track.center, roi.center) < 0.1 * roi.size
    assert 0.8 < track.size / roi.size < 1.25
    assert abs(math.degrees(track.rotation - roi.rotation)) < 8.0
    again = runner.run([img], [0], [track])
    face = np.ptp(out.landmarks[0, :468, :2].numpy(), axis=0).max()
    err = (again.landmarks[0, :, :2] - out.landmarks[0, :, :2]).norm(dim=-1)
    assert float(err.mean()) < 0.02 * face


def test_without_iris_refinement(models, detector):
    """Without the iris network the iris points are the eyelid centres."""
    plain = LandmarkRunner(models, EngineConfig(device="cpu", refine_iris=False))
    det, roi, out = landmarks_of(detector, plain, skimage.data.astronaut())
    lm = out.landmarks[0]
    torch.testing.assert_close(out.eye_contour[0, 0], lm[list(RIGHT_EYE_CONTOUR_INDEX)])
    torch.testing.assert_close(out.eye_contour[0, 1], lm[list(LEFT_EYE_CONTOUR_INDEX)])
    for centre, idx in ((468, RIGHT_EYE_CONTOUR_INDEX), (473, LEFT_EYE_CONTOUR_INDEX)):
        lids = lm[list(idx[:NUM_EYELID])].mean(0)
        torch.testing.assert_close(lm[centre:centre + 5], lids.expand(5, 3))
    poly = eyelid_polygon(out.eye_contour[0, 0].numpy())
    assert cv2.pointPolygonTest(poly, tuple(float(v) for v in lm[468, :2]), False) > 0
    assert not out.eye_affine.any()


def test_empty_roi_list(runner):
    """No ROIs give an empty batch."""
    out = runner.run([as_tensor(skimage.data.astronaut())], [], [])
    assert len(out) == 0 and out.landmarks.shape == (0, 478, 3)
