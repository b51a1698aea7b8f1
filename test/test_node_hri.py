"""The ROS4HRI (REP-155) and TF outputs of the installed node over real DDS, with real photos.

With hri_msgs and tf2_msgs importable (a system ROS 2 install, or both built into an overlay):
a REP-155 client sees ``/humans/faces/tracked`` with one id for the one person in the photo,
that face's roi, landmarks, facs, cropped and aligned, and ``face_<id>`` / ``gaze_<id>`` on
``/tf`` that agree with the Face3D message of the same frame; the face's topics go when the
face does. Without hri_msgs (the PyPI wheels): the node with ``hri:=true`` logs one clear line
and keeps publishing its own outputs.
"""

import array
import os
import re
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from conftest import module_available

pytest.importorskip("rclpy", reason="run scripts/setup.sh, then source scripts/env.sh")
import rclpy  # noqa: E402
from builtin_interfaces.msg import Time  # noqa: E402
from face3d_msgs.msg import Face3DArray  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402

from face3d_ros.core.pipeline.geometry import LEFT_IRIS_CENTER, RIGHT_IRIS_CENTER  # noqa: E402
from face3d_ros.tools.node_process import stop_node  # noqa: E402
from dds_client import node_command  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
CAM = "/hri_cam"
FRAME = "hri_cam_optical_frame"
HAVE_HRI = module_available("hri_msgs") and module_available("tf2_msgs")
ENV = dict(os.environ, PYTHONUNBUFFERED="1", RCUTILS_COLORIZED_OUTPUT="0",
           RCUTILS_LOGGING_BUFFERED_STREAM="0")


def start_node(log_path: Path, ns: str) -> subprocess.Popen:
    cmd = node_command() + [
        "--ros-args", "--params-file", str(REPO / "config" / "face3d.yaml"),
        "-r", f"__ns:={ns}", "-r", f"image:={CAM}/image_raw",
        "-r", f"camera_info:={CAM}/camera_info", "-p", "device:=cpu",
        "-p", "input_reliability:=reliable", "-p", "hri:=true", "-p", "publish_tf:=true"]
    with open(log_path, "wb") as log:
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=ENV)


def key(header):
    return (header.stamp.sec, header.stamp.nanosec)


class Camera:
    """Publishes photos with their camera_info; collects ``faces`` and whatever else is
    subscribed through :meth:`collect`."""

    def __init__(self, ctx, ns: str) -> None:
        self.node = rclpy.create_node("face3d_hri_client", context=ctx)
        self.executor = SingleThreadedExecutor(context=ctx)
        self.executor.add_node(self.node)
        self.qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        self.image_pub = self.node.create_publisher(Image, f"{CAM}/image_raw", self.qos)
        self.info_pub = self.node.create_publisher(CameraInfo, f"{CAM}/camera_info", self.qos)
        self.faces = self.collect(Face3DArray, f"{ns}/faces")
        self.sec = 100

    def collect(self, msg_type, topic: str, qos=None) -> list:
        out: list = []
        self.node.create_subscription(msg_type, topic, out.append, qos or self.qos)
        return out

    def spin_until(self, done, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while not done() and time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.02)
        return bool(done())

    def answer(self, rgb: np.ndarray, timeout_s: float = 60.0) -> Face3DArray:
        """Publish ``rgb`` (with its camera_info) until the node answers it; the answer."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.sec += 1
            stamp = Time(sec=self.sec, nanosec=0)
            h, w = rgb.shape[:2]
            info = CameraInfo(width=w, height=h,
                              k=[0.9 * w, 0.0, w / 2, 0.0, 0.9 * w, h / 2, 0.0, 0.0, 1.0])
            info.header.stamp, info.header.frame_id = stamp, FRAME
            img = Image(width=w, height=h, encoding="rgb8", step=3 * w)
            img.header = info.header
            img.data = array.array("B", np.ascontiguousarray(rgb).tobytes())
            self.info_pub.publish(info)
            self.image_pub.publish(img)
            k = (stamp.sec, stamp.nanosec)
            if self.spin_until(lambda: any(key(m.header) == k for m in self.faces), 15.0):
                return next(m for m in self.faces if key(m.header) == k)
        raise AssertionError("the node answered no image")

    def wait_matched(self, proc) -> None:
        up = self.spin_until(lambda: (self.image_pub.get_subscription_count() > 0
                                      and self.info_pub.get_subscription_count() > 0)
                             or proc.poll() is not None, 120.0)
        assert up and proc.poll() is None, "face3d_node did not come up"

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()


@pytest.fixture
def camera_and_node(tmp_path, request):
    ns = request.param
    log = tmp_path / "node.log"
    proc = start_node(log, ns)
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    cam = Camera(ctx, ns)
    try:
        cam.wait_matched(proc)
        yield cam, proc, log
    finally:
        cam.close()
        ctx.try_shutdown()
        stop_node(proc)


@pytest.mark.skipif(HAVE_HRI, reason="hri_msgs and tf2_msgs are installed: the full test runs")
@pytest.mark.parametrize("camera_and_node", ["/hri_off"], indirect=True)
def test_without_hri_msgs_one_clear_line_and_own_outputs(camera_and_node, astronaut_rgb):
    cam, proc, log = camera_and_node
    for _ in range(3):
        assert len(cam.answer(astronaut_rgb).faces) == 1
    text = log.read_text(errors="replace")
    lines = [ln for ln in text.splitlines() if "ROS4HRI output is unavailable" in ln]
    assert len(lines) == 1 and "hri_msgs is not installed" in lines[0], text[-2000:]
    assert "Traceback" not in text and proc.poll() is None


@pytest.mark.skipif(not HAVE_HRI, reason="hri_msgs and tf2_msgs are not installed (a system "
                    "ROS 2 has them: apt install ros-$ROS_DISTRO-hri-msgs "
                    "ros-$ROS_DISTRO-tf2-msgs)")
@pytest.mark.parametrize("camera_and_node", ["/hri_on"], indirect=True)
def test_rep155_topics_and_tf_agree_with_faces(camera_and_node, astronaut_rgb, chelsea_rgb):
    from hri_msgs.msg import FacialActionUnits, FacialLandmarks, IdsList
    from hri_msgs.msg import NormalizedRegionOfInterest2D as Roi
    from tf2_msgs.msg import TFMessage

    cam, proc, log = camera_and_node
    tracked = cam.collect(IdsList, "/humans/faces/tracked")
    tf = cam.collect(TFMessage, "/tf", QoSProfile(depth=100,
                                                  reliability=ReliabilityPolicy.RELIABLE))
    answers = [cam.answer(astronaut_rgb) for _ in range(3)]  # min_hits: confirmed by then
    face = answers[-1].faces[0]
    fid = f"f{face.id:05d}"
    per_face = {name: cam.collect(t, f"/humans/faces/{fid}/{name}")
                for name, t in (("roi", Roi), ("landmarks", FacialLandmarks),
                                ("facs", FacialActionUnits), ("cropped", Image),
                                ("aligned", Image))}
    assert cam.spin_until(lambda: all(cam.node.count_publishers(f"/humans/faces/{fid}/{n}")
                                      for n in per_face), 10.0)
    cam.spin_until(lambda: False, 0.5)  # the new subscriptions match
    msgs = [cam.answer(astronaut_rgb) for _ in range(3)]
    k = key(msgs[-1].header)
    face = msgs[-1].faces[0]
    assert fid == f"f{face.id:05d}"

    def of_frame(lst):
        return [m for m in lst if key(m.header) == k]

    got = lambda: all(of_frame(per_face[n]) for n in per_face) and of_frame(tracked)  # noqa
    assert cam.spin_until(got, 10.0), {n: len(v) for n, v in per_face.items()}
    assert of_frame(tracked)[-1].ids == [fid]
    assert of_frame(tracked)[-1].header.frame_id == FRAME
    w, h = msgs[-1].image_width, msgs[-1].image_height
    roi = of_frame(per_face["roi"])[-1]
    np.testing.assert_allclose([roi.xmin, roi.ymin, roi.xmax, roi.ymax],
                               [face.x_min / w, face.y_min / h, face.x_max / w,
                                face.y_max / h], atol=1e-6)
    assert 0.0 < roi.c <= 1.0
    lm = of_frame(per_face["landmarks"])[-1]
    assert (lm.width, lm.height, len(lm.landmarks)) == (w, h, 70)
    pts2d = np.asarray(face.landmarks_2d, np.float32).reshape(-1, 3)
    for idx, mesh in ((68, RIGHT_IRIS_CENTER), (69, LEFT_IRIS_CENTER)):
        p = lm.landmarks[idx]
        assert (p.x, p.y) == pytest.approx((pts2d[mesh, 0] / w, pts2d[mesh, 1] / h),
                                           abs=1e-6)
    assert lm.landmarks[68].x < lm.landmarks[69].x  # the person's right pupil: image left
    facs = of_frame(per_face["facs"])[-1]
    expr = dict(zip(face.expression_names, face.expression_values))
    assert facs.intensity[26] == pytest.approx(expr["jaw_open"], abs=1e-6)
    for name in ("cropped", "aligned"):
        img = of_frame(per_face[name])[-1]
        assert (img.width, img.height, img.encoding) == (128, 128, "rgb8")

    # TF: face_<id> is the head pose, gaze_<id> (a child of it) has z along the gaze.
    def transforms():
        return {t.child_frame_id: t for m in tf for t in m.transforms
                if key(t.header) == k}
    assert cam.spin_until(lambda: {f"face_{fid}", f"gaze_{fid}"} <= set(transforms()), 10.0)
    tfs = transforms()
    tface, tgaze = tfs[f"face_{fid}"], tfs[f"gaze_{fid}"]
    assert tface.header.frame_id == FRAME and tgaze.header.frame_id == f"face_{fid}"
    pose = face.head_pose.pose
    tr = tface.transform.translation
    assert (tr.x, tr.y, tr.z) == pytest.approx((pose.position.x, pose.position.y,
                                                pose.position.z), abs=1e-9)
    quat = lambda q: Rotation.from_quat([q.x, q.y, q.z, q.w]).as_matrix()  # noqa: E731
    cam_r_face = quat(tface.transform.rotation)
    np.testing.assert_allclose(cam_r_face, quat(pose.orientation), atol=1e-4)
    cam_r_gaze = cam_r_face @ quat(tgaze.transform.rotation)
    g = face.gaze_combined
    want = ([g.direction.x, g.direction.y, g.direction.z] if g.confidence > 0
            else cam_r_face[:, 0])
    np.testing.assert_allclose(cam_r_gaze[:, 2], want, atol=1e-4)
    print(f"\n{fid}: roi ({roi.xmin:.3f}, {roi.ymin:.3f}, {roi.xmax:.3f}, {roi.ymax:.3f}) "
          f"c {roi.c:.2f}; face_{fid} at ({tr.x:.3f}, {tr.y:.3f}, {tr.z:.3f}) m; gaze z "
          f"{np.round(cam_r_gaze[:, 2], 3).tolist()}; facs AU26 {facs.intensity[26]:.2f}, "
          f"AU45 {facs.intensity[45]:.2f}")

    # The face leaves: an empty list, and its topics are gone.
    for _ in range(10):
        cam.answer(chelsea_rgb)
    assert cam.spin_until(lambda: tracked[-1].ids == [], 10.0)
    assert cam.spin_until(
        lambda: cam.node.count_publishers(f"/humans/faces/{fid}/roi") == 0, 10.0)
    text = log.read_text(errors="replace")
    assert not re.search("Traceback|ERROR", text), text[-3000:]
    assert proc.poll() is None
