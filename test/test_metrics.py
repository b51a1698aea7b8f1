"""Metrics of core.io.metrics on hand-made sequences with known answers."""

import numpy as np
import pytest

from face3d_ros.core.io import metrics as M


def face(tid, x=0.0, yaw=0.0, roll=0.0, lm_shift=0.0):
    """A face at box (x, 0, x + 10, 10) with given id, yaw, roll and shifted landmarks."""
    lm = np.zeros((478, 2)) + lm_shift
    return M.FaceSample(tid, np.array([x, 0.0, x + 10.0, 10.0]), yaw, 0.0, roll, 0.0, 0.0, lm)


def test_summary_percentiles_and_empty():
    s = M.summary(np.arange(1, 101, dtype=float))
    assert s["count"] == 100 and s["p50"] == pytest.approx(50.5)
    assert s["p95"] == pytest.approx(95.05) and s["p99"] == pytest.approx(99.01)
    assert s["max"] == 100.0
    assert M.summary([])["p50"] is None
    lat = M.latency([{"total": 10.0, "detect": 4.0}, {"total": 20.0}])
    assert lat["total"]["count"] == 2 and lat["detect"]["count"] == 1
    assert lat["total"]["mean"] == pytest.approx(15.0)


def test_angle_errors_wrap_and_nan():
    e = M.angle_errors([179.0, -2.0, np.nan], [-179.0, 2.0, 5.0])
    assert e["count"] == 2
    assert e["mean"] == pytest.approx(3.0) and e["max"] == pytest.approx(4.0)
    with pytest.raises(ValueError, match="truth has"):
        M.angle_errors([1.0, 2.0], [1.0])


def test_tracking_switches_fragments_and_cuts():
    frames = [[face(1)], [face(1)], [face(2)], [], [face(2)], [face(2, x=500)], [face(2)]]
    cuts = [False] * 6 + [True]
    t = M.tracking(frames, cuts)
    assert t["track_count"] == 2
    assert t["id_switches"] == 1  # frame 2: id 2 on the box id 1 had
    assert t["fragmentation"] == 1  # id 2 absent in frame 3, back in frame 4
    assert t["ids_across_cuts"] == 1  # id 2 kept across the cut at frame 6
    assert M.tracking([[face(-1)], [face(-1)]])["untracked_faces"] == 2


def test_still_segments_and_jitter():
    still = [False, True, True, True, False, True]
    assert M.still_segments(still) == [(0, 4)]
    assert M.still_segments(still, min_frames=2) == [(0, 4), (4, 6)]
    rolls = [1.0, -1.0, 1.0, -1.0]
    frames = [[face(1, roll=r, lm_shift=r)] for r in rolls] + [[face(1)], [face(1)]]
    j = M.jitter(frames, M.still_segments(still), settle=0)
    assert j["segments"] == 1 and j["samples"] == 1
    assert j["roll"]["mean"] == pytest.approx(1.0)
    assert j["yaw"]["mean"] == pytest.approx(0.0)
    assert j["landmarks_px"]["mean"] == pytest.approx(np.sqrt(2.0))  # std 1 px in x and y
    # By default the first frame of a segment (a new image) is left out.
    assert M.jitter(frames, [(0, 4)])["roll"]["mean"] == pytest.approx(np.std([-1, 1, -1]))
    # An id appearing late is scored from its first frame; one missing in between is not.
    late = [[]] + frames[1:4]
    assert M.jitter(late, [(0, 4)], settle=0)["samples"] == 1
    frames[2] = []
    assert M.jitter(frames, [(0, 4)], settle=0)["samples"] == 0
    assert M.jitter(frames[:2], [(0, 2)], settle=0)["samples"] == 0  # shorter than 3 frames


def test_jitter_across_the_angle_wrap():
    frames = [[face(1, roll=179.0)], [face(1, roll=-179.0)]]
    frames.append(frames[0])
    assert M.jitter(frames, [(0, 3)], settle=0)["roll"]["max"] == pytest.approx(np.std([1, -1, 1]))


def test_faces_per_frame():
    f = M.faces_per_frame([[face(1)], [], [face(1), face(2, x=50)]])
    assert f["histogram"] == {"0": 1, "1": 1, "2": 1}
    assert f["share_with_face"] == pytest.approx(2 / 3) and f["max"] == 2


def test_faces_dropped_totals_known_frames():
    """Faces beyond max_faces: the total and the frames with any; None when no frame says."""
    assert M.faces_dropped([0, 3, None, 1, 0]) == {"total": 4, "frames": 2}
    assert M.faces_dropped([None, None]) is None
    assert M.faces_dropped([0, 0]) == {"total": 0, "frames": 0}
