"""The CUDA path against the CPU path, on a machine with a GPU (skipped without one)."""

import numpy as np
import pytest
import torch

from face3d_ros.core.config import EngineConfig, TrackerConfig
from face3d_ros.core.pipeline.engine import FaceEngine
from face3d_ros.core.pipeline.tracking import FaceTracker

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="no CUDA device: the CUDA path runs where a GPU is present")


@pytest.fixture(scope="module")
def engines():
    """The engine on the CPU running the device code path (torch networks, torch crops, as on
    CUDA; the CPU host path's uint8 crops are compared with it in test_backends) and on the
    first CUDA device."""
    cpu = FaceEngine(EngineConfig(device="cpu", backend="torch"))
    cpu.detector.host = False
    cpu.landmarker.host = False
    return cpu, FaceEngine(EngineConfig(device="cuda"))


def test_cuda_matches_cpu(engines, astronaut_rgb, grace_hopper_rgb):
    """Same faces, landmarks within 0.1 px, pose within 0.5 deg, gaze within ~1 deg."""
    cpu, cuda = engines
    assert cuda.device.type == "cuda" and cuda.device_warning is None
    assert cuda.backend == "torch"
    for image in (astronaut_rgb, grace_hopper_rgb):
        a, b = cpu.process(image).faces, cuda.process(image).faces
        assert len(a) == len(b) == 1
        assert np.abs(a[0].landmarks_2d[:, :2] - b[0].landmarks_2d[:, :2]).max() < 0.1
        for k in ("yaw", "pitch", "roll"):
            assert getattr(a[0].head_pose, k) == pytest.approx(getattr(b[0].head_pose, k),
                                                               abs=0.5)
        assert np.allclose(a[0].gaze.combined.direction, b[0].gaze.combined.direction,
                           atol=0.02)


def test_cuda_batch_and_tracking(engines, astronaut_rgb, grace_hopper_rgb):
    """Batches of different image sizes and tracking on the device."""
    _, cuda = engines
    frames = cuda.process_batch([astronaut_rgb, grace_hopper_rgb, astronaut_rgb])
    assert [len(f.faces) for f in frames] == [1, 1, 1]
    tracker = FaceTracker(cuda, TrackerConfig(min_hits=1))
    ids = {f.track_id for i in range(5)
           for f in tracker.process(astronaut_rgb, stamp=i / 30.0).faces}
    assert ids == {1}
