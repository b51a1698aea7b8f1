"""Multi-view enrolment on real photos: shape fusion, texture atlas, model file and exports.

Views: skimage's astronaut portrait, its mirror image (only approximately a view of the other
side) and two in-plane rotations (+-15 degrees); the engine runs on each.
"""

import itertools

import cv2
import numpy as np
import pytest

from face3d_ros.core.people import enrollment as E
from face3d_ros.core.people import identity as idn
from face3d_ros.core.people import model_io


def _rotated(image, angle):
    h, w = image.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), angle, 1.0)
    return cv2.warpAffine(np.ascontiguousarray(image), m, (w, h),
                          borderMode=cv2.BORDER_REFLECT)


@pytest.fixture(scope="module")
def engine(model_dir):
    from face3d_ros.core.config import EngineConfig
    from face3d_ros.core.pipeline.engine import FaceEngine

    return FaceEngine(EngineConfig(device="cpu", model_dir=str(model_dir)))


@pytest.fixture(scope="module")
def views(engine, astronaut_rgb):
    images = [astronaut_rgb, np.ascontiguousarray(astronaut_rgb[:, ::-1]),
              _rotated(astronaut_rgb, 15.0), _rotated(astronaut_rgb, -15.0)]
    return E.views_from_images(engine, images, ["front", "mirrored", "rot+15", "rot-15"])


@pytest.fixture(scope="module")
def enrolled(views):
    return E.enroll(views, name="astronaut", face_id=7)


def _shape_rms_mm(a, b):
    """RMS distance (mm) of the mesh vertices after similarity alignment of a onto b."""
    return 1e3 * float(np.sqrt(((idn.align(a, b) - b)[:468] ** 2).sum(-1).mean()))


def test_fused_model_covers_more_and_agrees_better_than_single_views(views, enrolled):
    singles = [E.enroll([v]) for v in views]
    single_seen = [s.coverage["seen"] for s in singles]
    print(f"\natlas seen: fused {enrolled.coverage['seen']:.4f}, single views "
          + ", ".join(f"{v.name} {s:.4f}" for v, s in zip(views, single_seen)))
    print("fused coverage by source: "
          + ", ".join(f"{k} {v:.4f}" for k, v in enrolled.coverage.items()))
    assert enrolled.coverage["seen"] > max(single_seen)
    assert sum(enrolled.coverage.values()) == pytest.approx(1.0, abs=1e-6)
    assert enrolled.coverage["seen"] > 0.8
    np.testing.assert_allclose(enrolled.view_seen, single_seen, atol=1e-9)

    # Shape agreement: single-view models against each other, and models fused from all views
    # but one against each other (each pair shares half its views, so this measures how much
    # the fused shape still depends on which views it was given).
    single_pairs = [_shape_rms_mm(a.model.vertices, b.model.vertices)
                    for a, b in itertools.combinations(singles, 2)]
    loo = [E.enroll([v for j, v in enumerate(views) if j != i]).model.vertices
           for i in range(len(views))]
    loo_pairs = [_shape_rms_mm(a, b) for a, b in itertools.combinations(loo, 2)]
    to_fused = [_shape_rms_mm(s.model.vertices, enrolled.model.vertices) for s in singles]
    print(f"shape RMS between single-view models: mean {np.mean(single_pairs):.3f} mm "
          f"(max {np.max(single_pairs):.3f}); between leave-one-out fused models: mean "
          f"{np.mean(loo_pairs):.3f} mm (max {np.max(loo_pairs):.3f}); single to fused: mean "
          f"{np.mean(to_fused):.3f} mm")
    assert np.mean(loo_pairs) < np.mean(single_pairs)
    assert np.max(loo_pairs) < np.max(single_pairs)
    # Metric size kept: within 10 % of the views' own faces.
    sizes = [idn.face_size(E.face_frame_points(v.face)) for v in views]
    assert idn.face_size(enrolled.model.vertices) == pytest.approx(np.mean(sizes), rel=0.1)


def test_expression_removed_as_far_as_views_allow(views, enrolled):
    """The expression every view shows is removed against the canonical face (the astronaut
    smiles in every view); what one view shows beyond the others, against the others."""
    observed = idn.expression_of(enrolled.view_shapes[0])
    model = idn.expression_of(enrolled.model.vertices)
    print(f"\nsmile left/right: observed {observed['mouth_smile_left']:.3f}/"
          f"{observed['mouth_smile_right']:.3f}, model {model['mouth_smile_left']:.3f}/"
          f"{model['mouth_smile_right']:.3f}; jaw_open {observed['jaw_open']:.3f} -> "
          f"{model['jaw_open']:.3f}")
    assert observed["mouth_smile_left"] > 0.4 and observed["mouth_smile_right"] > 0.4
    assert model["mouth_smile_left"] < 0.6 * observed["mouth_smile_left"]
    assert model["mouth_smile_right"] < 0.6 * observed["mouth_smile_right"]
    # The rigid part (nose, forehead, eye corners) is untouched by expression removal.
    rigid = [1, 4, 6, 10, 151, 168, 197]
    d = np.linalg.norm(enrolled.view_identities[0][rigid] - enrolled.view_shapes[0][rigid],
                       axis=-1)
    assert float(d.max()) < 1e-3

    # Three views that read no expression against the canonical face, one of which smiles
    # more than the others (her smile against the canonical face added once more): only that
    # view's mouth moves, back towards the others.
    base = enrolled.view_shapes[0]
    extra = base - idn.neutralize(base, np.ones(len(views[0].face.expression.values)))[0]
    mouth = idn.region_masks()["mouth"] > 0.5
    local = np.stack([base, base, base + extra])
    weights = np.ones((3, 478))
    zero = [np.zeros(len(views[0].face.expression.values))] * 3
    neutral = E.neutralize_views(local, weights, zero)
    moved = [1e3 * float(np.linalg.norm(idn.align(n, base) - base, axis=-1)[mouth].mean())
             for n in neutral]
    added = 1e3 * float(np.linalg.norm(extra, axis=-1)[mouth].mean())
    print(f"mouth, mm from the other views' shape: added {added:.2f}, after neutralisation "
          + ", ".join(f"{m:.2f}" for m in moved))
    assert added > 1.0
    assert moved[2] < 0.6 * added
    assert max(moved[:2]) < 0.3 * added
    # One view: all it reads is removed against the canonical face.
    coeffs = E.neutral_coefficients(views[0].face.expression.values)
    np.testing.assert_allclose(E.neutralize_views(local[:1], weights[:1], [coeffs])[0],
                               idn.neutralize(base, coeffs)[0], atol=1e-12)


def test_texture_shows_the_face_where_the_views_saw_it(views, enrolled):
    """Texels at mesh vertices carry the colour of the front image at that landmark."""
    model, front = enrolled.model, views[0]
    tex = model.texture.astype(np.float64)
    s = tex.shape[0]
    errors = []
    for idx in (1, 4, 6, 50, 280, 101, 330, 151, 9):  # nose, cheeks, forehead
        u, v = model.uv[idx]
        t = tex[int((1.0 - v) * s), int(u * s)]
        x, y = front.face.landmarks_2d[idx, :2]
        patch = front.image[int(y) - 1:int(y) + 2, int(x) - 1:int(x) + 2].reshape(-1, 3)
        errors.append(float(np.abs(t - patch.mean(0)).mean()))
    print(f"\ntexel vs image colour difference at 9 vertices: mean {np.mean(errors):.1f} "
          f"(max {np.max(errors):.1f}) of 255")
    assert np.mean(errors) < 20.0
    # No black left in the face part of the atlas (everything seen, mirrored or filled).
    tri, _ = E._atlas_raster(s)
    assert float(tex[tri >= 0].sum(-1).min()) > 30.0


def test_exports_load_back_with_trimesh(enrolled, tmp_path):
    trimesh = pytest.importorskip("trimesh", reason="pip install trimesh (requirements)")
    model = enrolled.model
    obj = model_io.export_obj(model, tmp_path, "astro")
    glb = model_io.export_glb(model, tmp_path / "astro.glb")
    assert (tmp_path / "astro.png").is_file() and (tmp_path / "astro.mtl").is_file()
    m_obj = trimesh.load(obj, force="mesh", process=False)
    m_glb = trimesh.load(glb, force="mesh", process=False)
    counts = {"model": (468, len(model.triangles)), "obj": (len(m_obj.vertices), len(m_obj.faces)),
              "glb": (len(m_glb.vertices), len(m_glb.faces))}
    print(f"\nvertices/faces: {counts}")
    assert counts["obj"] == counts["model"] and counts["glb"] == counts["model"]
    np.testing.assert_allclose(m_obj.vertices, model.mesh_vertices, atol=2e-6)
    np.testing.assert_allclose(m_glb.vertices @ model_io.FACE_TO_GLTF, model.mesh_vertices,
                               atol=1e-6)
    img = m_glb.visual.material.baseColorTexture
    assert img is not None and img.size == (model.texture.shape[1], model.texture.shape[0])
    np.testing.assert_array_equal(np.asarray(img.convert("RGB")), model.texture)


def test_model_file_round_trip(enrolled, tmp_path):
    model = enrolled.model
    path = model_io.save_model(tmp_path / "people" / "astronaut", model)
    assert path.suffix == ".npz"
    back = model_io.load_model(path)
    assert (back.name, back.face_id) == ("astronaut", 7)
    np.testing.assert_array_equal(back.vertices, model.vertices)
    np.testing.assert_array_equal(back.metric_vertices, model.metric_vertices)
    np.testing.assert_array_equal(back.triangles, model.triangles)
    np.testing.assert_array_equal(back.uv, model.uv)
    np.testing.assert_array_equal(back.texture, model.texture)  # PNG is lossless
    assert back.coverage == pytest.approx(model.coverage)
    assert back.view_names == ("front", "mirrored", "rot+15", "rot-15")
    assert back.view_coverage == pytest.approx(model.view_coverage)
    # A file written before metric_vertices: the identity shape stands in for display.
    with np.load(path) as d:
        older = {k: d[k] for k in d.files if k != "metric_vertices"}
    np.savez(tmp_path / "older.npz", **older)
    old = model_io.load_model(tmp_path / "older.npz")
    assert old.metric_vertices is None
    np.testing.assert_array_equal(old.mesh_vertices, model.vertices[:468])
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, vertices=model.vertices)
    with pytest.raises(model_io.ModelFileError, match="not a face3d model"):
        model_io.load_model(foreign)
    with pytest.raises(model_io.ModelFileError, match="face3d-enroll"):
        model_io.load_model(tmp_path / "missing.npz")


def test_triangle_list_and_render(enrolled):
    model = enrolled.model
    pts, cols = model_io.triangle_list(model)
    assert pts.shape == (3 * len(model.triangles), 3) and cols.shape == pts.shape
    assert 0.0 <= cols.min() and cols.max() <= 1.0 and cols.mean() > 0.2
    front = E.render_model(model, 0.0, size=128)
    left = E.render_model(model, 40.0, size=128)
    face_px = (front != 255).any(-1)
    assert 0.15 < face_px.mean() < 0.9
    # Turning the head moves the picture: the nose tip is no longer in the middle.
    assert np.abs(front.astype(int) - left.astype(int)).mean() > 10.0


def test_view_without_a_face_is_named(engine, astronaut_rgb, coffee_rgb):
    with pytest.raises(ValueError, match="no face found in view 'cup'"):
        E.views_from_images(engine, [astronaut_rgb, coffee_rgb], ["front", "cup"])
    with pytest.raises(ValueError, match="at least one view"):
        E.enroll([])


def _turned(frame, yaw):
    """The frame with its face's head yaw set (the collector bins by yaw only)."""
    import dataclasses

    face = frame.faces[0]
    face = dataclasses.replace(face, track_id=3,
                               head_pose=dataclasses.replace(face.head_pose, yaw=yaw))
    return dataclasses.replace(frame, faces=(face,))


def test_collector_guides_through_front_left_right(engine, views, tmp_path):
    from face3d_ros.ros.enrollment import CollectorConfig, EnrollmentCollector

    frame = engine.process(views[0].image)
    image = views[0].image
    col = EnrollmentCollector(-1, timeout_s=30.0, output_dir=tmp_path, name="astro",
                              config=CollectorConfig(hold_frames=2, texture_size=256))
    said = []
    t = 0.0
    for yaw in (1.0, 0.5, 31.0, 30.0, -29.0, -30.0):
        status = col.offer(_turned(frame, yaw), image, t)
        said.append(status.guidance)
        t += 0.1
    print(f"\nguidance: {said}")
    assert said == ["hold still", "turn left", "hold still", "turn right", "hold still", "done"]
    assert status.finished and not status.timed_out and status.face_id == 3
    assert status.covered == ("front", "left", "right")
    out = col.finish()
    assert out.success, out.message
    assert out.view_names == ("front", "left", "right") and len(out.view_coverage) == 3
    back = model_io.load_model(out.model_path)
    assert back.name == "astro" and back.face_id == 3 and back.texture.shape == (256, 256, 3)
    assert (tmp_path / "astro.obj").is_file() and (tmp_path / "astro.glb").is_file()


def test_collector_timeout_and_missing_front(engine, views, tmp_path):
    from face3d_ros.ros.enrollment import CollectorConfig, EnrollmentCollector

    frame = engine.process(views[0].image)
    cfg = CollectorConfig(hold_frames=1, export_glb=False)
    col = EnrollmentCollector(-1, 1.0, tmp_path, config=cfg)
    assert col.offer(_turned(frame, 0.0), views[0].image, 0.0).guidance == "turn left"
    status = col.offer(_turned(frame, 0.0), views[0].image, 1.5)
    assert status.finished and status.timed_out
    out = col.finish()
    assert out.success and "missing left view (turn left), right view (turn right)" in out.message
    empty = EnrollmentCollector(-1, 1.0, tmp_path)
    empty.offer(_turned(frame, 25.0), views[0].image, 0.0)
    out = empty.finish()
    assert not out.success and "no front view" in out.message
    with pytest.raises(ValueError, match="timeout_s"):
        EnrollmentCollector(-1, 0.0, tmp_path)


def test_finish_writes_once_with_the_assigned_id_and_name(engine, views, tmp_path,
                                                          monkeypatch):
    """The model is written once, already with the person id and name the caller assigns
    (the people node's gallery); a re-enrolled person's own file is written over, so no
    second file of one person appears."""
    from face3d_ros.ros import enrollment as R

    writes = []
    real_save = R.save_model
    monkeypatch.setattr(R, "save_model", lambda path, model: writes.append(
        (str(path), model.name, model.face_id)) or real_save(path, model))
    frame = engine.process(views[0].image)
    cfg = R.CollectorConfig(hold_frames=1, texture_size=128, export_glb=False)

    def collect():
        col = R.EnrollmentCollector(-1, 1.0, tmp_path / "new", config=cfg)
        col.offer(_turned(frame, 0.0), views[0].image, 0.0)
        col.offer(_turned(frame, 0.0), views[0].image, 1.5)
        return col

    seen = []
    out = collect().finish(assign=lambda m: seen.append(m.face_id) or (7, "ada", ""))
    assert out.success and out.person_id == 7 and seen == [3]  # assigned before writing
    assert writes == [(str(tmp_path / "new" / "ada.npz"), "ada", 7)]
    back = model_io.load_model(out.model_path)
    assert (back.name, back.face_id) == ("ada", 7) and out.model.face_id == 7
    assert (tmp_path / "new" / "ada.obj").is_file() and not out.replaced

    old = model_io.save_model(tmp_path / "people" / "ada_2024.npz", back)
    writes.clear()
    out = collect().finish(assign=lambda m: (7, "ada", str(old)))
    assert out.success and out.model_path == str(old) and out.replaced == str(old)
    assert writes == [(str(old), "ada", 7)]
    assert sorted(p.name for p in (tmp_path / "people").glob("*.npz")) == ["ada_2024.npz"]
    assert (tmp_path / "people" / "ada_2024.obj").is_file()
    assert sorted(p.name for p in (tmp_path / "new").glob("*.npz")) == ["ada.npz"]


def test_identity_shape_does_not_depend_on_the_focal_length(engine, astronaut_rgb):
    """``landmarks_3d`` are in true perspective, a correction the focal length sizes; the shape
    identities compare (``face_frame_points``) keeps the image's own proportions, so a photo
    enrolled without camera_info matches the same face from a calibrated camera."""
    from face3d_ros.core.types import CameraIntrinsics

    h, w = astronaut_rgb.shape[:2]
    faces = [engine.process_batch([astronaut_rgb], [CameraIntrinsics.from_fov(w, h, fov)])[0]
             .faces[0] for fov in (30.0, 60.0, 90.0)]
    metric = [(np.asarray(f.landmarks_3d, np.float64) - f.head_pose.translation)
              @ f.head_pose.rotation for f in faces]
    shapes = [E.face_frame_points(f) for f in faces]
    published = [idn.shape_distance(m, metric[1]) for m in metric]
    compared = [idn.shape_distance(s, shapes[1]) for s in shapes]
    print(f"\nshape distance to the 60 deg reading, landmarks_3d: {published}; "
          f"face_frame_points: {compared}")
    assert min(published[0], published[2]) > 0.005  # perspective differs with the focal length
    assert max(compared) < 1e-4


def test_model_shows_the_views_in_true_perspective(views, enrolled):
    """The model's exported shape is its identity plus the views' own perspective correction
    (their published landmarks_3d against the image's proportions, a few mm), averaged with
    the fusion's weights; an expression applied to the identity moves it along."""
    face = views[0].face
    one = E.enroll(views[:1]).model
    np.testing.assert_allclose(one.metric_vertices - one.vertices,
                               E.metric_frame_points(face) - E.face_frame_points(face),
                               atol=1e-6)
    model = enrolled.model
    correction = model.metric_vertices - model.vertices
    assert 1e-4 < float(np.abs(correction).max()) < 0.01  # metres
    np.testing.assert_array_equal(model.mesh_vertices, model.metric_vertices[:468])
    moved = model_io.with_vertices(model, model.vertices + np.float32(0.002))
    np.testing.assert_allclose(moved.metric_vertices - moved.vertices, correction, atol=1e-6)
