"""The face mesh topology: triangles (from MediaPipe, fetched with the models) and UVs.

Triangles come from the verified ``face_mesh_topology.json`` of the model folder; UVs are the
canonical face's frontal projection (``core.pipeline.canonical``), one per mesh vertex.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Dict, Optional, Union

import numpy as np

from .canonical import load_canonical
from ..io.model_store import load_topology as _load_topology_json
from ..types import NUM_MESH


@dataclass(frozen=True)
class MeshTopology:
    """triangles: (F, 3) int32 vertex indices < 468, counter-clockwise seen from the front.
    uv: (468, 2) float32 in [0, 1] (v up). contours: name -> (E, 2) int32 edges."""

    triangles: np.ndarray
    uv: np.ndarray
    contours: Dict[str, np.ndarray]


@lru_cache(maxsize=4)
def _cached(model_dir: Optional[str]) -> MeshTopology:
    data = _load_topology_json(model_dir)
    tri = np.asarray(data["triangles"], dtype=np.int32)
    uv = load_canonical().uv[:NUM_MESH]
    # Orient every triangle counter-clockwise in the frontal UV view (outward normals).
    a, b, c = uv[tri[:, 0]], uv[tri[:, 1]], uv[tri[:, 2]]
    cross = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    tri = np.where((cross < 0)[:, None], tri[:, [0, 2, 1]], tri)
    contours = {k: np.asarray(v, dtype=np.int32) for k, v in data["contours"].items()}
    return MeshTopology(triangles=np.ascontiguousarray(tri), uv=uv, contours=contours)


def load_topology(model_dir: Optional[Union[str, Path]] = None) -> MeshTopology:
    """The mesh topology of the model folder (default cache when None); cached per folder."""
    return _cached(None if model_dir is None else str(model_dir))
