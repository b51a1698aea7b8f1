"""Crowds and small faces: tiled detection, the max_faces count, non-faces (real photos, CPU).

The crowds are mosaics of the registry portraits (skimage's astronaut, matplotlib's Grace
Hopper, mirrored every other pair) at face sizes from 40 px up, in 640x480, 1280x720 and
1920x1080 frames (``face3d_ros.tools.bench.crowd_frame``).
"""

import cv2
import numpy as np
import pytest
import skimage.data
import torch

from face3d_ros.core.config import EngineConfig, TrackerConfig
from face3d_ros.core.pipeline.detection import (FULL_RANGE, SHORT_RANGE, FaceDetector,
                                                _cut_by_tile, _letterbox, _letterbox_host,
                                                plan_scan, plan_tiles)
from face3d_ros.core.pipeline.engine import FaceEngine
from face3d_ros.core.pipeline.tracking import FaceTracker, box_iou
from face3d_ros.tools.bench import CROWDS, crowd_frame


@pytest.fixture(scope="module")
def engine(model_dir):
    """The default engine (LiteRT where installed) on the CPU, two threads."""
    return FaceEngine(EngineConfig(device="cpu", threads=2, model_dir=str(model_dir)))


def matches(truth: np.ndarray, boxes) -> np.ndarray:
    """(N,) how many of ``boxes`` overlap each expected face (IoU > 0.3)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if len(boxes) == 0:
        return np.zeros(len(truth), dtype=int)
    return (box_iou(truth, boxes) > 0.3).sum(1)


def test_tile_plan_follows_the_smallest_face_and_the_image_size():
    """No tiles where the whole image is enough; more for smaller faces and larger images;
    tiles cover the image and lie inside it."""
    assert plan_tiles(640, 480, 0, SHORT_RANGE) == []
    assert plan_tiles(320, 240, 40, SHORT_RANGE) == []
    counts = [len(plan_tiles(w, h, 40, SHORT_RANGE)) for w, h in CROWDS]
    assert 0 < counts[0] < counts[1] < counts[2]
    assert len(plan_tiles(1920, 1080, 80, SHORT_RANGE)) < counts[2]
    for w, h in CROWDS:
        tiles = np.array(plan_tiles(w, h, 40, FULL_RANGE))
        assert (tiles[:, :2] >= 0).all() and (tiles[:, 2] <= w).all() and (tiles[:, 3] <= h).all()
        cover = np.zeros((h, w), bool)
        for x0, y0, x1, y1 in tiles:
            cover[y0:y1, x0:x1] = True
        assert cover.all()


@pytest.mark.parametrize("size", [(1280, 720), (1000, 700)])
def test_tiles_of_a_level_are_windows_of_one_resize(size):
    """The tiles of one pyramid level share one resize: one source per whole image and per
    level; each tile's window covers its nominal rect to within half a resized pixel; and the
    batch pixel at every input position shows the image at the point the window's params and
    rect map it to (a linear ramp, which the antialiased bilinear filter keeps exact away from
    the borders), on the host and device paths alike."""
    w, h = size
    tiles = plan_tiles(w, h, 40, SHORT_RANGE)
    views = [(0, (0, 0, w, h), False)] + [(0, t, True) for t in tiles]
    s = SHORT_RANGE.input_size
    scan = plan_scan(views, list(range(len(views))), s)
    levels = {(t[2] - t[0], t[3] - t[1]) for t in tiles}
    assert len(levels) >= 1 and len(scan.sources) == 1 + len(levels)
    nominal = np.array([v[1] for v in views], np.float64)
    assert (np.abs(scan.rect - nominal) <= scan.params[:, [0, 1, 0, 1]] / 2 + 1e-9).all()
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    ramp = 0.1 * xs + 0.15 * ys  # 0..255 at most
    image = np.repeat(ramp[..., None], 3, 2)  # (H, W, 3) float32
    host = _letterbox_host([image], scan, s)  # (V, S, S, 3)
    dev = _letterbox([torch.from_numpy(image).permute(2, 0, 1)], scan, s).permute(0, 2, 3, 1)
    np.testing.assert_allclose(host, dev.numpy(), atol=1e-4)
    for r in range(len(views)):
        _, _, nw, nh = scan.windows[r]
        sx, sy, left, top = scan.params[r]
        inside = (slice(int(top) + 3, int(top) + nh - 3), slice(int(left) + 3, int(left) + nw - 3))
        iy, ix = np.mgrid[inside]
        x = (ix + 0.5 - left) * sx + scan.rect[r, 0]  # image px (pixel centres at k + 0.5)
        y = (iy + 0.5 - top) * sy + scan.rect[r, 1]
        expected = (0.1 * (x - 0.5) + 0.15 * (y - 0.5)) * (2.0 / 255.0) - 1.0
        np.testing.assert_allclose(host[r][inside][..., 0], expected, atol=2e-3)
        outside = np.ones((s, s), bool)
        outside[int(top):int(top) + nh, int(left):int(left) + nw] = False
        assert (host[r][outside] == -1.0).all()  # the letterbox's black padding


def test_a_face_cut_by_an_inner_tile_edge_is_dropped():
    """A box touching a tile edge inside the image is cut; at the image border it is kept."""
    rect = np.array([[100, 0, 420, 320]] * 3, np.float32)
    inner = np.array([[True, False, True, True]] * 3)
    boxes = np.array([[99, 50, 160, 110], [150, 50, 210, 110], [150, 0, 210, 60]], np.float32)
    cut = _cut_by_tile(boxes, rect, inner, np.full(3, np.inf, np.float32))
    assert cut.tolist() == [True, False, False]


@pytest.mark.parametrize("size", list(CROWDS))
def test_every_face_of_a_crowd_found_once(engine, size):
    """Every face of >= 40 px found, none twice, nothing else (tiles; whole image alone finds
    8/12, 11/24 and 5/48)."""
    frame, truth = crowd_frame(*size, CROWDS[size])
    result = engine.process(frame)
    hits = matches(truth, [f.box for f in result.faces])
    missed = np.round(truth[hits == 0, 2] - truth[hits == 0, 0])
    assert (hits >= 1).all(), f"missed faces of {missed} px"
    assert (hits <= 1).all(), "a face found twice"
    assert len(result.faces) == len(truth), "a face where there is none"
    assert result.detector_tiles > 0 and result.faces_dropped == 0
    assert result.timings_ms["detect"] > 0


def test_host_and_device_paths_tile_alike(engine):
    """The tiled detector gives the same faces on the host (numpy) and device (torch) paths."""
    frame, truth = crowd_frame(640, 480, CROWDS[(640, 480)])
    torch_engine = FaceEngine(EngineConfig(device="cpu", backend="torch", threads=2,
                                           model_dir=engine.config.model_dir))
    img = torch_engine.to_tensor(frame.astype(np.float32) / 255.0)
    host = torch_engine.detector.detect_frames([img])
    dev = FaceDetector(torch_engine.models, torch_engine.config, host=False)
    other = dev.detect_frames([img])
    assert len(host.faces[0]) == len(truth)
    assert host.tiles == other.tiles
    a = np.array([d.box for d in host.faces[0]])
    b = np.array([d.box for d in other.faces[0]])
    assert a.shape == b.shape
    np.testing.assert_allclose(a, b, atol=2e-3)


def test_cap_counts_the_faces_it_drops(engine):
    """More faces than max_faces: the best max_faces kept, the rest counted, per frame and in
    the tracker."""
    frame, truth = crowd_frame(1920, 1080, CROWDS[(1920, 1080)])
    capped = FaceEngine(EngineConfig(device="cpu", threads=2, max_faces=20,
                                     model_dir=engine.config.model_dir), models=engine.models)
    result = capped.process(frame)
    assert len(result.faces) <= 20
    assert result.faces_dropped == len(truth) - 20
    tracker = FaceTracker(capped, TrackerConfig(min_hits=1))
    first = tracker.process(frame, stamp=0.0)
    assert len(first.faces) <= 20 and first.faces_dropped == len(truth) - 20


def test_no_face_on_photos_without_people(engine):
    """Cat and coffee, alone and in 1280x720 / 1920x1080 frames: no face (the tiles' weak
    detections are rejected by the mesh face flag)."""
    for photo in (skimage.data.chelsea(), skimage.data.coffee()):
        assert engine.process(photo).faces == ()
        for w, h in ((1280, 720), (1920, 1080)):
            s = min(w / photo.shape[1], h / photo.shape[0])
            big = cv2.resize(photo, (int(photo.shape[1] * s), int(photo.shape[0] * s)))
            canvas = np.full((h, w, 3), 110, np.uint8)
            canvas[:big.shape[0], :big.shape[1]] = big
            assert engine.process(canvas).faces == ()


def test_tracker_rescans_tiles_every_n_frames(engine):
    """While faces track, each tile is scanned once per detect_every_n frames (with the whole
    image, in one batch), and a small face that appears is found within N frames."""
    frame, truth = crowd_frame(640, 480, CROWDS[(640, 480)])
    n_tiles = len(engine.detector.tiles_for(640, 480))
    tracker = FaceTracker(engine, TrackerConfig(min_hits=1, detect_every_n=10))
    empty = frame.copy()
    small = int(np.argmin(truth[:, 2] - truth[:, 0]))
    x0, y0, x1, y1 = truth[small].astype(int)
    pad = int(0.4 * (x1 - x0))
    empty[max(0, y0 - pad):y1 + pad, max(0, x0 - pad):x1 + pad] = 110  # hide the 40 px face
    first = tracker.process(empty, stamp=0.0)
    assert first.detector_tiles == n_tiles
    assert len(first.faces) == len(truth) - 1
    scanned, found_at = [], None
    for i in range(1, 11):
        res = tracker.process(frame, stamp=i / 30.0)
        scanned.append(res.detector_tiles)
        if found_at is None and matches(truth[small:small + 1], [f.box for f in res.faces])[0]:
            found_at = i
    assert sum(scanned) == n_tiles and scanned.count(n_tiles) == 1
    assert found_at is not None and found_at <= 10


def test_tiled_engine_keeps_portrait_scenes_exact(engine):
    """With tiles, the engine still finds exactly the faces of the detector's portrait scenes
    (a side-by-side pair; the astronaut blown up into 1080p and 12 MP frames): the candidates
    that the short-range tiles add on the blurred suit are dropped by the face flag."""
    a = skimage.data.astronaut()
    h = skimage.data.astronaut()[:, ::-1]
    pair = np.ascontiguousarray(np.concatenate([a, h], axis=1))
    assert len(engine.process(pair).faces) == 2
    for (w, hh), scale, offset in (((1920, 1080), 1080 / 512, 600),
                                   ((4000, 3000), 3000 / 512, 400)):
        side = int(round(512 * scale))
        canvas = np.full((hh, w, 3), 200, np.uint8)
        canvas[:side, offset:offset + side] = cv2.resize(a, (side, side),
                                                         interpolation=cv2.INTER_LINEAR)
        faces = engine.process(canvas).faces
        assert len(faces) == 1, (w, hh)
        cx = 0.5 * (faces[0].box[0] + faces[0].box[2])
        assert offset < cx < offset + side


def test_bench_own_work_replays_the_networks_and_restores_them(engine):
    """face3d-bench's own-work table answers the network calls from cached real outputs
    (the faces keep being tracked, every stage is timed) and gives the engine its networks
    back afterwards."""
    from face3d_ros.tools.bench import bench_own_work, tiled_faces

    got = bench_own_work(engine, 2, 4)
    assert {"landmarks", "geometry", "total"} <= set(got) and "detect" not in got
    assert 0.0 < got["landmarks"] < got["total"] and 0.0 < got["geometry"] < got["total"]
    detecting = bench_own_work(engine, 2, 4, detect=True)  # FaceEngine.process
    assert 0.0 < detecting["detect"] < detecting["total"]
    assert 0.0 < detecting["landmarks"] < detecting["total"]
    assert "infer" not in vars(engine.models)  # the replay is gone
    calls = engine.models.network_ms
    assert len(engine.process(tiled_faces(2)).faces) == 2
    assert engine.models.network_ms > calls  # real network calls again
