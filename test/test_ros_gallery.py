"""Enrolled people of the people node without spinning: model folder loading, person ids,
the re-identification of a frame's faces, the people message, the faces message read back as
a frame, and the gallery markers (ros/gallery.py)."""

import os

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="run scripts/setup.sh, then source scripts/env.sh")
from std_msgs.msg import Header  # noqa: E402
from visualization_msgs.msg import Marker  # noqa: E402

from face3d_ros.core.pipeline.canonical import load_canonical  # noqa: E402
from face3d_ros.core.people.identity import REID_MIN_FRAMES, Reidentifier  # noqa: E402
from face3d_ros.core.people.model_io import save_model, with_vertices  # noqa: E402
from face3d_ros.ros import gallery as G  # noqa: E402
from face3d_ros.core.io.face_fields import frame_from_message  # noqa: E402
from face3d_ros.ros.conversions import frame_to_msg  # noqa: E402
from face3d_ros.ros.input_size import header_seconds  # noqa: E402
from ros_frames import make_face, make_frame  # noqa: E402


@pytest.fixture(scope="module")
def astronaut_model(model_dir, astronaut_rgb):
    from face3d_ros.core.people import enrollment as E
    from face3d_ros.core.config import EngineConfig
    from face3d_ros.core.pipeline.engine import FaceEngine

    engine = FaceEngine(EngineConfig(device="cpu", model_dir=str(model_dir)))
    views = E.views_from_images(engine, [astronaut_rgb], ["front"])
    return E.enroll(views, name="eileen", face_id=3, texture_size=128).model


def test_person_ids_are_the_model_files_ids():
    """Person ids have their own field on ``people``: the model's id as it is, from 1 up."""
    assert not hasattr(G, "PERSON_ID_BASE")
    assert G.person_id(3) == 3
    assert G.person_id(1_000_000_005) == 1_000_000_005  # a model an older release wrote
    assert G.person_id(-1) is None and G.person_id(2**31) is None
    assert G.next_person_id([]) == 1


def test_load_folder_reports_each_bad_file(tmp_path, astronaut_model):
    import dataclasses

    assert G.load_folder(tmp_path / "nobody") == ([], [])
    save_model(tmp_path / "a_old.npz", astronaut_model)
    save_model(tmp_path / "b_new.npz", dataclasses.replace(astronaut_model, name="eileen2"))
    os.utime(tmp_path / "a_old.npz", (1e9, 1e9))
    save_model(tmp_path / "c_noid.npz", dataclasses.replace(astronaut_model, name="anon",
                                                            face_id=-1))
    (tmp_path / "d_broken.npz").write_bytes(b"not a model")
    (tmp_path / "notes.txt").write_text("not a model either, and not *.npz")
    people, problems = G.load_folder(tmp_path)
    print("\n" + "\n".join(problems))
    assert [(p.person_id, p.name) for p in people] == [(3, "eileen2"), (4, "anon")]
    assert len(problems) == 3
    assert any("a_old.npz" in t and "newer" in t and "b_new.npz" in t for t in problems)
    assert any("c_noid.npz" in t and "no id" in t for t in problems)
    assert any("d_broken.npz" in t and "enrol again" in t for t in problems)


def test_gallery_markers_show_each_model_textured(astronaut_model):
    import dataclasses

    people = [G.Person(3, astronaut_model),
              G.Person(9, dataclasses.replace(astronaut_model, name="twin"))]
    msg = G.gallery_markers(people, "gallery")
    assert msg.markers[0].action == Marker.DELETEALL
    meshes = [m for m in msg.markers if m.ns == G.NS_ENROLLED_MESH]
    labels = [m for m in msg.markers if m.ns == G.NS_ENROLLED_LABEL]
    assert [m.id for m in meshes] == [m.id for m in labels] == [p.person_id for p in people]
    n = 3 * len(astronaut_model.triangles)
    for k, m in enumerate(meshes):
        assert m.type == Marker.TRIANGLE_LIST and m.header.frame_id == "gallery"
        assert len(m.points) == len(m.colors) == n
        ys = np.array([p.y for p in m.points])
        assert abs(ys.mean() - astronaut_model.mesh_vertices[:, 1].mean()
                   + k * G.GALLERY_SPACING_M) < 1e-3
        rgb = np.array([[c.r, c.g, c.b] for c in m.colors])
        assert rgb.std() > 0.02 and rgb[:, 0].mean() > rgb[:, 2].mean()  # texture, skin
    assert labels[1].text == "twin (id 9)"


def test_recognise_matches_tracks_to_people(astronaut_model):
    canonical = with_vertices(astronaut_model, load_canonical().vertices)
    gallery = G.Gallery(Reidentifier())
    gallery.add(G.Person(1, canonical))
    pid = 1
    for i in range(REID_MIN_FRAMES):
        frame = make_frame([make_face(4, 10.0, (0.0, 0.0, 0.8), seed=i),
                            make_face(5, -10.0, (0.3, 0.0, 1.0), seed=i),
                            make_face(-1, 0.0, (-0.3, 0.0, 1.0), seed=i)])
        matches = gallery.recognise(frame, [4, 5])
    # Two faces match one person (both are the canonical face): the nearer keeps it, the
    # other is not listed; the untracked face is left alone.
    assert len(matches) == 1 and set(matches) <= {4, 5}
    (track, match), = matches.items()
    assert (match.person_id, match.name) == (pid, "eileen") and match.known
    assert gallery.reid.track_of(pid) == track
    # The people message: the faces' header, track id, person id, name, confidence.
    header = Header(frame_id="cam")
    header.stamp.sec = 42
    msg = G.people_msg(header, matches, gallery.reid.threshold)
    assert msg.header == header
    assert [(p.face_id, p.person_id, p.name) for p in msg.people] == [(track, pid, "eileen")]
    person = msg.people[0]
    assert person.confidence == pytest.approx(
        1.0 - match.distance / gallery.reid.threshold, abs=1e-6)
    assert 0.0 <= person.confidence <= 1.0
    assert person.shape_distance == pytest.approx(match.distance)
    assert G.match_confidence(2 * gallery.reid.threshold, gallery.reid.threshold) == 0.0
    gallery.recognise(make_frame([]), [])
    assert gallery.reid.track_of(pid) is None


def test_identify_a_fresh_model(tmp_path, astronaut_model):
    """A model of an enrolled person keeps their id, name and file; anybody else gets the
    next id and the name person<ID>."""
    path = save_model(tmp_path / "eileen_old.npz", astronaut_model)
    gallery = G.Gallery(Reidentifier())
    assert gallery.identify(astronaut_model) == (1, "person1", "")
    gallery.add(G.Person(3, astronaut_model, str(path)))
    assert gallery.identify(astronaut_model) == (3, "eileen", str(path))
    canonical = with_vertices(astronaut_model, load_canonical().vertices)
    assert gallery.identify(canonical) == (4, "person4", "")


def test_a_faces_message_reads_back_with_its_stamp():
    frame = make_frame([make_face(4, 10.0, (0.0, 0.0, 0.8)), make_face(-1, 0.0, (0.3, 0, 1))])
    header = Header(frame_id="cam")
    header.stamp.sec, header.stamp.nanosec = 12, 500_000_000
    msg = frame_to_msg(frame, header)
    back = frame_from_message(msg, header_seconds(msg.header))
    assert back.stamp == pytest.approx(12.5)
    assert back.image_size == frame.image_size and back.intrinsics == frame.intrinsics
    assert [f.track_id for f in back.faces] == [4, -1]
    np.testing.assert_allclose(back.faces[0].landmarks_3d, frame.faces[0].landmarks_3d,
                               atol=1e-6)
