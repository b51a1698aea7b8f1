"""Face detection on real images with the real MediaPipe detector weights (CPU)."""

import cv2
import numpy as np
import pytest
import skimage.data
import torch

from images import as_tensor, hopper

from face3d_ros.core.config import EngineConfig
from face3d_ros.core.pipeline.detection import (FULL_RANGE, SHORT_RANGE, FaceDetector,
                                                generate_anchors, weighted_nms)
from face3d_ros.core.pipeline.models import load_face_models

#: Hand-checked face regions (x0, y0, x1, y1), forehead to chin and ear to ear, read off the
#: images with a 50 px grid drawn over them.
ASTRONAUT_FACE = (170, 60, 260, 180)
HOPPER_FACE = (170, 150, 360, 340)
DETECTORS = ("short", "full", "both")


@pytest.fixture(scope="module")
def models():
    """Load the real networks on the CPU from the verified model cache."""
    return load_face_models(device="cpu")


@pytest.fixture(scope="module")
def detectors(models):
    """One detector per ``EngineConfig.detector`` choice, on the whole image only: tile
    candidates are verified by the mesh network's face flag in the engine (test_crowds)."""
    return {d: FaceDetector(models, EngineConfig(device="cpu", detector=d, min_face_px=0))
            for d in DETECTORS}


def centre(box):
    """Centre (x, y) of an xyxy box."""
    return 0.5 * (box[0] + box[2]), 0.5 * (box[1] + box[3])


def inside(pt, region, margin=0.0):
    """Whether point ``pt`` lies in the xyxy ``region`` grown by ``margin``."""
    return (region[0] - margin <= pt[0] <= region[2] + margin
            and region[1] - margin <= pt[1] <= region[3] + margin)


def iou(a, b):
    """Intersection over union of two xyxy boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def check_portrait(det, region):
    """One upright unmirrored face in ``region``: box and keypoints in anatomical order."""
    box, kp = det.box, det.keypoints
    assert det.box.shape == (4,) and kp.shape == (6, 2)
    assert inside(centre(box), region), (box, region)
    assert iou(box, region) > 0.5, (box, region)
    right_eye, left_eye, nose, mouth, right_ear, left_ear = kp
    assert right_eye[0] < nose[0] < left_eye[0]  # subject's right eye on the image left
    assert right_ear[0] < right_eye[0] and left_eye[0] < left_ear[0]
    assert max(right_eye[1], left_eye[1]) < nose[1] < mouth[1]
    for p in kp[:4]:
        assert inside(p, box), (p, box)


def test_anchor_layouts():
    """Anchor counts, order and centres of both detectors."""
    short = generate_anchors(SHORT_RANGE)
    full = generate_anchors(FULL_RANGE)
    assert short.shape == (896, 2) and full.shape == (2304, 2)
    # 16x16 map, 2 anchors per cell, then 8x8 shared by 3 layers, 6 per cell.
    assert torch.allclose(short[0], torch.tensor([0.5 / 16, 0.5 / 16]))
    assert torch.equal(short[0], short[1]) and not torch.equal(short[1], short[2])
    assert torch.allclose(short[2], torch.tensor([1.5 / 16, 0.5 / 16]))
    assert torch.allclose(short[512], torch.tensor([0.5 / 8, 0.5 / 8]))
    assert torch.equal(short[512], short[517]) and not torch.equal(short[517], short[518])
    assert torch.allclose(short[-1], torch.tensor([7.5 / 8, 7.5 / 8]))
    # 48x48 map, one anchor per cell, row-major.
    assert torch.allclose(full[1], torch.tensor([1.5 / 48, 0.5 / 48]))
    assert torch.allclose(full[48], torch.tensor([0.5 / 48, 1.5 / 48]))


def box_pts(x0, y0, x1, y1, kp_offset=0.0):
    """(8, 2) detection points of a box with all keypoints at its corner + offset."""
    pts = np.zeros((8, 2))
    pts[0], pts[1] = (x0, y0), (x1, y1)
    pts[2:] = np.array([x0, y0]) + kp_offset
    return pts


def test_weighted_nms_blends_overlapping_boxes():
    """Overlapping boxes merge by score weight; separate ones stay."""
    pts = np.stack([box_pts(0, 0, 10, 10, 1.0), box_pts(1, 1, 11, 11, 3.0),
                    box_pts(50, 50, 60, 60), box_pts(0, 0, 10, 10.5)])
    scores = np.array([0.6, 0.9, 0.8, 0.3])
    merged, sc = weighted_nms(pts, scores, 0.3, max_out=10)
    assert len(merged) == 2
    np.testing.assert_allclose(sc, [0.9, 0.8])
    # Best box blended with the two overlapping it, weighted by score.
    w = np.array([0.9, 0.6, 0.3])
    expected = (pts[[1, 0, 3]] * w[:, None, None]).sum(0) / w.sum()
    np.testing.assert_allclose(merged[0], expected)
    np.testing.assert_allclose(merged[1], pts[2])
    merged, sc = weighted_nms(pts, scores, 0.3, max_out=1)
    assert len(merged) == 1 and sc[0] == pytest.approx(0.9)
    # Below the IoU threshold nothing merges: IoU of boxes 0 and 1 is 81 / 119.
    merged, _ = weighted_nms(pts[:2], scores[:2], 0.7, max_out=10)
    assert len(merged) == 2


@pytest.mark.parametrize("kind", DETECTORS)
def test_one_face_on_portraits(detectors, kind):
    """Exactly one face on each portrait, in the hand-checked region."""
    dets = detectors[kind].detect_batch([as_tensor(skimage.data.astronaut()),
                                         as_tensor(hopper())])
    assert [len(d) for d in dets] == [1, 1]
    check_portrait(dets[0][0], ASTRONAUT_FACE)
    check_portrait(dets[1][0], HOPPER_FACE)
    assert dets[0][0].score > 0.8 and dets[1][0].score > 0.7


@pytest.mark.parametrize("kind", DETECTORS)
def test_no_face_on_coffee(detectors, kind):
    """No face on a coffee cup."""
    assert detectors[kind].detect(as_tensor(skimage.data.coffee())) == []


def test_cat_is_at_most_a_weak_detection(detectors, models):
    """Allow at most a weak detection of the cat's face.

    The short-range model scores it about 0.5 (MediaPipe's threshold): the full-range model sees
    no face, a stricter threshold none either; the mesh face flag then rejects it
    (test_landmarks).
    """
    cat = as_tensor(skimage.data.chelsea())
    assert detectors["full"].detect(cat) == []
    assert all(d.score < 0.6 for d in detectors["both"].detect(cat))
    strict = FaceDetector(models, EngineConfig(device="cpu", detector="both",
                                               min_detection_score=0.6))
    assert strict.detect(cat) == []


def test_two_portraits_side_by_side(detectors):
    """Two faces, one in each half of a side-by-side pair."""
    a = skimage.data.astronaut()
    h = cv2.resize(hopper(), (int(round(512 * 512 / 600)), 512), interpolation=cv2.INTER_AREA)
    pair = np.concatenate([a, h], axis=1)  # (512, 949, 3)
    dets = detectors["both"].detect(as_tensor(pair))
    assert len(dets) == 2
    xs = sorted(centre(d.box)[0] for d in dets)
    assert xs[0] < 512 < xs[1]
    left = min(dets, key=lambda d: d.box[0])
    check_portrait(left, ASTRONAUT_FACE)


@pytest.mark.parametrize("size,scale,offset", [((1920, 1080), 1080 / 512, (600, 0)),
                                               ((4000, 3000), 3000 / 512, (400, 0))])
def test_large_upscaled_images(detectors, size, scale, offset):
    """The face is still found after upscaling into 1080p and 12 MP frames."""
    a = skimage.data.astronaut()
    side = int(round(512 * scale))
    canvas = np.full((size[1], size[0], 3), 200, np.uint8)
    canvas[offset[1]:offset[1] + side, offset[0]:offset[0] + side] = cv2.resize(
        a, (side, side), interpolation=cv2.INTER_LINEAR)
    region = tuple(v * scale + offset[i % 2] for i, v in enumerate(ASTRONAUT_FACE))
    for kind in ("short", "both"):
        dets = detectors[kind].detect(as_tensor(canvas))
        assert len(dets) == 1, kind
        check_portrait(dets[0], region)


def test_grayscale_stacked_to_three_channels(detectors):
    """A grayscale image repeated to 3 channels works."""
    gray = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2GRAY)
    img = torch.from_numpy(gray).float()[None].expand(3, -1, -1)
    dets = detectors["both"].detect(img)
    assert len(dets) == 1
    check_portrait(dets[0], ASTRONAUT_FACE)


def test_uint8_input_matches_float(models):
    """uint8 input gives the same detections as float32 on the device (torch) path; the CPU
    host path resizes uint8 frames in uint8, as MediaPipe's CPU graph does, which rounds the
    pixel values (measured 0.05 px on the box)."""
    a = torch.from_numpy(skimage.data.astronaut().copy()).permute(2, 0, 1)
    device = FaceDetector(models, EngineConfig(device="cpu", detector="short"), host=False)
    np.testing.assert_allclose(device.detect(a)[0].box, device.detect(a.float())[0].box)
    host = FaceDetector(models, EngineConfig(device="cpu", detector="short"), host=True)
    np.testing.assert_allclose(host.detect(a)[0].box, host.detect(a.float())[0].box, atol=0.2)


def test_batch_equals_single_calls(detectors):
    """A batch of different-size images equals one call per image."""
    images = [as_tensor(hopper()), as_tensor(skimage.data.astronaut()[:400, 50:]),
              as_tensor(skimage.data.coffee())]
    batch = detectors["both"].detect_batch(images)
    for img, dets in zip(images, batch):
        single = detectors["both"].detect(img)
        assert len(single) == len(dets)
        for a, b in zip(single, dets):
            np.testing.assert_allclose(a.box, b.box, atol=1e-3)
            np.testing.assert_allclose(a.keypoints, b.keypoints, atol=1e-3)
            assert a.score == pytest.approx(b.score, abs=1e-5)
    assert detectors["both"].detect_batch([]) == []


def test_max_faces(models):
    """``max_faces`` caps the detections per image."""
    a = skimage.data.astronaut()
    pair = np.concatenate([a, a], axis=1)
    one = FaceDetector(models, EngineConfig(device="cpu", max_faces=1))
    assert len(one.detect(as_tensor(pair))) == 1


def test_bad_input_names_the_fix(detectors):
    """Wrong layouts and types raise errors that say what to do."""
    det = detectors["short"]
    rgb = skimage.data.astronaut()
    with pytest.raises(ValueError, match="permute"):
        det.detect(torch.from_numpy(rgb).float())  # channels last
    with pytest.raises(ValueError, match="expand"):
        det.detect(torch.zeros(1, 64, 64))
    with pytest.raises(TypeError, match="torch.from_numpy"):
        det.detect(rgb)
    with pytest.raises(ValueError, match="empty"):
        det.detect(torch.zeros(3, 0, 10))
