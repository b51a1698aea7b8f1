"""The tracker starts a new stream when the frame size changes (real photos, real weights).

A track's ROI and box are pixels of the frame it came from; carried into a frame of another
size they land on another person or on nothing, which showed as phantom faces and as one
person's id moving to another.
"""

import cv2
import numpy as np
import pytest

from face3d_ros.core.config import EngineConfig, TrackerConfig
from face3d_ros.core.pipeline.engine import FaceEngine
from face3d_ros.core.pipeline.tracking import FaceTracker


@pytest.fixture(scope="module")
def engine(model_dir):
    return FaceEngine(EngineConfig(device="cpu", model_dir=str(model_dir)))


def two_faces_640x480(astronaut, hopper):
    """Hopper on the left, the astronaut on the right, each 320x480."""
    left = cv2.resize(hopper[60:540], (320, 480), interpolation=cv2.INTER_AREA)
    right = cv2.resize(astronaut[:, 64:448], (320, 480), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(np.concatenate((left, right), axis=1))


def test_two_face_frame_alone_has_two_faces(engine, astronaut_rgb, grace_hopper_rgb):
    pair = two_faces_640x480(astronaut_rgb, grace_hopper_rgb)
    tracker = FaceTracker(engine, TrackerConfig(min_hits=1))
    counts = [len(tracker.process(pair, stamp=i / 30.0).faces) for i in range(3)]
    assert counts == [2, 2, 2]


@pytest.mark.parametrize("first", ["astronaut", "hopper"])
def test_size_change_starts_a_new_stream(engine, astronaut_rgb, grace_hopper_rgb, first):
    """Three frames of one portrait, then the 640x480 two-face frame: two faces from the first
    frame on, none of them carrying the portrait's old id (ids are not reused)."""
    portrait = astronaut_rgb if first == "astronaut" else grace_hopper_rgb
    pair = two_faces_640x480(astronaut_rgb, grace_hopper_rgb)
    tracker = FaceTracker(engine, TrackerConfig(min_hits=1))
    before = [tracker.process(portrait, stamp=i / 30.0) for i in range(3)]
    assert [len(f.faces) for f in before] == [1, 1, 1]
    old_id = before[-1].faces[0].track_id
    after = [tracker.process(pair, stamp=(3 + i) / 30.0) for i in range(6)]
    assert [len(f.faces) for f in after] == [2] * 6, "phantom or missing faces after the change"
    assert after[0].detector_ran
    ids = {f.track_id for frame in after for f in frame.faces}
    assert old_id not in ids, f"the portrait's id {old_id} moved to a face of the new frame"
    assert len(ids) == 2 and min(ids) > old_id
    # The faces are where the people are: one in each half.
    xs = sorted(0.5 * (f.box[0] + f.box[2]) for f in after[-1].faces)
    assert xs[0] < 320 < xs[1]
