"""The node's processing thread survives an unexpected failure on a frame.

A real rclpy node, no spinning and no models: its per-frame work is replaced by one that fails
on chosen frames.
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
