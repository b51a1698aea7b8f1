"""Pure message conversions (face3d_ros.ros.conversions): no node, no spinning.

Messages are built by hand; images are real photos from registry packages.
"""

import array

import cv2
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

pytest.importorskip("rclpy", reason="run scripts/setup.sh, then source scripts/env.sh")
from builtin_interfaces.msg import Time  # noqa: E402
from face3d_msgs.msg import Face3D  # noqa: E402
from sensor_msgs.msg import CameraInfo, CompressedImage, Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from face3d_ros.core.types import NUM_LANDMARKS  # noqa: E402
from face3d_ros.ros.camera_info import camera_info_to_intrinsics  # noqa: E402
from face3d_ros.ros.conversions import (  # noqa: E402
    SUPPORTED_ENCODINGS, ImageFormatError, compressed_msg_to_rgb,
    face_from_msg, frame_to_msg, gaze_pose_array, image_msg_to_rgb,
    quaternion_x_to, rgb_to_image_msg, topology_to_msg)
from face3d_ros.ros.input_size import header_seconds  # noqa: E402
from ros_frames import INTRINSICS, make_frame, two_face_frame  # noqa: E402


def _header() -> Header:
    return Header(stamp=Time(sec=1700000000, nanosec=123456789), frame_id="cam_optical")


def _image(data: bytes, width: int, height: int, encoding: str, step: int,
           bigendian: bool = False) -> Image:
    msg = Image(header=_header(), width=width, height=height, encoding=encoding, step=step,
                is_bigendian=int(bigendian))
    msg.data = array.array("B", data)
    return msg


def _padded(pixels: np.ndarray, pad: int) -> bytes:
    """Rows of ``pixels`` (H, W, C) as bytes with ``pad`` junk bytes after each row."""
    rows = pixels.reshape(pixels.shape[0], -1)
    junk = np.full((rows.shape[0], pad), 0xAB, dtype=np.uint8)
    return np.ascontiguousarray(np.concatenate([rows.view(np.uint8), junk], axis=1)).tobytes()


@pytest.fixture(scope="module")
def small_rgb(astronaut_rgb) -> np.ndarray:
    """(61, 83, 3) crop of the astronaut's face: odd sizes catch stride mistakes."""
    return np.ascontiguousarray(astronaut_rgb[60:121, 180:263])


@pytest.mark.parametrize("pad", [0, 5])
@pytest.mark.parametrize("encoding,make", [
    ("rgb8", lambda rgb: rgb),
    ("bgr8", lambda rgb: rgb[..., ::-1]),
    ("8UC3", lambda rgb: rgb[..., ::-1]),
    ("rgba8", lambda rgb: np.dstack([rgb, np.full(rgb.shape[:2], 7, np.uint8)])),
    ("bgra8", lambda rgb: np.dstack([rgb[..., ::-1], np.full(rgb.shape[:2], 7, np.uint8)])),
])
def test_colour_encodings_give_the_same_rgb(small_rgb, encoding, make, pad):
    """Every colour encoding, with and without row padding, decodes to the exact RGB."""
    pixels = np.ascontiguousarray(make(small_rgb))
    h, w, c = pixels.shape
    msg = _image(_padded(pixels, pad), w, h, encoding, w * c + pad)
    out = image_msg_to_rgb(msg)
    assert out.shape == (h, w, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, small_rgb)


def test_rgb8_is_a_view_of_the_message_buffer(small_rgb):
    """rgb8 without padding costs no copy."""
    h, w = small_rgb.shape[:2]
    msg = _image(small_rgb.tobytes(), w, h, "rgb8", w * 3)
    out = image_msg_to_rgb(msg)
    assert np.shares_memory(out, np.frombuffer(msg.data, dtype=np.uint8))


@pytest.mark.parametrize("encoding", ["mono8", "8UC1"])
def test_mono8(small_rgb, encoding):
    gray = cv2.cvtColor(small_rgb, cv2.COLOR_RGB2GRAY)
    h, w = gray.shape
    out = image_msg_to_rgb(_image(_padded(gray[..., None], 3), w, h, encoding, w + 3))
    for ch in range(3):
        np.testing.assert_array_equal(out[..., ch], gray)


@pytest.mark.parametrize("bigendian", [False, True])
def test_mono16_keeps_the_high_byte(small_rgb, bigendian):
    gray = cv2.cvtColor(small_rgb, cv2.COLOR_RGB2GRAY)
    h, w = gray.shape
    value16 = gray.astype(np.uint16) * 256 + 77  # low byte is noise
    raw = value16.astype(">u2" if bigendian else "<u2").tobytes()
    out = image_msg_to_rgb(_image(raw, w, h, "mono16", 2 * w, bigendian))
    np.testing.assert_array_equal(out[..., 1], gray)


@pytest.mark.parametrize("encoding,order", [
    ("yuv422", "uyvy"), ("uyvy", "uyvy"), ("yuv422_yuy2", "yuyv"), ("yuyv", "yuyv")])
def test_packed_yuv422(small_rgb, encoding, order):
    """Gray pixels (U = V = 128) decode to the same gray in both byte orders."""
    gray = cv2.cvtColor(small_rgb, cv2.COLOR_RGB2GRAY)[:, :82]  # even width
    h, w = gray.shape
    packed = np.empty((h, w, 2), np.uint8)
    if order == "uyvy":
        packed[..., 0], packed[..., 1] = 128, gray
    else:
        packed[..., 0], packed[..., 1] = gray, 128
    out = image_msg_to_rgb(_image(packed.tobytes(), w, h, encoding, 2 * w))
    # BT.601 video range: Y 16..235 -> 0..255.
    expected = np.clip((gray.astype(np.float64) - 16.0) * 255.0 / 219.0, 0, 255)
    assert np.abs(out[..., 0].astype(np.float64) - expected).max() <= 2.0
    assert np.abs(out.astype(int)[..., 0] - out.astype(int)[..., 2]).max() <= 1


def test_wrong_step_is_a_clear_error(small_rgb):
    h, w = small_rgb.shape[:2]
    msg = _image(small_rgb.tobytes(), w, h, "rgb8", w * 3 - 3)
    with pytest.raises(ImageFormatError) as err:
        image_msg_to_rgb(msg)
    assert err.value.cause == "step"
    assert f"step {w * 3 - 3}" in str(err.value) and f"step >= {w * 3}" in str(err.value)


def test_truncated_data_is_a_clear_error(small_rgb):
    h, w = small_rgb.shape[:2]
    msg = _image(small_rgb.tobytes()[:-10], w, h, "rgb8", w * 3)
    with pytest.raises(ImageFormatError, match="truncated") as err:
        image_msg_to_rgb(msg)
    assert err.value.cause == "length"
    assert str(h * w * 3 - 10) in str(err.value)


def test_unknown_encoding_lists_the_supported_ones(small_rgb):
    h, w = small_rgb.shape[:2]
    msg = _image(small_rgb.tobytes(), w, h, "bayer_rggb8", w * 3)
    with pytest.raises(ImageFormatError) as err:
        image_msg_to_rgb(msg)
    assert err.value.cause == "encoding"
    assert "'bayer_rggb8'" in str(err.value)
    for enc in SUPPORTED_ENCODINGS:
        assert enc in str(err.value)


def test_depth_image_gets_a_remap_hint():
    msg = _image(bytes(8 * 4 * 2), 8, 4, "16UC1", 16)
    with pytest.raises(ImageFormatError, match="depth image"):
        image_msg_to_rgb(msg)


@pytest.mark.parametrize("width,height", [(0, 10), (10, 0), (0, 0)])
def test_zero_size_is_a_clear_error(width, height):
    with pytest.raises(ImageFormatError, match="zero size") as err:
        image_msg_to_rgb(_image(b"", width, height, "rgb8", width * 3))
    assert err.value.cause == "size"
    assert issubclass(ImageFormatError, ValueError)


def test_compressed_png_is_exact_and_jpeg_is_close(astronaut_rgb):
    bgr = cv2.cvtColor(np.ascontiguousarray(astronaut_rgb), cv2.COLOR_RGB2BGR)
    ok, png = cv2.imencode(".png", bgr)
    assert ok
    msg = CompressedImage(header=_header(), format="png")
    msg.data = array.array("B", png.tobytes())
    np.testing.assert_array_equal(compressed_msg_to_rgb(msg), astronaut_rgb)
    ok, jpg = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])
    msg.format, msg.data = "rgb8; jpeg compressed bgr8", array.array("B", jpg.tobytes())
    out = compressed_msg_to_rgb(msg)
    assert out.shape == astronaut_rgb.shape
    assert np.abs(out.astype(int) - astronaut_rgb.astype(int)).mean() < 3.0


def test_compressed_garbage_and_depth_are_clear_errors():
    msg = CompressedImage(format="jpeg")
    msg.data = array.array("B", b"not an image at all" * 10)
    with pytest.raises(ImageFormatError, match="could not decode") as err:
        compressed_msg_to_rgb(msg)
    assert err.value.cause == "decode"
    msg.format = "16UC1; compressedDepth"
    with pytest.raises(ImageFormatError, match="depth"):
        compressed_msg_to_rgb(msg)
    with pytest.raises(ImageFormatError, match="no data"):
        compressed_msg_to_rgb(CompressedImage(format="jpeg"))


def test_rgb_to_image_msg_round_trip(small_rgb):
    msg = rgb_to_image_msg(small_rgb, _header())
    assert (msg.encoding, msg.width, msg.height, msg.step) == ("rgb8", 83, 61, 249)
    assert msg.header.frame_id == "cam_optical"
    np.testing.assert_array_equal(image_msg_to_rgb(msg), small_rgb)
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        rgb_to_image_msg(small_rgb[..., 0], _header())


# -- camera_info -----------------------------------------------------------------------------

def _info(k, width=640, height=480) -> CameraInfo:
    return CameraInfo(header=_header(), width=width, height=height, k=[float(v) for v in k])


GOOD_K = [520.0, 0, 318.5, 0, 515.0, 241.0, 0, 0, 1]


def test_valid_camera_info():
    intr, problem = camera_info_to_intrinsics(_info(GOOD_K), 640, 480)
    assert problem is None
    assert (intr.fx, intr.fy, intr.cx, intr.cy) == (520.0, 515.0, 318.5, 241.0)
    assert (intr.width, intr.height, intr.assumed) == (640, 480, False)


@pytest.mark.parametrize("info,phrase", [
    (None, "no camera_info"),
    (_info([0.0] * 9), "not calibrated"),
    (_info([-520.0, 0, 320, 0, 515, 240, 0, 0, 1]), "non-positive focal"),
    (_info([520.0, 0, 320, 0, 0.0, 240, 0, 0, 1]), "non-positive focal"),
    (_info([float("nan"), 0, 320, 0, 515, 240, 0, 0, 1]), "NaN"),
    (_info(GOOD_K, 1280, 960), "1280x960 image but the image is 640x480"),
    (_info([520.0, 0, 700.0, 0, 515, 240, 0, 0, 1]), "outside"),
    (_info([520.0, 0, 320.0, 0, 515, -3.0, 0, 0, 1]), "outside"),
    (_info([1e-9, 0, 320, 0, 1e-9, 240, 0, 0, 1]), "implausible focal length fx=1e-09"),
    (_info([1e12, 0, 320, 0, 1e12, 240, 0, 0, 1]), "implausible focal length fx=1e+12"),
    (_info([520.0, 0, 320, 0, 1e-6, 240, 0, 0, 1]), "implausible focal length fy=1e-06"),
])
def test_invalid_camera_info_falls_back_with_a_reason(info, phrase):
    intr, problem = camera_info_to_intrinsics(info, 640, 480, default_hfov_deg=70.0)
    assert problem is not None and phrase in problem
    assert intr.assumed
    assert intr.fx == pytest.approx(320.0 / np.tan(np.radians(35.0)))
    assert (intr.cx, intr.cy, intr.width, intr.height) == (320.0, 240.0, 640, 480)


@pytest.mark.parametrize("fx", [60.0, 20000.0])
def test_wide_and_telephoto_camera_info_is_accepted(fx):
    """A 158 deg wide-angle and a 1.8 deg telephoto lens are real cameras."""
    intr, problem = camera_info_to_intrinsics(_info([fx, 0, 320, 0, fx, 240, 0, 0, 1]), 640, 480)
    assert problem is None and intr.fx == fx


def test_camera_info_without_size_is_accepted_when_k_fits():
    intr, problem = camera_info_to_intrinsics(_info(GOOD_K, 0, 0), 640, 480)
    assert problem is None and intr.fx == 520.0


# -- results -> messages ---------------------------------------------------------------------

def _check_ray(msg, ray):
    np.testing.assert_allclose([msg.origin.x, msg.origin.y, msg.origin.z], ray.origin)
    np.testing.assert_allclose([msg.direction.x, msg.direction.y, msg.direction.z],
                               ray.direction)
    assert msg.yaw == pytest.approx(ray.yaw, abs=1e-5)
    assert msg.pitch == pytest.approx(ray.pitch, abs=1e-5)
    assert msg.confidence == pytest.approx(ray.confidence, abs=1e-6)


def test_frame_to_msg_round_trips_every_field():
    frame = two_face_frame()
    header = _header()
    msg = frame_to_msg(frame, header)
    assert msg.header.frame_id == "cam_optical"
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (1700000000, 123456789)
    assert (msg.image_width, msg.image_height) == (640, 480)
    assert (msg.fx, msg.fy, msg.cx, msg.cy) == (INTRINSICS.fx, INTRINSICS.fy, INTRINSICS.cx,
                                                INTRINSICS.cy)
    assert msg.intrinsics_assumed is False
    assert len(msg.faces) == 2
    assert Face3D.NUM_LANDMARKS == NUM_LANDMARKS
    for fm, face in zip(msg.faces, frame.faces):
        assert fm.id == face.track_id
        assert fm.confidence == pytest.approx(face.score, abs=1e-6)
        assert fm.presence == pytest.approx(face.presence, abs=1e-6)
        np.testing.assert_allclose([fm.x_min, fm.y_min, fm.x_max, fm.y_max], face.box,
                                   rtol=1e-6)
        p = fm.head_pose.pose
        np.testing.assert_allclose([p.position.x, p.position.y, p.position.z],
                                   face.head_pose.translation)
        q = [p.orientation.x, p.orientation.y, p.orientation.z, p.orientation.w]
        np.testing.assert_allclose(Rotation.from_quat(q).as_matrix(), face.head_pose.rotation,
                                   atol=1e-9)
        assert (fm.head_yaw, fm.head_pitch, fm.head_roll) == pytest.approx(
            (face.head_pose.yaw, face.head_pose.pitch, face.head_pose.roll), abs=1e-5)
        assert fm.head_pose_confidence == pytest.approx(face.head_pose.confidence, abs=1e-6)
        # Flattened row-major layout: point i at [3i, 3i + 3).
        lm3 = np.asarray(fm.landmarks_3d, dtype=np.float32)
        lm2 = np.asarray(fm.landmarks_2d, dtype=np.float32)
        assert lm3.shape == lm2.shape == (NUM_LANDMARKS * 3,)
        np.testing.assert_array_equal(lm3.reshape(-1, 3), face.landmarks_3d)
        np.testing.assert_array_equal(lm2.reshape(-1, 3), face.landmarks_2d)
        i = Face3D.LEFT_IRIS_CENTER
        np.testing.assert_array_equal(lm3[3 * i:3 * i + 3], face.landmarks_3d[473])
        _check_ray(fm.gaze_left, face.gaze.left)
        _check_ray(fm.gaze_right, face.gaze.right)
        _check_ray(fm.gaze_combined, face.gaze.combined)
        assert tuple(fm.expression_names) == face.expression.names
        np.testing.assert_array_equal(np.asarray(fm.expression_values, np.float32),
                                      face.expression.values)


def test_face_from_msg_inverts_face_to_msg():
    frame = two_face_frame()
    for fm, face in zip(frame_to_msg(frame, _header()).faces, frame.faces):
        back = face_from_msg(fm)
        assert back.track_id == face.track_id
        np.testing.assert_array_equal(back.landmarks_3d, face.landmarks_3d)
        np.testing.assert_array_equal(back.landmarks_2d, face.landmarks_2d)
        np.testing.assert_allclose(back.head_pose.rotation, face.head_pose.rotation, atol=1e-9)
        np.testing.assert_allclose(back.head_pose.translation, face.head_pose.translation)
        np.testing.assert_allclose(back.gaze.combined.direction, face.gaze.combined.direction)
        assert back.expression.names == face.expression.names
        np.testing.assert_array_equal(back.expression.values, face.expression.values)


def test_face3d_carries_the_track_id_only():
    """Who a face is travels on the people node's own message: Face3D has no name and no
    person-id range, and its id is the track id both ways."""
    fields = Face3D.get_fields_and_field_types()
    assert "name" not in fields and not hasattr(Face3D, "PERSON_ID_BASE")
    frame = two_face_frame()
    msg = frame_to_msg(frame, _header())
    assert [f.id for f in msg.faces] == [f.track_id for f in frame.faces]
    assert [face_from_msg(f).track_id for f in msg.faces] == [f.track_id for f in frame.faces]


def test_empty_frame_and_bad_landmarks():
    msg = frame_to_msg(make_frame([]), _header())
    assert len(msg.faces) == 0 and msg.image_width == 640
    frame = two_face_frame()
    face = frame.faces[0]
    bad = type(face)(**{**face.__dict__, "landmarks_3d": face.landmarks_3d[:468]})
    with pytest.raises(ValueError, match="478"):
        frame_to_msg(make_frame([bad]), _header())


def test_gaze_pose_array_points_x_along_the_combined_gaze():
    frame = two_face_frame()
    msg = gaze_pose_array(frame, _header())
    assert msg.header.frame_id == "cam_optical" and len(msg.poses) == 2
    for pose, face in zip(msg.poses, frame.faces):
        ray = face.gaze.combined
        np.testing.assert_allclose([pose.position.x, pose.position.y, pose.position.z],
                                   ray.origin)
        q = [pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w]
        np.testing.assert_allclose(Rotation.from_quat(q).apply([1.0, 0.0, 0.0]), ray.direction,
                                   atol=1e-9)


def test_quaternion_x_to_any_direction():
    rng = np.random.default_rng(0)
    for d in list(rng.normal(size=(20, 3))) + [np.array([-1.0, 0, 0]), np.array([1.0, 0, 0])]:
        q = quaternion_x_to(3.0 * d)
        assert np.linalg.norm(q) == pytest.approx(1.0)
        np.testing.assert_allclose(Rotation.from_quat(q).apply([1.0, 0, 0]),
                                   d / np.linalg.norm(d), atol=1e-9)
    np.testing.assert_array_equal(quaternion_x_to([0.0, 0.0, 0.0]), [0, 0, 0, 1])


def test_topology_to_msg():
    tri = np.array([[0, 1, 2], [2, 1, 3]], dtype=np.int32)
    uv = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], dtype=np.float32)
    msg = topology_to_msg(tri, uv)
    assert msg.num_vertices == 4
    assert list(msg.triangles) == [0, 1, 2, 2, 1, 3]
    assert list(msg.uv) == [0, 0, 1, 0, 0, 1, 1, 1]
    with pytest.raises(ValueError, match="indices"):
        topology_to_msg(tri + 2, uv)


def test_header_seconds():
    assert header_seconds(_header()) == pytest.approx(1700000000.123456789)
