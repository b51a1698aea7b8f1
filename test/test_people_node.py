"""The people node as a user runs it, beside the perception node, over real DDS.

A module fixture starts ``face3d_node`` (namespace ``/pp``, camera ``/pp_cam``); each test
starts its own ``face3d_people`` (same namespace, ``image`` remapped to the camera) with an
``enrollment_dir`` of its own. This process publishes real photos with camera_info, and talks
to the people node as a client would: the ``~/enroll_face`` action (goal, feedback, result,
cancel), the ``people`` topic and the latched ``enrolled_faces`` gallery.
"""

import array
import re
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="run scripts/setup.sh, then source scripts/env.sh")
from action_msgs.msg import GoalStatus  # noqa: E402
from builtin_interfaces.msg import Time  # noqa: E402
from face3d_msgs.action import EnrollFace  # noqa: E402
from face3d_msgs.msg import RecognisedPeople  # noqa: E402
from rclpy.action import ActionClient  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CompressedImage  # noqa: E402
from visualization_msgs.msg import Marker, MarkerArray  # noqa: E402

from face3d_ros.core.people.model_io import load_model, save_model  # noqa: E402
from face3d_ros.tools.node_process import stop_node  # noqa: E402
from dds_client import (PARAMS_FILE, CameraClient, log_lines, node_command,  # noqa: E402
                        people_command, serving_client, stamp_key, start_process)

pytestmark = [pytest.mark.ros, pytest.mark.slow]

NS = "/pp"
CAM = "/pp_cam"
FRAME_ID = "pp_optical_frame"


def start_people(log_path: Path, enrollment_dir: Path, *extra: str) -> subprocess.Popen:
    """``face3d_people`` with the shipped params file in ``/pp``, images from the camera."""
    return start_process(people_command() + [
        "--ros-args", "--params-file", str(PARAMS_FILE),
        "-r", f"__ns:={NS}", "-r", f"image:={CAM}/image_raw",
        "-p", "input_reliability:=reliable", "-p", f"enrollment_dir:={enrollment_dir}",
        *extra], log_path)


#: Seconds to let DDS discovery settle both ways before the first goal of an action client.
DISCOVERY_SETTLE_S = 1.0


class Client(CameraClient):
    """Camera publishers (and PNGs); subscribers of faces, people and the gallery; the action
    client."""

    def __init__(self, ctx) -> None:
        super().__init__(ctx, "face3d_pp_client", CAM, f"{NS}/faces", FRAME_ID,
                         first_sec=7000, nanosec=250)
        self.png_pub = self.node.create_publisher(CompressedImage, f"{CAM}/image_raw/compressed",
                                                  self.reliable)
        self.png = {}  # id(rgb) -> PNG bytes, published beside every image while set
        self.send_png = False
        self.people, self.gallery = {}, []
        self.node.create_subscription(
            RecognisedPeople, f"{NS}/people",
            lambda m: self.people.__setitem__(stamp_key(m.header), m), self.reliable)
        self.gallery_sub = None
        self.action = ActionClient(self.node, EnrollFace, f"{NS}/face3d_people/enroll_face")

    def watch_gallery(self) -> None:
        """(Re)subscribe to the latched gallery (a new people node latches a new one)."""
        if self.gallery_sub is not None:
            self.node.destroy_subscription(self.gallery_sub)
        self.gallery = []
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.gallery_sub = self.node.create_subscription(
            MarkerArray, f"{NS}/enrolled_faces", self.gallery.append, latched)

    def send(self, rgb, **kwargs) -> tuple:
        """The frame and its camera_info, and its PNG while ``send_png`` is set."""
        key = super().send(rgb, **kwargs)
        if self.send_png:
            import cv2

            if id(rgb) not in self.png:
                self.png[id(rgb)] = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1]
            png = CompressedImage(format="png")
            png.header.stamp, png.header.frame_id = Time(sec=key[0], nanosec=key[1]), FRAME_ID
            png.data = array.array("B", self.png[id(rgb)].tobytes())
            self.png_pub.publish(png)
        return key

    def answer(self, rgb, people: bool = True, timeout_s: float = 60.0):
        """Send ``rgb`` until the perception node (and, with ``people``, the people node)
        answers its stamp: (faces, people or None)."""
        key = self.answer_key(rgb, timeout_s, lambda k: k in self.faces
                              and (not people or k in self.people))
        return self.faces[key], self.people.get(key)

    def send_goal(self, goal, feedback=None):
        """The goal handle of ``goal`` (accepted or not)."""
        assert self.action.wait_for_server(timeout_sec=30.0), "no enroll_face action server"
        # wait_for_server sees the server's topics; the server may not see this client's
        # response reader yet, and then drops the goal response ("failed to send response
        # (timeout)" in its log): let discovery settle both ways first.
        self.spin_until(lambda: False, DISCOVERY_SETTLE_S)
        future = self.action.send_goal_async(goal, feedback_callback=feedback)
        assert self.spin_until(future.done, 30.0), "the goal got no answer"
        return future.result()

    def run_goal(self, goal, rgb, timeout_s: float = 120.0):
        """Send ``goal`` and images of ``rgb`` until its result: (status, result, feedback)."""
        feedback = []
        handle = self.send_goal(goal, lambda m: feedback.append(m.feedback))
        assert handle.accepted, "the goal was rejected"
        future = handle.get_result_async()
        deadline = time.monotonic() + timeout_s
        while not future.done() and time.monotonic() < deadline:
            self.send(rgb)
            self.spin_until(future.done, 0.3)
        assert future.done(), "enroll_face did not end"
        return future.result().status, future.result().result, feedback

    def close(self) -> None:
        self.action.destroy()
        super().close()


@pytest.fixture(scope="module")
def perception(tmp_path_factory):
    log = tmp_path_factory.mktemp("pp_node") / "node.log"
    proc = start_process(node_command() + [
        "--ros-args", "--params-file", str(PARAMS_FILE),
        "-r", f"__ns:={NS}", "-r", f"image:={CAM}/image_raw",
        "-r", f"camera_info:={CAM}/camera_info", "-p", "device:=cpu",
        "-p", "input_reliability:=reliable"], log)
    try:
        yield proc, log
    finally:
        stop_node(proc)


@pytest.fixture(scope="module")
def client(perception, astronaut_rgb):
    proc, log = perception
    with serving_client(Client, proc, log, astronaut_rgb) as c:
        yield c


@pytest.fixture
def people_node(client, tmp_path):
    """Start a people node in ``/pp``: ``start(enrollment_dir, *extra)`` -> (process, log);
    every one started is stopped at the end, and must have exited 0."""
    started = []

    def run(enrollment_dir: Path, *extra: str):
        log = tmp_path / f"people_{len(started)}.log"
        proc = start_people(log, enrollment_dir, *extra)
        started.append((proc, log))
        client.watch_gallery()
        up = client.spin_until(lambda: bool(client.gallery) or proc.poll() is not None, 120.0)
        if not up or proc.poll() is not None:
            pytest.fail("face3d_people did not come up:\n" + log.read_text()[-3000:])
        assert client.spin_until(lambda: client.node.count_subscribers(f"{NS}/faces") >= 2,
                                 30.0)
        return proc, log

    yield run
    for proc, log in started:
        code = stop_node(proc)
        assert code == 0, f"face3d_people exited {code}:\n" + log.read_text()[-3000:]


def _gallery_labels(client) -> dict:
    adds = [m for m in client.gallery[-1].markers if m.action == Marker.ADD]
    return {m.id: m.text for m in adds if m.type == Marker.TEXT_VIEW_FACING}


def _recognised(client, rgb, tries: int = 8):
    """Send ``rgb`` a few times; the last (faces, people) answer."""
    return [client.answer(rgb) for _ in range(tries)][-1]


def test_enrol_over_dds_then_recognised_across_a_restart(client, people_node, astronaut_rgb,
                                                         grace_hopper_rgb, tmp_path):
    """The EnrollFace action end to end: feedback with guidance and views while frames flow;
    with only a front view before the timeout it still writes one model (person 1, named
    person1) and names the missing views; a bad goal is rejected with the reason logged. The
    person is then recognised on ``people``, and again by a new people node started on the
    same folder; Grace Hopper is not."""
    folder = tmp_path / "enrolled"
    proc, log = people_node(folder)
    assert _gallery_labels(client) == {}
    bad = client.send_goal(EnrollFace.Goal(face_id=-1, timeout_s=0.0))
    assert not bad.accepted
    assert client.spin_until(lambda: bool(log_lines(log, "Rejected an enroll_face goal")), 5.0)
    assert "timeout_s" in log_lines(log, "Rejected an enroll_face goal")[0]

    status, res, feedback = client.run_goal(EnrollFace.Goal(face_id=-1, timeout_s=6.0),
                                            astronaut_rgb)
    print(f"\nfeedback: {[(f.guidance, list(f.views_covered), f.face_id) for f in feedback]}")
    assert status == GoalStatus.STATUS_SUCCEEDED and res.success, res.message
    assert "left" in res.message and "right" in res.message  # the views it could not get
    assert list(res.view_names) == ["front"] and 0.5 < res.coverage <= 1.0
    assert res.person_id == 1 and Path(res.model_path) == folder / "person1.npz"
    assert sorted(p.name for p in folder.glob("*.npz")) == ["person1.npz"]
    assert (folder / "person1.obj").is_file()
    model = load_model(res.model_path)
    assert (model.name, model.face_id) == ("person1", 1)  # written once, final id and name
    assert feedback and all(f.guidance for f in feedback)
    assert any("front" in f.views_covered for f in feedback)
    assert feedback[-1].face_id >= 0  # the goal locked onto the tracked face
    assert client.spin_until(lambda: _gallery_labels(client) == {1: "person1 (id 1)"}, 10.0)

    faces, people = _recognised(client, astronaut_rgb)
    assert len(faces.faces) == 1 and people.header == faces.header
    assert [(p.face_id, p.person_id, p.name) for p in people.people] == [
        (faces.faces[0].id, 1, "person1")]
    assert 0.0 <= people.people[0].confidence <= 1.0 and people.people[0].shape_distance >= 0

    assert stop_node(proc) == 0
    proc, log = people_node(folder)  # a restart: the model is loaded from the folder
    assert _gallery_labels(client) == {1: "person1 (id 1)"}
    faces, people = _recognised(client, astronaut_rgb)
    assert [(p.face_id, p.person_id, p.name) for p in people.people] == [
        (faces.faces[0].id, 1, "person1")]
    faces, people = _recognised(client, grace_hopper_rgb, tries=5)
    assert len(faces.faces) == 1 and list(people.people) == []


def test_cancel_writes_nothing_and_a_second_goal_is_rejected(client, people_node,
                                                             astronaut_rgb, tmp_path):
    """One goal at a time: a second goal is rejected with the reason logged; cancelling the
    first ends it as canceled with nothing written; then a new goal is accepted."""
    folder = tmp_path / "enrolled"
    proc, log = people_node(folder)
    feedback = []
    first = client.send_goal(EnrollFace.Goal(face_id=-1, timeout_s=120.0),
                             lambda m: feedback.append(m.feedback))
    assert first.accepted
    for _ in range(4):
        client.answer(astronaut_rgb)
    assert client.spin_until(lambda: bool(feedback), 10.0), "no feedback while enrolling"
    second = client.send_goal(EnrollFace.Goal(face_id=-1, timeout_s=5.0))
    assert not second.accepted
    assert client.spin_until(lambda: bool(log_lines(log, "another enrolment is running")), 5.0)
    result = first.get_result_async()
    cancel = first.cancel_goal_async()
    assert client.spin_until(lambda: cancel.done() and result.done(), 30.0)
    assert result.result().status == GoalStatus.STATUS_CANCELED
    res = result.result().result
    assert not res.success and "cancelled" in res.message and "nothing was saved" in res.message
    assert not folder.exists() or list(folder.iterdir()) == []
    third = client.send_goal(EnrollFace.Goal(face_id=-1, timeout_s=60.0))
    assert third.accepted, "a goal after the cancelled one was rejected"
    cancel = third.cancel_goal_async()
    assert client.spin_until(cancel.done, 30.0)
    assert proc.poll() is None


def test_re_enrolling_a_known_person_replaces_their_file(client, people_node, model_dir,
                                                         astronaut_rgb, tmp_path):
    """The astronaut is enrolled already (file eileen_2024.npz, person 3, named eileen): a new
    enrolment of her keeps her id and name and is written over her file, once; no second file
    of her appears."""
    from face3d_ros.core.people import enrollment as E
    from face3d_ros.core.config import EngineConfig
    from face3d_ros.core.pipeline.engine import FaceEngine
    from face3d_ros.core.pipeline.tracking import FaceTracker

    engine = FaceEngine(EngineConfig(device="cpu", model_dir=str(model_dir)))
    tracker = FaceTracker(engine)
    face = [tracker.process(astronaut_rgb, None, 0.1 * i).faces for i in range(8)][-1][0]
    folder = tmp_path / "enrolled"
    old = save_model(folder / "eileen_2024.npz",
                     E.enroll([E.EnrollmentView("front", astronaut_rgb, face)], name="eileen",
                              face_id=3, texture_size=128).model)
    before = old.stat().st_mtime_ns
    people_node(folder)
    assert _gallery_labels(client) == {3: "eileen (id 3)"}
    status, res, _ = client.run_goal(EnrollFace.Goal(face_id=-1, timeout_s=6.0), astronaut_rgb)
    assert status == GoalStatus.STATUS_SUCCEEDED and res.success, res.message
    assert res.person_id == 3 and Path(res.model_path) == old
    assert sorted(p.name for p in folder.glob("*.npz")) == ["eileen_2024.npz"]
    assert old.stat().st_mtime_ns != before
    model = load_model(old)
    assert (model.name, model.face_id) == ("eileen", 3)
    assert model.texture.shape[0] != 128  # the new model (the node's texture size)
    assert (folder / "eileen_2024.obj").is_file()
    assert client.spin_until(lambda: _gallery_labels(client) == {3: "eileen (id 3)"}, 10.0)


def test_enrolled_person_recognised_and_gallery_latched(client, people_node, model_dir,
                                                        astronaut_rgb, grace_hopper_rgb,
                                                        tmp_path):
    """A people node starts with enrollment_dir holding a model enrolled from the astronaut
    (person 3, two views) and a damaged file: it warns once about the file, latches the gallery
    on enrolled_faces (textured mesh and label), and publishes the astronaut on ``people`` as
    person 3, eileen, once her track has enough frames; Hopper is not listed."""
    from face3d_ros.core.people import enrollment as E
    from face3d_ros.core.config import EngineConfig
    from face3d_ros.core.pipeline.engine import FaceEngine
    from face3d_ros.core.pipeline.tracking import FaceTracker

    # Views as the EnrollFace action collects them: faces the tracker settled on.
    engine = FaceEngine(EngineConfig(device="cpu", model_dir=str(model_dir)))
    views = []
    for name, image in (("front", astronaut_rgb),
                        ("mirrored", np.ascontiguousarray(astronaut_rgb[:, ::-1]))):
        tracker = FaceTracker(engine)
        faces = [tracker.process(image, None, 0.1 * i).faces for i in range(8)][-1]
        views.append(E.EnrollmentView(name, image, faces[0]))
    folder = tmp_path / "enrolled"
    save_model(folder / "eileen.npz", E.enroll(views, name="eileen", face_id=3).model)
    (folder / "broken.npz").write_bytes(b"not a model")
    proc, log = people_node(folder)

    adds = [m for m in client.gallery[-1].markers if m.action == Marker.ADD]
    assert {(m.ns, m.id) for m in adds} == {("enrolled_mesh", 3), ("enrolled_label", 3)}
    mesh = next(m for m in adds if m.type == Marker.TRIANGLE_LIST)
    assert mesh.header.frame_id == "face3d_enrolled"
    assert len(mesh.points) == len(mesh.colors) > 3 * 800 and len(mesh.points) % 3 == 0
    skin = np.array([[c.r, c.g, c.b] for c in mesh.colors]).mean(0)
    assert skin[0] > skin[2] and 0.2 < skin.mean() < 0.9, f"mean colour {skin}"
    label = next(m for m in adds if m.type == Marker.TEXT_VIEW_FACING)
    assert label.text == "eileen (id 3)"

    seen = [client.answer(astronaut_rgb) for _ in range(7)]
    print("\nastronaut recognised as: " + ", ".join(
        "/".join(f"{p.person_id}:{p.name}" for p in people.people) or "-"
        for _, people in seen))
    assert all(len(faces.faces) == 1 for faces, _ in seen)
    faces, people = seen[-1]
    assert [(p.face_id, p.person_id, p.name) for p in people.people] == [
        (faces.faces[0].id, 3, "eileen")]
    hopper_faces, hopper = [client.answer(grace_hopper_rgb) for _ in range(5)][-1]
    assert len(hopper_faces.faces) == 1 and list(hopper.people) == []
    warned = log_lines(log, "broken.npz")
    assert len(warned) == 1 and "WARN" in warned[0], warned
    assert log_lines(log, re.escape("eileen (id 3)"))


def test_no_faces_is_warned_about_with_the_topic(tmp_path):
    """A people node whose ``faces`` nobody publishes (the perception node in another
    namespace) says so, naming the topic, instead of staying silent."""
    log = tmp_path / "alone.log"
    proc = start_process(people_command() + [
        "--ros-args", "--params-file", str(PARAMS_FILE),
        "-r", "__ns:=/pp_alone", "-p", f"enrollment_dir:={tmp_path / 'enrolled'}"], log)
    try:
        deadline = time.monotonic() + 60.0
        while (not log_lines(log, "No faces received") and proc.poll() is None
               and time.monotonic() < deadline):
            time.sleep(0.5)
        lines = log_lines(log, "No faces received")
        assert lines, log.read_text(errors="replace")[-3000:]
        assert "WARN" in lines[0] and "nobody publishes /pp_alone/faces" in lines[0]
    finally:
        assert stop_node(proc) == 0, log.read_text(errors="replace")[-3000:]


def test_enrol_from_compressed_images(client, people_node, astronaut_rgb, tmp_path):
    """With use_compressed the people node pairs the faces with ``image/compressed`` (PNG
    here, beside the raw images the perception node reads) and enrols from them."""
    folder = tmp_path / "enrolled"
    people_node(folder, "-p", "use_compressed:=true")
    client.send_png = True
    try:
        status, res, feedback = client.run_goal(EnrollFace.Goal(face_id=-1, timeout_s=6.0),
                                                astronaut_rgb)
    finally:
        client.send_png = False
    assert status == GoalStatus.STATUS_SUCCEEDED and res.success, res.message
    assert list(res.view_names) == ["front"] and feedback
    assert Path(res.model_path) == folder / "person1.npz" and Path(res.model_path).is_file()
