"""RViz markers of the faces of one frame (pure: no node, no spinning).

Per face, markers in these namespaces, all with the marker id of the face (its track id, or
``UNTRACKED_ID_BASE + index`` for an untracked face):

* ``face_mesh``: TRIANGLE_LIST of the 468-vertex mesh, per-vertex colours shaded by depth;
* ``face_landmarks``: POINTS, all 478 landmarks;
* ``gaze_left``, ``gaze_right``, ``gaze_combined``: ARROWs from the gaze origin along the
  gaze direction;
* ``head_axes``: LINE_LIST of the face frame axes (x red out of the face, y green to the
  subject's left, z blue up);
* ``face_label``: TEXT_VIEW_FACING with the id above the head.

A :class:`MarkerBuilder` remembers which faces it drew and adds DELETE markers (every
namespace) for faces that vanished, so RViz never keeps a stale face even with lifetime 0.
Headers are copied from the source image, so everything lives in its optical frame. The mesh
and landmark points travel as numpy arrays (:class:`~face3d_ros.ros.marker_cdr.MarkerPart`),
turned into a message or straight into serialized bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Set, Tuple

import numpy as np
from builtin_interfaces.msg import Duration
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from face3d_ros.core.types import NUM_MESH, FaceResult, FrameResult
from face3d_ros.ros.marker_cdr import MarkerPart, encode_marker_array, to_marker_array

NS_MESH = "face_mesh"
NS_LANDMARKS = "face_landmarks"
NS_GAZE = ("gaze_left", "gaze_right", "gaze_combined")
NS_AXES = "head_axes"
NS_LABEL = "face_label"
NAMESPACES: Tuple[str, ...] = (NS_MESH, NS_LANDMARKS) + NS_GAZE + (NS_AXES, NS_LABEL)

#: Marker id of an untracked face (track id -1) is this plus its index in the frame.
UNTRACKED_ID_BASE = 1_000_000

_GAZE_COLORS = ((0.1, 0.6, 1.0), (1.0, 0.6, 0.1), (1.0, 1.0, 0.2))  # left, right, combined


@dataclass(frozen=True)
class MarkerOptions:
    """What to draw and how.

    lifetime_s: marker lifetime (0 = until deleted). gaze_length_m: arrow length, metres.
    axes_length_m: head axis length, metres. point_size_m: landmark point size, metres.
    mesh / landmarks / gaze / axes / labels: enable each kind of marker.
    """

    lifetime_s: float = 0.5
    gaze_length_m: float = 0.25
    axes_length_m: float = 0.08
    point_size_m: float = 0.002
    mesh: bool = True
    landmarks: bool = True
    gaze: bool = True
    axes: bool = True
    labels: bool = True

    def namespaces(self) -> Tuple[str, ...]:
        """Namespaces drawn with these options."""
        out: List[str] = []
        if self.mesh:
            out.append(NS_MESH)
        if self.landmarks:
            out.append(NS_LANDMARKS)
        if self.gaze:
            out.extend(NS_GAZE)
        if self.axes:
            out.append(NS_AXES)
        if self.labels:
            out.append(NS_LABEL)
        return tuple(out)


def marker_id(face: FaceResult, index: int) -> int:
    """Marker id of ``face`` (the ``index``-th face of its frame)."""
    return int(face.track_id) if face.track_id >= 0 else UNTRACKED_ID_BASE + index


def face_color(marker_key: int) -> Tuple[float, float, float]:
    """A stable, distinct RGB colour in [0, 1] for a marker id (golden-ratio hue steps)."""
    hue = (marker_key * 0.618033988749895) % 1.0
    h6 = hue * 6.0
    i = int(h6) % 6
    f = h6 - int(h6)
    v, s = 0.95, 0.6
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    return ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))[i]


class MarkerPool:
    """Marker messages reused from frame to frame, one per namespace and face slot.

    Constructing a ``Marker`` costs ~25 us on the reference CPU (it builds its header, pose,
    colour and, on newer distributions, texture sub-messages); setting the fields of one
    already built ~1.5 us. Each kind of marker sets every field it uses, so a reused marker
    carries nothing over. Only for markers that are serialized or published before the next
    frame reuses them (``MarkerBuilder.parts(..., reuse=True)``: ``build_serialized`` and the
    node), never for messages handed out (``build``).
    """

    def __init__(self) -> None:
        self._markers: Dict[Tuple[str, int], Marker] = {}

    def get(self, ns: str, slot: int) -> Marker:
        """The marker of namespace ``ns`` for the ``slot``-th face of a frame."""
        m = self._markers.get((ns, slot))
        if m is None:
            m = self._markers[(ns, slot)] = Marker()
        return m


def _marker(header: Header, ns: str, mid: int, mtype: int, lifetime: Duration,
            reuse: Optional[Marker] = None) -> Marker:
    m = Marker() if reuse is None else reuse
    m.header = header
    m.ns = ns
    m.id = mid
    m.type = mtype
    m.action = Marker.ADD
    m.pose.orientation.w = 1.0
    m.lifetime = lifetime
    m.frame_locked = False
    return m


def _duration(seconds: float) -> Duration:
    sec = int(seconds)
    return Duration(sec=sec, nanosec=int(round((seconds - sec) * 1e9)))


#: Depth shading levels of the mesh's vertex colours.
SHADE_LEVELS = 32


def mesh_marker(face: FaceResult, triangles: np.ndarray, header: Header, mid: int,
                lifetime: Duration, reuse: Optional[Marker] = None) -> MarkerPart:
    """TRIANGLE_LIST of the mesh; ``triangles`` (F, 3) indices into the 468 vertices.

    The 468 vertices (metres), their colours and the (3F,) corner index come as arrays.
    Vertex colours: the face colour, darker with depth from the nearest vertex (so the relief
    reads in RViz without lighting of per-vertex colours), in SHADE_LEVELS steps.
    ``reuse``: a marker to fill instead of a new one (:class:`MarkerPool`; as for the others).
    """
    m = _marker(header, NS_MESH, mid, Marker.TRIANGLE_LIST, lifetime, reuse)
    m.scale.x = m.scale.y = m.scale.z = 1.0
    xyz = np.asarray(face.landmarks_3d[:NUM_MESH], dtype=np.float64)  # (468, 3)
    z = xyz[:, 2]
    span = max(float(z.max() - z.min()), 1e-6)
    levels = np.rint((z - z.min()) / span * (SHADE_LEVELS - 1))
    shade = 1.0 - 0.6 * levels / (SHADE_LEVELS - 1)  # 1 nearest .. 0.4 farthest
    r, g, b = face_color(mid)
    rgba = np.empty((NUM_MESH, 4))
    rgba[:, :3] = np.outer(shade, (r, g, b))
    rgba[:, 3] = 1.0
    m.color = ColorRGBA(r=r, g=g, b=b, a=1.0)
    return MarkerPart(m, xyz, rgba.astype(np.float32),
                      np.asarray(triangles, dtype=np.int64).reshape(-1), plain=True)


def landmarks_marker(face: FaceResult, header: Header, mid: int, lifetime: Duration,
                     size_m: float, reuse: Optional[Marker] = None) -> MarkerPart:
    """POINTS of all 478 landmarks (points (478, 3) metres as an array)."""
    m = _marker(header, NS_LANDMARKS, mid, Marker.POINTS, lifetime, reuse)
    m.scale.x = m.scale.y = size_m
    m.color = ColorRGBA(r=1.0, g=1.0, b=1.0, a=1.0)
    return MarkerPart(m, np.asarray(face.landmarks_3d, dtype=np.float64), plain=True)


def gaze_markers(face: FaceResult, header: Header, mid: int, lifetime: Duration,
                 length_m: float, reuse: Optional[Tuple[Marker, ...]] = None
                 ) -> List[MarkerPart]:
    """ARROWs of the left, right and combined gaze (origin -> origin + length * direction;
    the two points as an array). ``reuse``: three markers to fill (left, right, combined)."""
    out = []
    rays = (face.gaze.left, face.gaze.right, face.gaze.combined)
    for k, (ns, ray, (r, g, b)) in enumerate(zip(NS_GAZE, rays, _GAZE_COLORS)):
        m = _marker(header, ns, mid, Marker.ARROW, lifetime,
                    None if reuse is None else reuse[k])
        o = np.asarray(ray.origin, dtype=np.float64)
        combined = ns == NS_GAZE[2]
        m.scale.x = 0.004 if combined else 0.002  # shaft diameter
        m.scale.y = 0.008 if combined else 0.004  # head diameter
        m.scale.z = 0.015  # head length
        alpha = min(max(0.3 + 0.7 * float(ray.confidence), 0.0), 1.0)
        m.color = ColorRGBA(r=r, g=g, b=b, a=alpha)
        out.append(MarkerPart(m, np.array([o, o + length_m * np.asarray(ray.direction)]),
                              plain=True))
    return out


#: Colours of the axes marker's line ends: x red, y green, z blue (two ends each).
_AXES_COLORS = np.repeat(np.eye(3, 4, dtype=np.float32) + np.array([0, 0, 0, 1], np.float32),
                         2, axis=0)


def axes_marker(face: FaceResult, header: Header, mid: int, lifetime: Duration,
                length_m: float, reuse: Optional[Marker] = None) -> MarkerPart:
    """LINE_LIST of the face frame axes from the head pose (x red, y green, z blue; points
    and colours as arrays)."""
    m = _marker(header, NS_AXES, mid, Marker.LINE_LIST, lifetime, reuse)
    t = np.asarray(face.head_pose.translation, dtype=np.float64)
    rot = np.asarray(face.head_pose.rotation, dtype=np.float64)
    ends = t[None, :] + length_m * rot.T  # (3, 3) row k = end of axis k
    m.scale.x = 0.003  # line width
    m.color = ColorRGBA(r=1.0, g=1.0, b=1.0, a=1.0)
    return MarkerPart(m, np.stack([t, ends[0], t, ends[1], t, ends[2]]), _AXES_COLORS,
                      plain=True)


def label_marker(face: FaceResult, header: Header, mid: int, lifetime: Duration,
                 reuse: Optional[Marker] = None) -> Marker:
    """TEXT_VIEW_FACING with the face id, placed above the head (along the face z axis)."""
    m = _marker(header, NS_LABEL, mid, Marker.TEXT_VIEW_FACING, lifetime, reuse)
    t = np.asarray(face.head_pose.translation, dtype=np.float64)
    up = np.asarray(face.head_pose.rotation, dtype=np.float64)[:, 2]
    p = t + 0.13 * up
    m.pose.position.x, m.pose.position.y, m.pose.position.z = (float(v) for v in p)
    m.scale.z = 0.04  # text height, metres
    m.text = f"id {face.track_id}" if face.track_id >= 0 else "untracked"
    r, g, b = face_color(mid)
    m.color = ColorRGBA(r=r, g=g, b=b, a=1.0)
    return m


def delete_markers(header: Header, ids: Iterable[int],
                   namespaces: Iterable[str] = NAMESPACES) -> List[Marker]:
    """DELETE markers for every namespace of each marker id in ``ids``."""
    out = []
    for mid in sorted(ids):
        for ns in namespaces:
            m = Marker()
            m.header = header
            m.ns = ns
            m.id = int(mid)
            m.action = Marker.DELETE
            out.append(m)
    return out


def frame_parts(frame: FrameResult, header: Header, triangles: Optional[np.ndarray],
                options: MarkerOptions = MarkerOptions(), pool: Optional[MarkerPool] = None
                ) -> Tuple[List[MarkerPart], Set[int]]:
    """ADD markers of every face of ``frame`` and the set of marker ids drawn: first the labels
    of all faces (no arrays: serialized in one call), then the markers whose points are arrays
    (mesh, landmarks, gaze, axes). ``triangles``: (F, 3) mesh triangles; None skips the
    mesh. ``pool``: reuse its markers (serialize the parts before the next call)."""

    def reuse(ns: str, slot: int) -> Optional[Marker]:
        return None if pool is None else pool.get(ns, slot)

    lifetime = _duration(options.lifetime_s)
    light: List[MarkerPart] = []
    heavy: List[MarkerPart] = []
    ids: Set[int] = set()
    for index, face in enumerate(frame.faces):
        mid = marker_id(face, index)
        ids.add(mid)
        if options.mesh and triangles is not None:
            heavy.append(mesh_marker(face, triangles, header, mid, lifetime,
                                     reuse(NS_MESH, index)))
        if options.landmarks:
            heavy.append(landmarks_marker(face, header, mid, lifetime, options.point_size_m,
                                          reuse(NS_LANDMARKS, index)))
        if options.gaze:
            arrows = None if pool is None else tuple(pool.get(ns, index) for ns in NS_GAZE)
            heavy.extend(gaze_markers(face, header, mid, lifetime, options.gaze_length_m,
                                      arrows))
        if options.axes:
            heavy.append(axes_marker(face, header, mid, lifetime, options.axes_length_m,
                                     reuse(NS_AXES, index)))
        if options.labels:
            light.append(MarkerPart(label_marker(face, header, mid, lifetime,
                                                 reuse(NS_LABEL, index))))
    return light + heavy, ids


class MarkerBuilder:
    """Builds one MarkerArray per frame and deletes the markers of faces that vanished.

    :meth:`build` gives the message; :meth:`build_serialized` the same array already
    serialized (see :mod:`face3d_ros.ros.marker_cdr`), several times cheaper for big meshes.
    Not thread-safe: use from one thread (the node's processing thread).
    """

    def __init__(self, options: MarkerOptions = MarkerOptions(),
                 triangles: Optional[np.ndarray] = None) -> None:
        """``triangles``: (F, 3) int mesh triangles, or None to draw no mesh."""
        self.options = options
        self.triangles = None if triangles is None else np.asarray(triangles, dtype=np.int64)
        self._drawn: Set[int] = set()
        self._pool = MarkerPool()

    def parts(self, frame: FrameResult, header: Header, reuse: bool = False
              ) -> List[MarkerPart]:
        """DELETE markers for faces drawn last time but gone now, then the faces of ``frame``.
        ``reuse``: the ADD markers are the builder's own, refilled each call
        (:class:`MarkerPool`): serialize or publish them before the next call."""
        adds, ids = frame_parts(frame, header, self.triangles, self.options,
                                self._pool if reuse else None)
        gone = self._drawn - ids
        self._drawn = ids
        return [MarkerPart(m) for m in delete_markers(header, gone)] + adds

    def build(self, frame: FrameResult, header: Header) -> MarkerArray:
        """:meth:`parts` as a MarkerArray message."""
        return to_marker_array(self.parts(frame, header))

    def build_serialized(self, frame: FrameResult, header: Header) -> bytes:
        """:meth:`parts` as a serialized MarkerArray (for ``Publisher.publish(bytes)``); the
        ADD markers are the builder's own, reused each frame (:class:`MarkerPool`)."""
        return encode_marker_array(self.parts(frame, header, reuse=True))

    def clear(self, header: Header) -> MarkerArray:
        """DELETE markers for every face drawn so far (e.g. on deactivate)."""
        msg = MarkerArray()
        msg.markers = delete_markers(header, self._drawn)
        self._drawn = set()
        return msg

    @property
    def drawn_ids(self) -> Set[int]:
        """Marker ids currently drawn."""
        return set(self._drawn)


def count_by_namespace(markers: Iterable[Marker]) -> Dict[str, int]:
    """Number of ADD markers per namespace (for diagnostics and tests)."""
    out: Dict[str, int] = {}
    for m in markers:
        if m.action == Marker.ADD:
            out[m.ns] = out.get(m.ns, 0) + 1
    return out
