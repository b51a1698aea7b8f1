"""Enrolled people in the node without spinning: model folder loading, person ids, the
re-identification of a frame's faces and the gallery markers (ros/gallery.py)."""

import os

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="run scripts/setup.sh, then source scripts/env.sh")
from face3d_msgs.msg import Face3D  # noqa: E402
from visualization_msgs.msg import Marker  # noqa: E402

from face3d_ros.core.canonical import load_canonical  # noqa: E402
from face3d_ros.core.identity import REID_MIN_FRAMES, Reidentifier  # noqa: E402
from face3d_ros.core.model_io import save_model, with_vertices  # noqa: E402
from face3d_ros.ros import gallery as G  # noqa: E402
from ros_frames import make_face, make_frame  # noqa: E402


@pytest.fixture(scope="module")
def astronaut_model(model_dir, astronaut_rgb):
    from face3d_ros.core import enrollment as E
    from face3d_ros.core.config import EngineConfig
    from face3d_ros.core.engine import FaceEngine

    engine = FaceEngine(EngineConfig(device="cpu", model_dir=str(model_dir)))
    views = E.views_from_images(engine, [astronaut_rgb], ["front"])
    return E.enroll(views, name="eileen", face_id=3, texture_size=128).model


def test_person_ids_live_above_the_track_ids():
    assert G.PERSON_ID_BASE == Face3D.PERSON_ID_BASE
    assert G.person_id(3) == G.PERSON_ID_BASE + 3
    assert G.person_id(G.PERSON_ID_BASE + 5) == G.PERSON_ID_BASE + 5
    assert G.person_id(-1) is None


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
    assert [(p.person_id, p.name) for p in people] == [
        (G.PERSON_ID_BASE + 3, "eileen2"), (G.PERSON_ID_BASE + 4, "anon")]
    assert len(problems) == 3
    assert any("a_old.npz" in t and "newer" in t and "b_new.npz" in t for t in problems)
    assert any("c_noid.npz" in t and "no id" in t for t in problems)
    assert any("d_broken.npz" in t and "enrol again" in t for t in problems)


def test_gallery_markers_show_each_model_textured(astronaut_model):
    import dataclasses

    people = [G.Person(G.PERSON_ID_BASE + 3, astronaut_model),
              G.Person(G.PERSON_ID_BASE + 9, dataclasses.replace(astronaut_model, name="twin"))]
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
    assert labels[1].text == f"twin (id {G.PERSON_ID_BASE + 9})"


def test_recognise_replaces_ids_and_gives_names(astronaut_model):
    canonical = with_vertices(astronaut_model, load_canonical().vertices)
    gallery = G.Gallery(Reidentifier())
    gallery.add(G.Person(G.PERSON_ID_BASE + 1, canonical))
    pid = G.PERSON_ID_BASE + 1
    for i in range(REID_MIN_FRAMES):
        frame = make_frame([make_face(4, 10.0, (0.0, 0.0, 0.8), seed=i),
                            make_face(5, -10.0, (0.3, 0.0, 1.0), seed=i),
                            make_face(-1, 0.0, (-0.3, 0.0, 1.0), seed=i)])
        out, names = gallery.recognise(frame, [4, 5])
    # Two faces match one person (both are the canonical face): the nearer keeps it, the
    # other keeps its track id; the untracked face is left alone.
    ids = [f.track_id for f in out.faces]
    assert sorted(ids[:2]) == sorted([pid, 4 if ids[1] == pid else 5]) and ids[2] == -1
    assert ids.count(pid) == 1 and names == {pid: "eileen"}
    winner = ids.index(pid)
    np.testing.assert_array_equal(out.faces[winner].landmarks_3d,
                                  frame.faces[winner].landmarks_3d)
    assert gallery.reid.track_of(pid) in (4, 5)
    gallery.recognise(make_frame([]), [])
    assert gallery.reid.track_of(pid) is None
