"""The input size policy (ros/input_size.py): pure functions, no ROS, plus the real engine on a
photo upscaled past the limit."""

import dataclasses

import cv2
import numpy as np
import pytest

from face3d_ros.core.types import CameraIntrinsics
from face3d_ros.ros.input_size import (downscale, processing_scale, scale_intrinsics,
                                       to_original_pixels)
from ros_frames import INTRINSICS, make_face, make_frame


def test_processing_scale():
    assert processing_scale(1920, 1080, 1920) == 1.0
    assert processing_scale(7680, 4320, 1920) == 0.25
    assert processing_scale(1000, 4000, 2000) == 0.5


def test_intrinsics_round_trip():
    small = scale_intrinsics(INTRINSICS, 0.25, 0.25)
    assert (small.width, small.height) == (160, 120)
    assert small.fx == pytest.approx(125.0) and small.cx == pytest.approx(79.625)
    frame = dataclasses.replace(make_frame([make_face(3, 10.0, (0.0, 0.0, 0.8))]),
                                intrinsics=small, image_size=(160, 120))
    back = to_original_pixels(frame, 0.25, 0.25, None, (640, 480))
    assert back.intrinsics.fx == pytest.approx(INTRINSICS.fx)
    assert back.intrinsics.cx == pytest.approx(INTRINSICS.cx)
    assert back.image_size == (640, 480)


def test_results_are_mapped_to_original_pixels_and_3d_is_unchanged():
    face = make_face(3, 10.0, (0.0, 0.0, 0.8))
    frame = make_frame([face])
    back = to_original_pixels(frame, 0.5, 0.5, INTRINSICS, (1280, 960))
    f = back.faces[0]
    np.testing.assert_allclose(f.landmarks_2d[:, :2], (face.landmarks_2d[:, :2] + 0.5) * 2 - 0.5,
                               rtol=1e-6)
    np.testing.assert_allclose(f.landmarks_2d[:, 2], face.landmarks_2d[:, 2] * 2, rtol=1e-6)
    np.testing.assert_allclose(f.box, (face.box + 0.5) * 2 - 0.5)
    assert f.roi.size == pytest.approx(2 * face.roi.size)
    np.testing.assert_array_equal(f.landmarks_3d, face.landmarks_3d)
    assert back.intrinsics is INTRINSICS and f.track_id == 3


def test_engine_on_a_downscaled_frame_gives_original_pixels(astronaut_rgb, model_dir):
    """The astronaut upscaled 4x and processed at 1/4: the face lands where it is in the big
    frame, within the few pixels the resampling costs."""
    from face3d_ros.core.config import EngineConfig
    from face3d_ros.core.pipeline.engine import FaceEngine

    engine = FaceEngine(EngineConfig(device="cpu", model_dir=str(model_dir)))
    big = cv2.resize(astronaut_rgb, (2048, 2048), interpolation=cv2.INTER_CUBIC)
    intr = CameraIntrinsics(1800.0, 1800.0, 1023.5, 1023.5, 2048, 2048)
    small, sx, sy = downscale(big, processing_scale(2048, 2048, 512))
    assert small.shape == (512, 512, 3) and sx == sy == 0.25
    frame = engine.process(small, scale_intrinsics(intr, sx, sy))
    back = to_original_pixels(frame, sx, sy, intr, (2048, 2048))
    direct = engine.process(big, intr)
    assert len(back.faces) == len(direct.faces) == 1
    a, b = back.faces[0], direct.faces[0]
    assert np.abs(a.box - b.box).max() < 12.0  # px of the 2048 frame
    assert np.linalg.norm(a.head_pose.translation - b.head_pose.translation) < 0.03
    assert back.intrinsics == intr


def test_infer_names_a_directory(tmp_path, caplog):
    """face3d-infer DIR says that DIR is a directory (before: "no such file")."""
    from face3d_ros.tools.infer import main

    out = tmp_path / "out.json"
    assert main([str(tmp_path), "--device", "cpu", "--json", str(out)]) == 1
    assert "is a directory" in caplog.text
    assert "is a directory" in out.read_text()
