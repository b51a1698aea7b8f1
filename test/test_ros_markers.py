"""RViz marker building (face3d_ros.ros.markers): counts, ids, deletes, geometry, headers."""

import numpy as np
import pytest
from scipy.spatial import Delaunay

pytest.importorskip("rclpy", reason="run scripts/setup.sh, then source scripts/env.sh")
from builtin_interfaces.msg import Time  # noqa: E402
from std_msgs.msg import Header  # noqa: E402
from visualization_msgs.msg import Marker  # noqa: E402

from face3d_ros.core.pipeline.canonical import load_canonical  # noqa: E402
from face3d_ros.core.types import NUM_MESH  # noqa: E402
from face3d_ros.ros.markers import (  # noqa: E402
    NAMESPACES, NS_AXES, NS_GAZE, NS_LABEL, NS_LANDMARKS, NS_MESH, UNTRACKED_ID_BASE,
    MarkerBuilder, MarkerOptions, count_by_namespace)
from ros_frames import make_face, make_frame, two_face_frame  # noqa: E402


@pytest.fixture(scope="module")
def triangles() -> np.ndarray:
    """A triangulation of the 468 mesh vertices (Delaunay of the canonical UVs)."""
    return Delaunay(load_canonical().uv[:NUM_MESH]).simplices.astype(np.int32)


def _header(sec: int = 42) -> Header:
    return Header(stamp=Time(sec=sec, nanosec=5), frame_id="cam_optical")


def _by_key(markers):
    return {(m.ns, m.id): m for m in markers}


def test_counts_ids_and_headers(triangles):
    frame = two_face_frame()
    builder = MarkerBuilder(MarkerOptions(lifetime_s=0.75), triangles)
    msg = builder.build(frame, _header())
    counts = count_by_namespace(msg.markers)
    assert counts == {ns: 2 for ns in NAMESPACES}
    keys = {(m.ns, m.id) for m in msg.markers}
    assert len(keys) == len(msg.markers), "every (ns, id) is unique"
    assert {m.id for m in msg.markers} == {3, UNTRACKED_ID_BASE + 1}
    for m in msg.markers:
        assert m.header.frame_id == "cam_optical"
        assert (m.header.stamp.sec, m.header.stamp.nanosec) == (42, 5)
        assert m.action == Marker.ADD
        assert (m.lifetime.sec, m.lifetime.nanosec) == (0, 750_000_000)
    assert builder.drawn_ids == {3, UNTRACKED_ID_BASE + 1}


def test_geometry_of_each_marker(triangles):
    frame = two_face_frame()
    msg = MarkerBuilder(MarkerOptions(gaze_length_m=0.3, axes_length_m=0.1),
                        triangles).build(frame, _header())
    m = _by_key(msg.markers)
    face = frame.faces[0]
    mesh = m[(NS_MESH, 3)]
    assert mesh.type == Marker.TRIANGLE_LIST
    pts = np.array([[p.x, p.y, p.z] for p in mesh.points])
    np.testing.assert_allclose(pts, face.landmarks_3d[triangles.reshape(-1)], rtol=1e-6)
    assert len(mesh.colors) == len(mesh.points) == 3 * len(triangles)
    lms = m[(NS_LANDMARKS, 3)]
    assert lms.type == Marker.POINTS and len(lms.points) == 478
    np.testing.assert_allclose([[p.x, p.y, p.z] for p in lms.points], face.landmarks_3d,
                               rtol=1e-6)
    for ns, ray in zip(NS_GAZE, (face.gaze.left, face.gaze.right, face.gaze.combined)):
        arrow = m[(ns, 3)]
        assert arrow.type == Marker.ARROW and len(arrow.points) == 2
        a, b = (np.array([p.x, p.y, p.z]) for p in arrow.points)
        np.testing.assert_allclose(a, ray.origin)
        np.testing.assert_allclose(b, ray.origin + 0.3 * ray.direction)
    axes = m[(NS_AXES, 3)]
    assert axes.type == Marker.LINE_LIST and len(axes.points) == 6
    ends = np.array([[p.x, p.y, p.z] for p in axes.points])[1::2]
    np.testing.assert_allclose(ends, face.head_pose.translation + 0.1 * face.head_pose.rotation.T)
    label = m[(NS_LABEL, 3)]
    assert label.type == Marker.TEXT_VIEW_FACING and label.text == "id 3"
    assert m[(NS_LABEL, UNTRACKED_ID_BASE + 1)].text == "untracked"
    # Label above the head: camera y points down, so "up" has a smaller y.
    assert label.pose.position.y < face.head_pose.translation[1] - 0.1


def test_ids_stable_and_vanished_faces_deleted(triangles):
    builder = MarkerBuilder(MarkerOptions(), triangles)
    a = make_face(3, 10.0, (0.0, 0.0, 0.7), seed=1)
    b = make_face(5, -10.0, (0.2, 0.0, 0.9), seed=2)
    first = builder.build(make_frame([a, b]), _header(1))
    second = builder.build(make_frame([b, a]), _header(2))
    assert {(x.ns, x.id) for x in first.markers} == {(x.ns, x.id) for x in second.markers}
    assert all(x.action == Marker.ADD for x in second.markers)

    third = builder.build(make_frame([b]), _header(3))
    deletes = [x for x in third.markers if x.action == Marker.DELETE]
    assert {(x.ns, x.id) for x in deletes} == {(ns, 3) for ns in NAMESPACES}
    assert all(x.header.stamp.sec == 3 for x in deletes)
    assert {x.id for x in third.markers if x.action == Marker.ADD} == {5}
    # Deletes come before the adds of the same message.
    assert third.markers.index(deletes[-1]) < len(deletes)

    fourth = builder.build(make_frame([b]), _header(4))
    assert all(x.action == Marker.ADD for x in fourth.markers), "deleted only once"

    cleared = builder.clear(_header(5))
    assert {(x.ns, x.id) for x in cleared.markers} == {(ns, 5) for ns in NAMESPACES}
    assert builder.drawn_ids == set()


def test_options_and_missing_topology():
    frame = two_face_frame()
    msg = MarkerBuilder(MarkerOptions(landmarks=False, labels=False), None).build(
        frame, _header())
    counts = count_by_namespace(msg.markers)
    assert NS_MESH not in counts and NS_LANDMARKS not in counts and NS_LABEL not in counts
    assert counts[NS_AXES] == 2 and all(counts[ns] == 2 for ns in NS_GAZE)
    empty = MarkerBuilder(MarkerOptions(), None).build(make_frame([]), _header())
    assert len(empty.markers) == 0


def test_mesh_colours_shaded_by_depth(triangles):
    frame = two_face_frame()
    msg = MarkerBuilder(MarkerOptions(), triangles).build(frame, _header())
    mesh = _by_key(msg.markers)[(NS_MESH, 3)]
    rgb = np.array([[c.r, c.g, c.b] for c in mesh.colors])
    z = frame.faces[0].landmarks_3d[triangles.reshape(-1), 2]
    base = np.array([mesh.color.r, mesh.color.g, mesh.color.b])
    shade = rgb / base  # one factor per vertex, the same for r, g and b
    np.testing.assert_allclose(shade, shade[:, :1].repeat(3, axis=1), rtol=1e-5)
    assert shade[np.argmin(z), 0] == pytest.approx(1.0, abs=1e-6)  # nearest: full colour
    assert shade[np.argmax(z), 0] == pytest.approx(0.4, abs=1e-6)  # farthest: 40 %
    assert np.corrcoef(z, shade[:, 0])[0, 1] < -0.95


def _decoded(data: bytes):
    from rclpy.serialization import deserialize_message
    from visualization_msgs.msg import MarkerArray
    return deserialize_message(data, MarkerArray)


def test_serialized_markers_decode_to_the_same_messages(triangles):
    """build_serialized (numpy data spliced into rclpy's CDR, markers reused frame to frame)
    == build (new plain messages), over frames with faces appearing, vanishing (deletes) and
    changing slots, and two frame_id lengths; the node's plain fallback with reused markers
    too."""
    from rclpy.serialization import serialize_message

    from face3d_ros.ros.marker_cdr import to_marker_array
    fast = MarkerBuilder(MarkerOptions(), triangles)
    slow = MarkerBuilder(MarkerOptions(), triangles)
    plain = MarkerBuilder(MarkerOptions(), triangles)
    a = make_face(3, 10.0, (0.0, 0.0, 0.7), seed=1)
    b = make_face(5, -10.0, (0.2, 0.0, 0.9), seed=2)
    for k, faces in enumerate(([a, b], [b], [], [a], [a, b])):
        for frame_id in ("cam", "camera_optical_frame"):
            header = Header(stamp=Time(sec=k, nanosec=7), frame_id=frame_id)
            data = fast.build_serialized(make_frame(faces), header)
            ref = slow.build(make_frame(faces), header)
            assert isinstance(data, bytes)
            got = _decoded(data)
            assert got == _decoded(serialize_message(ref))
            assert len(got.markers) == len(ref.markers)
            reused = to_marker_array(plain.parts(make_frame(faces), header, reuse=True))
            # (Compared decoded: CDR padding bytes are not guaranteed to be zero.)
            assert _decoded(serialize_message(reused)) == _decoded(serialize_message(ref))


def test_marker_cdr_self_check_and_a_corrupted_point():
    from face3d_ros.ros import marker_cdr
    marker_cdr._LAYOUTS.clear()
    assert marker_cdr.self_check() == (True, "ok")
    assert {key[0] for key in marker_cdr._LAYOUTS} == {0, 4}, "both start offsets checked"
    frame = two_face_frame()
    builder = MarkerBuilder(MarkerOptions(), None)
    data = bytearray(builder.build_serialized(frame, _header()))
    good = _decoded(bytes(data))
    lms = next(m for m in good.markers if m.ns == NS_LANDMARKS)
    x0 = np.float64(lms.points[0].x).tobytes()
    at = bytes(data).find(x0)
    assert at > 0
    data[at + 7] ^= 0x40  # flip a bit of the first landmark's x
    bad = _decoded(bytes(data))
    assert bad != good
    assert next(m for m in bad.markers if m.ns == NS_LANDMARKS).points[0].x != lms.points[0].x


def test_marker_cdr_self_check_reports_an_unexpected_layout(monkeypatch):
    from face3d_ros.ros import marker_cdr

    def unexpected(*_args):
        raise RuntimeError("unexpected CDR layout of visualization_msgs/Marker")

    monkeypatch.setattr(marker_cdr, "_layout", unexpected)
    ok, why = marker_cdr.self_check()
    assert ok is False and "unexpected CDR layout" in why


def test_marker_cdr_templates_and_markers_with_their_own_arrays():
    """Markers of one layout after the first are written from its template; a marker that
    arrives with points and colours of its own (ignored when arrays are given) and one that
    sets a field no template holds still decode to rclpy's serialization of the same markers;
    a template patched wrongly would not."""
    from geometry_msgs.msg import Point
    from rclpy.serialization import serialize_message
    from std_msgs.msg import ColorRGBA

    from face3d_ros.ros import marker_cdr
    from face3d_ros.ros.marker_cdr import MarkerPart, encode_marker_array, to_marker_array

    marker_cdr._LAYOUTS.clear()
    marker_cdr._TEMPLATES.clear()
    rng = np.random.default_rng(3)

    def parts():
        out = []
        for k in range(3):
            m = Marker()
            m.header.frame_id, m.header.stamp.sec = "tpl_frame", 10 + k
            m.ns, m.id, m.type = "tpl", k, Marker.POINTS
            m.pose.position.x, m.scale.x, m.color.g = 0.1 * k, 0.01 * (k + 1), 0.5
            m.lifetime.nanosec = 1000 * k
            if k == 1:  # arrays of its own, replaced by the part's
                m.points = [Point(x=9.0, y=9.0, z=9.0)] * 3
                m.colors = [ColorRGBA(r=1.0, a=1.0)] * 3
            if k == 2:
                m.mesh_use_embedded_materials = True  # a field no template holds
            out.append(MarkerPart(m, rng.normal(size=(4 + k, 3)),
                                  rng.random((4 + k, 4)).astype(np.float32)))
        return out

    fast = _decoded(encode_marker_array(parts()))
    rng = np.random.default_rng(3)
    slow = _decoded(serialize_message(to_marker_array(parts())))
    assert fast == slow
    assert len(marker_cdr._TEMPLATES) == 1  # one layout, its template reused
    assert fast.markers[2].mesh_use_embedded_materials
    template = next(iter(marker_cdr._TEMPLATES.values()))
    template.runs = template.runs[1:]  # a template that forgets the stamp
    rng = np.random.default_rng(3)
    assert _decoded(encode_marker_array(parts())) != slow
    marker_cdr._TEMPLATES.clear()
