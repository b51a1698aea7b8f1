"""The node's processing thread survives an unexpected failure on a frame, and its markers
fall back to plain messages where serialized ones cannot be published.

A real rclpy node, no spinning and no models: its per-frame work is replaced by one that fails
on chosen frames; the markers publisher by one that, like an old rclpy, takes messages only.
"""

import threading
import time

import pytest

from face3d_ros.ros import node as node_module

pytestmark = pytest.mark.ros


@pytest.fixture
def face3d_node(rclpy_context):
    """An unconfigured face3d node in its own context."""
    n = node_module.Face3DNode(context=rclpy_context)
    yield n
    n.destroy_node()


def run_frames(n, frames, fail_on):
    """Feed ``frames`` through the processing loop; ``_process`` raises on the listed ones."""
    done = []

    def fake_process(msg, t_recv):
        if msg in fail_on:
            raise IndexError(f"defect on frame {msg}")
        done.append(msg)

    n._process = fake_process
    n._running = True
    worker = threading.Thread(target=n._run, daemon=True)
    worker.start()
    for msg in frames:
        with n._lock:
            n._slot = (msg, time.monotonic())
            n._lock.notify_all()
        deadline = time.monotonic() + 5.0
        while n._slot is not None and worker.is_alive() and time.monotonic() < deadline:
            time.sleep(0.005)
    time.sleep(0.05)
    with n._lock:
        n._running = False
        n._lock.notify_all()
    worker.join(5.0)
    return done, worker


def test_a_failing_frame_does_not_stop_processing(face3d_node):
    """Frames after a failing one are processed; the failures are counted."""
    done, worker = run_frames(face3d_node, range(6), fail_on={1, 2})
    assert not worker.is_alive()
    assert done == [0, 3, 4, 5]  # the frames after the failures were processed
    assert face3d_node._stats.failed == 2
    assert face3d_node._worker_error is None


def test_processing_stops_after_many_failures_in_a_row(face3d_node):
    """A defect on every frame ends processing at the limit, with the error recorded."""
    limit = node_module.MAX_CONSECUTIVE_FAILURES
    done, worker = run_frames(face3d_node, range(limit + 3), fail_on=set(range(1, limit + 1)))
    assert not worker.is_alive()
    assert done == [0]  # stopped at the limit, later frames never ran
    assert face3d_node._stats.failed == limit
    assert "IndexError" in (face3d_node._worker_error or "")


class OldRclpyPublisher:
    """A markers publisher of an rclpy whose ``publish`` takes messages only."""

    def __init__(self):
        self.sent = []

    def publish(self, msg):
        from visualization_msgs.msg import MarkerArray
        if not isinstance(msg, MarkerArray):
            raise TypeError(f"Expected {MarkerArray}, got {type(msg)}")
        self.sent.append(msg)


def test_markers_fall_back_to_messages_where_bytes_cannot_be_published(face3d_node):
    """The frame whose bytes were refused is sent again as a message, deletes included, and
    later frames go straight to messages."""
    from std_msgs.msg import Header
    from visualization_msgs.msg import Marker

    from face3d_ros.ros.markers import MarkerBuilder
    from ros_frames import make_face, make_frame

    a = make_face(3, 10.0, (0.0, 0.0, 0.7), seed=1)
    b = make_face(5, -10.0, (0.2, 0.0, 0.9), seed=2)
    n = face3d_node
    n._markers = MarkerBuilder()
    n._markers.build(make_frame([a, b]), Header(frame_id="cam"))  # both faces drawn before
    n._markers_serialized = True
    pub = OldRclpyPublisher()
    n._pub = {"markers": pub}
    n._publish_markers(make_frame([b]), Header(frame_id="cam"))
    assert n._markers_serialized is False
    (first,) = pub.sent
    deletes = {m.id for m in first.markers if m.action == Marker.DELETE}
    adds = {m.id for m in first.markers if m.action == Marker.ADD}
    assert deletes == {3} and adds == {5}
    lms = next(m for m in first.markers if m.ns == "face_landmarks" and m.id == 5)
    assert [(p.x, p.y, p.z) for p in lms.points[:2]] == [tuple(v) for v in b.landmarks_3d[:2]]
    n._publish_markers(make_frame([a, b]), Header(frame_id="cam"))
    assert len(pub.sent) == 2 and {m.id for m in pub.sent[1].markers} == {3, 5}
