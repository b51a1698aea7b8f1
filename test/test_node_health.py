"""The perception node's reports without a graph (``ros/node_health.py``) and the camera_info
buffer's waiting rule (``ros/camera_info.CameraInfoBuffer``)."""

import threading
import time
from types import SimpleNamespace

import pytest

pytest.importorskip("diagnostic_msgs")

from diagnostic_msgs.msg import DiagnosticStatus  # noqa: E402

from face3d_ros.ros.camera_info import (CAMERA_INFO_MISSES_OFF, CAMERA_INFO_WAIT_S,  # noqa: E402
                                        CameraInfoBuffer)
from face3d_ros.ros.node_health import (FrameStats, message_info_sequence,  # noqa: E402
                                        node_status, silence_reason)


def test_lost_frames_from_sequence_gaps():
    st = FrameStats()
    for seq in (1, 2, 5, 4, 6):  # 3 and 4 skipped at first; a late 4 changes nothing
        st.add_sequence(("pub",), seq)
    assert st.lost == 2
    st.add_sequence(("other",), 10)
    assert st.lost == 2  # a second publisher starts its own count
    assert message_info_sequence({"publisher_gid": {"data": [1, 2]},
                                  "publication_sequence_number": 7}) == ((1, 2), 7)
    assert message_info_sequence({"publication_sequence_number": 0}) is None


def test_report_rate_and_latencies():
    st = FrameStats(last_report_t=10.0)
    st.processed = 30
    st.add_latency("total", 10.0)
    st.add_latency("total", 20.0)
    values = st.report(12.0)
    assert values["rate_hz"] == "15.00" and values["frames_processed"] == 30
    assert st.latency_values() == {"latency_total_ms": "11.00"}


def test_status_order():
    base = dict(worker_error=None, running=True, image_topic="/cam/image", since_image_s=0.1,
                no_image_warn_s=5.0, device_warning=None, intrinsics_source="camera_info")
    assert node_status(**base) == (DiagnosticStatus.OK, "processing")
    assert node_status(**{**base, "since_image_s": None})[0] == DiagnosticStatus.WARN
    assert node_status(**{**base, "worker_error": "boom"}) == (
        DiagnosticStatus.ERROR, "processing stopped: boom")
    assert node_status(**{**base, "intrinsics_source": "assumed: x"})[1] == (
        "processing with assumed intrinsics")


def test_silence_reasons_name_the_fix():
    assert "nobody publishes /cam/image" in silence_reason("/cam/image", [], False)
    assert "set input_reliability to 'best_effort'" in silence_reason("/t", [True, False], True)
    assert "camera may have stopped" in silence_reason("/t", [True], False)


def _info(sec):
    return SimpleNamespace(header=SimpleNamespace(stamp=SimpleNamespace(sec=sec, nanosec=0)),
                           width=640, height=480)


def test_camera_info_buffer_waits_only_while_stamps_match():
    cond = threading.Condition()
    buf = CameraInfoBuffer()
    assert buf.should_wait(lambda: 1) and not buf.should_wait(lambda: 0)
    buf.add(_info(1), {(1, 0)})  # the info carries a received image's stamp
    assert buf.stamps_match
    with cond:
        assert buf.take(cond, (1, 0), 640, 480, True, lambda: True).header.stamp.sec == 1
    # images whose info never comes: each waits once, then waiting turns off
    for _ in range(CAMERA_INFO_MISSES_OFF):
        assert buf.should_wait(lambda: 1)
        t0 = time.monotonic()
        with cond:
            got = buf.take(cond, (9, 0), 640, 480, True, lambda: True)
        assert got.header.stamp.sec == 1  # the newest of the size
        assert time.monotonic() - t0 >= 0.9 * CAMERA_INFO_WAIT_S
    assert not buf.should_wait(lambda: 1)
    buf.add(_info(20), {(20, 0)})  # a matching stamp turns it on again
    assert buf.should_wait(lambda: 1) and buf.misses == 0
