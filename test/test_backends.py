"""Inference backends and the CPU (host) path: choice, fallback, and the same outputs.

Measured on the project's x86 CPU machine kind (astronaut and Grace Hopper portraits):

* LiteRT backend against the torch backend, end to end (detection, mesh, iris): landmarks
  within 0.008 px, head pose within 0.01 deg;
* the host path (OpenCV crops, NHWC numpy to the networks) against the device path (torch
  ``grid_sample`` crops, the CUDA code run on the CPU) on a float image: landmarks within
  2e-4 px, i.e. the same crops and the same decoding; on a uint8 image the host path rounds its
  resizes and crops to integer levels (as MediaPipe's CPU graph does): 0.03-0.05 px for the same
  ROI, up to 0.26 px end to end (the detector's box moves by up to 0.17 px).
"""

import numpy as np
import pytest
import torch

from face3d_ros.core.pipeline import models as models_mod
from face3d_ros.core.config import EngineConfig
from face3d_ros.core.pipeline.engine import FaceEngine
from face3d_ros.core.pipeline.landmarks import _roi_affine, crop_rois, roi_from_detection
from face3d_ros.core.pipeline.models import litert_available, resolve_backend
from face3d_ros.core.types import Roi

needs_litert = pytest.mark.skipif(not litert_available(),
                                  reason="ai-edge-litert is not installed")
CPU, CUDA = torch.device("cpu"), torch.device("cuda")


# --- choosing a backend ---------------------------------------------------------------------

@needs_litert
def test_auto_is_litert_on_the_cpu_and_torch_on_cuda():
    """auto: LiteRT on the CPU, torch on CUDA; explicit choices are kept."""
    assert resolve_backend("auto", CPU) == ("litert", CPU, None)
    assert resolve_backend("auto", CUDA) == ("torch", CUDA, None)
    assert resolve_backend("torch", CPU) == ("torch", CPU, None)
    assert resolve_backend("litert", CPU) == ("litert", CPU, None)


@needs_litert
def test_litert_with_cuda_runs_on_the_cpu_with_a_warning():
    """LiteRT has no GPU path here: asked for with CUDA it moves to the CPU and says so."""
    backend, device, warning = resolve_backend("litert", CUDA)
    assert (backend, device) == ("litert", CPU)
    assert "runs on the CPU" in warning and "'auto'" in warning


def test_missing_litert_falls_back_to_torch_with_one_warning(monkeypatch):
    """auto without ai_edge_litert: torch and a warning naming the package; explicit litert
    is an error naming it."""
    monkeypatch.setattr(models_mod, "litert_available", lambda: False)
    backend, device, warning = resolve_backend("auto", CPU)
    assert (backend, device) == ("torch", CPU)
    assert models_mod.LITERT_REQUIREMENT in warning
    with pytest.raises(ImportError, match="pip install ai-edge-litert"):
        resolve_backend("litert", CPU)
    with pytest.raises(ValueError, match="backend must be"):
        resolve_backend("onnx", CPU)


def test_engine_fallback_warning_reaches_device_warning(monkeypatch, model_dir):
    """The engine reports the fallback where the node logs it (``device_warning``)."""
    monkeypatch.setattr(models_mod, "litert_available", lambda: False)
    engine = FaceEngine(EngineConfig(device="cpu", model_dir=str(model_dir)))
    assert engine.backend == "torch"
    assert "not installed" in engine.device_warning
    # an engine rebuilt on the same models (the node's live parameter changes) keeps it
    again = FaceEngine(EngineConfig(device="cpu", min_presence=0.3), models=engine.models)
    assert again.device_warning == engine.device_warning


def test_config_validates_backend_and_threads():
    """Unknown backends and thread counts out of range are rejected with the field name."""
    with pytest.raises(ValueError, match="backend"):
        EngineConfig(backend="onnx")
    with pytest.raises(ValueError, match="threads"):
        EngineConfig(threads=-1)
    assert EngineConfig().backend == "auto" and EngineConfig().threads == 0


# --- the same results -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def engines(model_dir):
    """A default CPU engine and a torch-backend one (sharing nothing)."""
    default = FaceEngine(EngineConfig(device="cpu", model_dir=str(model_dir), threads=2))
    torch_engine = FaceEngine(EngineConfig(device="cpu", backend="torch",
                                           model_dir=str(model_dir), threads=2))
    return default, torch_engine


@needs_litert
def test_default_backend_on_this_machine_is_litert(engines):
    """Where LiteRT is installed (CI), the CPU default runs it, with one torch thread."""
    default, _ = engines
    assert default.backend == "litert" and default.device_warning is None
    assert default.models.threads == 2
    saved = torch.get_num_threads()
    try:
        FaceEngine(default.config, models=default.models)
        assert torch.get_num_threads() == 1  # torch only runs small ops next to LiteRT
    finally:
        torch.set_num_threads(saved)


@needs_litert
def test_backends_give_the_same_faces(engines, astronaut_rgb, grace_hopper_rgb):
    """LiteRT and torch backends: same faces, landmarks within 0.02 px, pose within 0.05 deg."""
    lite, tch = engines
    for image in (astronaut_rgb, grace_hopper_rgb):
        a, b = lite.process(image).faces, tch.process(image).faces
        assert len(a) == len(b) == 1
        assert np.abs(a[0].landmarks_2d - b[0].landmarks_2d).max() < 0.02
        np.testing.assert_allclose(a[0].box, b[0].box, atol=0.02)
        for k in ("yaw", "pitch", "roll"):
            assert getattr(a[0].head_pose, k) == pytest.approx(getattr(b[0].head_pose, k),
                                                               abs=0.05)


def _device_path(engine):
    """The same networks with the device (CUDA) code path, run on the CPU."""
    dev = FaceEngine(engine.config, models=engine.models)
    dev.detector.host = False
    dev.landmarker.host = False
    return dev


def test_host_path_equals_device_path_on_float_images(engines, astronaut_rgb, grace_hopper_rgb):
    """OpenCV crops + NHWC against grid_sample + NCHW: the same landmarks (float input, where
    neither path rounds), so crops, pixel conventions and decoding agree."""
    _, tch = engines
    dev = _device_path(tch)
    for image in (astronaut_rgb, grace_hopper_rgb):
        img = image.astype(np.float32) / 255.0
        a, b = tch.process(img).faces[0], dev.process(img).faces[0]
        assert np.abs(a.landmarks_2d - b.landmarks_2d).max() < 2e-3
        np.testing.assert_allclose(a.box, b.box, atol=2e-3)


def test_host_path_on_uint8_images_is_within_rounding(engines, astronaut_rgb, grace_hopper_rgb):
    """uint8 frames: the host path's integer crops and resizes move landmarks by a fraction of
    a pixel (measured up to 0.26 px), never more."""
    _, tch = engines
    dev = _device_path(tch)
    for image in (astronaut_rgb, grace_hopper_rgb):
        a, b = tch.process(image).faces[0], dev.process(image).faces[0]
        err = np.abs(a.landmarks_2d[:, :2] - b.landmarks_2d[:, :2])
        assert err.max() < 0.5 and err.mean() < 0.1
        # the same ROI: only the crops' rounding differs
        ta, tb = tch.to_tensor(image), dev.to_tensor(image)
        roi = roi_from_detection(tch.detect([ta])[0][0])
        la = tch.landmarks([ta], [0], [roi]).landmarks[0].numpy()
        lb = dev.landmarks([tb], [0], [roi]).landmarks[0].numpy()
        assert np.abs(la[:, :2] - lb[:, :2]).max() < 0.1


def test_to_tensor_on_the_cpu_is_a_view(engines, astronaut_rgb):
    """A uint8 RGB frame is not copied; gray, RGBA and float frames become (3, H, W) RGB."""
    lite, _ = engines
    t = lite.to_tensor(astronaut_rgb)
    assert t.shape == (3, 512, 512) and t.dtype == torch.uint8
    assert t.data_ptr() == astronaut_rgb.ctypes.data
    ro = astronaut_rgb.copy()
    ro.flags.writeable = False
    assert lite.to_tensor(ro).data_ptr() == ro.ctypes.data
    gray = astronaut_rgb[..., 0]
    assert torch.equal(lite.to_tensor(gray)[2], torch.from_numpy(gray))
    rgba = np.dstack([astronaut_rgb, np.full(gray.shape, 7, np.uint8)])
    assert torch.equal(lite.to_tensor(rgba), t)
    f = lite.to_tensor(astronaut_rgb.astype(np.float32) / 255.0)
    assert f.dtype == torch.float32 and torch.allclose(f, t.float(), atol=1e-3)


def test_crop_rois_host_path_matches_grid_sample():
    """The tracker's thumbnails: OpenCV crops equal grid_sample's up to integer rounding."""
    rng = np.random.default_rng(3)
    img8 = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    img = torch.from_numpy(img8).permute(2, 0, 1)
    rois = [Roi((40.0, 30.0), 36.0, 0.3), Roi((5.0, 50.0), 40.0, -1.0)]  # one over the border
    host, aff_h = crop_rois([img], [0, 0], rois, 16)
    dev, aff_d = crop_rois([img.float().contiguous()], [0, 0], rois, 16)
    torch.testing.assert_close(aff_h, aff_d)
    assert host.shape == dev.shape == (2, 3, 16, 16)
    assert (host - dev).abs().max() <= 0.5 + 1e-3


def test_roi_affine_numpy_equals_torch():
    """The host path's numpy ROI affines equal the device path's torch ones."""
    rois = torch.tensor([[10.0, 20.0, 30.0, 0.3], [50.0, 5.0, 12.0, -2.0], [0.0, 0.0, 1.0, 0.0]])
    for mirror in (False, True, torch.tensor([False, True, True])):
        a = _roi_affine(rois, 64, mirror, host=True)
        b = _roi_affine(rois, 64, mirror, host=False)
        assert a.dtype == b.dtype == torch.float32
        torch.testing.assert_close(a, b)


def test_node_parameters_reach_the_engine_config():
    """The node's backend and threads parameters (read-only) end up in EngineConfig."""
    params = pytest.importorskip("face3d_ros.ros.param_spec")
    cfg = params.configs_from_values({"backend": "torch", "threads": 3})
    assert (cfg.engine.backend, cfg.engine.threads) == ("torch", 3)
    assert params.SPECS["backend"].read_only and params.SPECS["threads"].read_only
    assert params.SPECS["backend"].default == "auto" and params.SPECS["threads"].default == 0
    with pytest.raises(ValueError,
                       match="backend must be one of 'auto', 'torch', 'litert', got 'onnx'"):
        params.configs_from_values({"backend": "onnx"})
    with pytest.raises(ValueError, match="threads"):
        params.configs_from_values({"threads": -2})
