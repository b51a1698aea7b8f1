"""Serialized MarkerArray whose big point and colour lists come straight from numpy.

Why this exists
---------------
rclpy converts a message to its wire form one Python object at a time: every
``geometry_msgs/Point`` and ``std_msgs/ColorRGBA`` of a ``Marker`` is visited and its fields read
one by one. The face mesh markers of 8 faces hold about 20,000 points and 20,000 colours; making
those objects took about 4 ms and serializing them 14 ms per frame on the reference CPU. No ROS
client library offers numpy-backed sequences of messages, so the numeric parts are written here
and everything else is left to rclpy.

How
---
A marker arrives as a :class:`MarkerPart`: the ``Marker`` message with empty ``points`` and
``colors``, plus the points ``(N, 3)`` in metres and the colours ``(M, 4)`` RGBA in [0, 1] as
arrays. :func:`encode_marker_array` builds the serialized ``MarkerArray``:

* every byte other than the numeric sequence data is produced by rclpy's own
  ``serialize_message`` (header, strings, pose, the fields a distribution adds), so the field
  layout of the running ROS distribution is always the one used;
* CDR aligns each primitive relative to the start of the payload, to at most 8 bytes, so a
  marker's bytes depend on where it starts modulo 8. A marker that starts at offset 0 (mod 8)
  is taken from ``serialize_message(marker)``, one that starts at 4 from
  ``serialize_message(MarkerArray(markers=[marker, ...]))``, where it follows the 4-byte count
  (a run of markers without arrays goes through one such call);
* in a marker with arrays, the empty ``points`` count and the ``colors`` count are replaced by
  the counts, the alignment padding and the little-endian float64 / float32 data. The place of
  the ``points`` count is found once per layout from a second serialization with one sentinel
  point; the padding from the difference in length.
* a marker with arrays is not serialized anew each time either: markers of one layout (start
  offset mod 8, the strings, every other field at its default) differ only in fixed-size
  fields (stamp, id, type, action, pose, scale, colour, lifetime, frame_locked). The first
  marker of a layout is serialized with those fields set to sentinel values, and each field's
  place found from a serialization with that one field changed; later markers are that
  template with their values written in (``_Template``). A marker with any other field set
  is serialized by rclpy as it is.

The bytes are published with ``Publisher.publish(bytes)``. :func:`self_check` compares the
decoded result with rclpy's own serialization of the same markers; the node uses this path only
when the check passes on its ROS installation, and plain messages otherwise.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from geometry_msgs.msg import Point
from rclpy.serialization import deserialize_message, serialize_message
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

__all__ = ["MarkerPart", "encode_marker_array", "to_marker_array", "point_msgs", "self_check"]

_U32 = struct.Struct("<I")
_SENTINEL = -1.2345678901234567e-300  # a double no marker field holds
_SENTINEL_BYTES = struct.pack("<ddd", _SENTINEL, _SENTINEL, _SENTINEL)


@dataclass(frozen=True)
class MarkerPart:
    """One marker of an array.

    marker: the message; its ``points`` and ``colors`` are ignored when the arrays are given.
    points: (V, 3) float64 metres, or None for the marker's own ``points``.
    colors: (V, 4) float32 RGBA in [0, 1], or None for the marker's own ``colors``.
    index: (K,) int rows of ``points`` and ``colors`` to send, in order (a triangle list
        repeats each vertex), or None for all rows once.
    plain: the marker sets nothing but the fixed-size fields a template patches, its header's
        frame_id and its strings (as the markers of ``ros.markers`` do): the check that every
        other field holds its default is skipped.
    """

    marker: Marker
    points: Optional[np.ndarray] = None
    colors: Optional[np.ndarray] = None
    index: Optional[np.ndarray] = None
    plain: bool = False

    def rows(self, values: Optional[np.ndarray], width: int, dtype: str) -> np.ndarray:
        """``values`` picked by ``index`` as a contiguous (K, width) array (empty for None)."""
        if values is None:
            return _EMPTY_ROWS[width]
        values = np.asarray(values, dtype=dtype)
        if self.index is None:
            return np.ascontiguousarray(values)
        # np.take: 3-10x faster than fancy indexing for these row gathers (a mesh's 2556
        # corners: 7.6 against 25 us for the points, 2.6 against 25 us for the colours).
        return np.take(values, self.index, axis=0)


#: The rows of an absent array, by width (points 3, colours 4).
_EMPTY_ROWS = {3: np.zeros((0, 3), "<f8"), 4: np.zeros((0, 4), "<f4")}


def _body(marker: Marker, offset: int) -> bytes:
    """CDR bytes of ``marker`` when it starts at payload offset ``offset`` (0 or 4 mod 8)."""
    if offset % 8 == 0:
        return serialize_message(marker)[4:]
    return serialize_message(MarkerArray(markers=[marker]))[8:]


#: (start offset mod 8, frame_id, ns, length without arrays) -> (points count offset, padding).
#: Only the two strings before ``points`` vary in size there, so the layout repeats per key.
_LAYOUTS: Dict[Tuple[int, str, str, int], Tuple[int, int]] = {}


def _layout(m: Marker, offset: int, empty: Any) -> Tuple[int, int]:
    """Where the ``points`` count sits in ``empty`` (bytes of ``m`` without arrays, starting at
    payload ``offset``) and the padding CDR puts before the first point there (``m`` is a
    scratch message: its arrays are emptied)."""
    key = (offset % 8, m.header.frame_id, m.ns, len(empty))
    found = _LAYOUTS.get(key)
    if found is None:
        m.colors = []
        m.points = [Point(x=_SENTINEL, y=_SENTINEL, z=_SENTINEL)]
        one = _body(m, offset)
        m.points = []
        pad = len(one) - len(empty) - 24  # padding before the first point (0 or 4)
        data_at = one.find(_SENTINEL_BYTES)
        if data_at < 0 or pad not in (0, 4):
            raise RuntimeError("unexpected CDR layout of visualization_msgs/Marker")
        found = (data_at - pad - 4, pad)  # the points count, then the colors count
        if len(_LAYOUTS) > 256:
            _LAYOUTS.clear()
        _LAYOUTS[key] = found
    return found


#: The fixed-size fields in which markers of one layout differ, in the order of their
#: values in :class:`_Template` (dotted attribute path, struct format character).
_PATCHED: Tuple[Tuple[str, str], ...] = (
    ("header.stamp.sec", "i"), ("header.stamp.nanosec", "I"), ("id", "i"), ("type", "i"),
    ("action", "i"), ("pose.position.x", "d"), ("pose.position.y", "d"),
    ("pose.position.z", "d"), ("pose.orientation.x", "d"), ("pose.orientation.y", "d"),
    ("pose.orientation.z", "d"), ("pose.orientation.w", "d"), ("scale.x", "d"),
    ("scale.y", "d"), ("scale.z", "d"), ("color.r", "f"), ("color.g", "f"), ("color.b", "f"),
    ("color.a", "f"), ("lifetime.sec", "i"), ("lifetime.nanosec", "I"), ("frame_locked", "?"))
#: Two sets of values whose bytes differ everywhere (a field's place is where they differ).
_PROBE: Dict[str, Tuple[Any, Any]] = {
    "i": (0x11111111, 0x22222222), "I": (0x11111111, 0x22222222),
    "d": (struct.unpack("<d", b"\x11" * 8)[0], struct.unpack("<d", b"\x22" * 8)[0]),
    "f": (struct.unpack("<f", b"\x11" * 4)[0], struct.unpack("<f", b"\x22" * 4)[0]),
    "?": (False, True)}
#: Fields of this distribution's Marker besides the patched ones, the header and the arrays:
#: strings are part of a template's key, the others must hold their defaults.
_DEFAULT = Marker()
_OTHER = tuple(f for f in Marker.get_fields_and_field_types()
               if f not in ("header", "id", "type", "action", "pose", "scale", "color",
                            "lifetime", "frame_locked", "points", "colors"))
_STRINGS = tuple(f for f in _OTHER if isinstance(getattr(_DEFAULT, f), str))
_NON_STRINGS = tuple(f for f in _OTHER if f not in _STRINGS)
_strings = attrgetter(*_STRINGS) if _STRINGS else (lambda m: ())


def _set(m: Marker, path: str, value: Any) -> None:
    *owner, name = path.split(".")
    obj = m
    for part in owner:
        obj = getattr(obj, part)
    setattr(obj, name, value)


class _Template:
    """The serialization, without arrays, of the markers of one layout, and where its patched
    fields lie: runs of adjacent fields are written with one ``struct`` call each."""

    def __init__(self, m: Marker, offset: int) -> None:
        probe = Marker()
        probe.header.frame_id = m.header.frame_id
        for name in _STRINGS:
            setattr(probe, name, getattr(m, name))
        for path, fmt in _PATCHED:
            _set(probe, path, _PROBE[fmt][0])
        self.data = _body(probe, offset)
        places = []
        for path, fmt in _PATCHED:
            _set(probe, path, _PROBE[fmt][1])
            changed = _body(probe, offset)
            _set(probe, path, _PROBE[fmt][0])
            size = struct.calcsize("<" + fmt)
            at = next((k for k, (a, b) in enumerate(zip(self.data, changed)) if a != b), -1)
            if (len(changed) != len(self.data) or at < 0
                    or changed[at + size:] != self.data[at + size:]
                    or self.data[at:at + size] != struct.pack("<" + fmt, _PROBE[fmt][0])):
                raise RuntimeError(f"unexpected CDR layout of visualization_msgs/Marker.{path}")
            places.append((at, path, fmt))
        self.runs: List[Tuple[struct.Struct, int, Callable[[Marker], Any]]] = []
        start = 0
        for k in range(1, len(places) + 1):
            at, _, fmt = places[k - 1]
            if k < len(places) and places[k][0] == at + struct.calcsize("<" + fmt):
                continue  # the next field follows without padding: same run
            run = places[start:k]
            paths = [path for _, path, _ in run]
            self.runs.append((struct.Struct("<" + "".join(f for _, _, f in run)), run[0][0],
                              attrgetter(*paths) if len(paths) > 1
                              else (lambda m, g=attrgetter(paths[0]): (g(m),))))
            start = k

    def body(self, m: Marker) -> memoryview:
        """The bytes of ``m`` (arrays empty)."""
        buf = bytearray(self.data)
        for st, at, get in self.runs:
            st.pack_into(buf, at, *get(m))
        return memoryview(buf)


_TEMPLATES: Dict[Tuple[Any, ...], _Template] = {}


def _empty_body(m: Marker, offset: int, plain: bool = False) -> Any:
    """CDR bytes of ``m`` with empty arrays starting at payload ``offset``: from its layout's
    template when every field it does not patch is a string or at its default (taken as so
    with ``plain``: see :class:`MarkerPart`), else from rclpy (with ``m``'s arrays emptied)."""
    if plain or all(getattr(m, f) == getattr(_DEFAULT, f) for f in _NON_STRINGS):
        key = (offset % 8, m.header.frame_id, _strings(m))
        template = _TEMPLATES.get(key)
        if template is None:
            if len(_TEMPLATES) > 256:
                _TEMPLATES.clear()
            template = _TEMPLATES[key] = _Template(m, offset)
        return template.body(m)
    m.points = []
    m.colors = []
    return _body(m, offset)


def _spliced(part: MarkerPart, offset: int) -> List[Any]:
    """CDR pieces of a marker with array data, starting at payload ``offset``: bytes and the
    contiguous arrays themselves (joined once, with the whole message)."""
    m = part.marker
    empty = _empty_body(m, offset, part.plain)
    count_at, pad = _layout(m, offset, empty)
    pts = part.rows(part.points, 3, "<f8")
    cols = part.rows(part.colors, 4, "<f4")
    return [empty[:count_at],
            _U32.pack(len(pts)), b"\0" * (pad if len(pts) else 0), _raw(pts),
            _U32.pack(len(cols)), _raw(cols),
            empty[count_at + 8:]]


def _raw(rows: np.ndarray) -> Any:
    """The bytes of a contiguous array without a copy (an empty one as b"")."""
    return memoryview(rows.reshape(-1)).cast("B") if rows.size else b""


def encode_marker_array(parts: Sequence[MarkerPart]) -> bytes:
    """The serialized ``visualization_msgs/MarkerArray`` of ``parts``, ready to publish.

    A run of markers without arrays that starts at offset 4 (mod 8), such as the first markers,
    is serialized in one call. Markers with arrays whose layout has no template yet, or that
    set a field a template does not hold, get their ``points``/``colors`` emptied (they are
    scratch messages).
    """
    header = serialize_message(MarkerArray())[:4]  # encapsulation: byte order and format
    chunks: List[Any] = [header, _U32.pack(len(parts))]
    offset = 4  # payload bytes so far
    i = 0
    while i < len(parts):
        pad = -offset % 4  # a Marker starts with an int32
        if pad:
            chunks.append(b"\0" * pad)
            offset += pad
        part = parts[i]
        if part.points is not None or part.colors is not None:
            pieces = _spliced(part, offset)
            chunks.extend(pieces)
            offset += sum(len(x) for x in pieces)
            i += 1
            continue
        if offset % 8 == 4:
            run = i
            while run < len(parts) and parts[run].points is None and parts[run].colors is None:
                run += 1
            batch = MarkerArray(markers=[p.marker for p in parts[i:run]])
            body = serialize_message(batch)[8:]
            i = run
        else:
            body = _body(part.marker, offset)
            i += 1
        chunks.append(body)
        offset += len(body)
    return b"".join(chunks)


def point_msgs(xyz: np.ndarray) -> List[Point]:
    """(N, 3) metres -> N geometry_msgs/Point."""
    return [Point(x=x, y=y, z=z) for x, y, z in np.asarray(xyz, dtype=np.float64).tolist()]


def to_marker_array(parts: Sequence[MarkerPart]) -> MarkerArray:
    """The same markers as plain messages: one Point and one ColorRGBA per array row, shared
    by every place ``index`` repeats it."""
    out = MarkerArray()
    markers = []
    for part in parts:
        m = part.marker
        pick = (lambda objs: objs) if part.index is None else (
            lambda objs: [objs[i] for i in part.index.tolist()])
        if part.points is not None:
            m.points = pick(point_msgs(part.points))
        if part.colors is not None:
            m.colors = pick([ColorRGBA(r=r, g=g, b=b, a=a) for r, g, b, a
                             in np.asarray(part.colors, dtype=np.float32).tolist()])
        markers.append(m)
    out.markers = markers
    return out


def self_check() -> Tuple[bool, str]:
    """Encode a few markers (with and without arrays, indexed, empty, at both start offsets
    mod 8) and compare the decoded result with rclpy's own serialization of the same messages.

    Returns (passed, what differed or "ok").
    """
    def parts(shift: int) -> List[MarkerPart]:
        rng = np.random.default_rng(0)
        lead = Marker()
        lead.text = "s" * shift  # moves every later marker by ``shift`` bytes
        out = [MarkerPart(lead)]
        for i, (n, ns) in enumerate(((5, "a"), (0, "bb"), (3, "ccc"), (2, "dddd"))):
            m = Marker()
            m.header.frame_id = "f" * (i + 1)
            m.header.stamp.sec = 17 + i
            m.ns = ns
            m.id = i
            m.type = Marker.TRIANGLE_LIST if n else Marker.TEXT_VIEW_FACING
            m.pose.orientation.w = 1.0
            m.text = "x" * i
            pts = rng.normal(size=(n, 3)) if n else None
            cols = rng.random((n, 4)).astype(np.float32) if i % 2 == 0 and n else None
            out.append(MarkerPart(m, pts, cols))
        m = Marker()
        m.ns = "indexed"
        out.append(MarkerPart(m, rng.normal(size=(4, 3)), rng.random((4, 4)).astype(np.float32),
                              np.array([0, 1, 2, 2, 3, 0])))
        m = Marker()
        m.ns = "no points, two colours"
        out.append(MarkerPart(m, np.zeros((0, 3)), rng.random((2, 4)).astype(np.float32)))
        # Two more of one layout (the second from the first's template, declared plain), every
        # patched field set, and one with a field no template holds.
        for k in range(2):
            m = Marker()
            m.header.frame_id = "cam"
            m.header.stamp.sec, m.header.stamp.nanosec = 100 + k, 7 * k + 1
            m.ns, m.id, m.type, m.action = "same layout", -3 - k, Marker.LINE_LIST, k
            m.pose.position.x, m.pose.position.y, m.pose.position.z = rng.normal(size=3)
            m.pose.orientation.x, m.pose.orientation.w = 0.6, 0.8
            m.scale.x, m.scale.y, m.scale.z = rng.random(3)
            m.color.r, m.color.g, m.color.b, m.color.a = (float(v) for v in rng.random(4))
            m.lifetime.sec, m.lifetime.nanosec = k, 500_000_000
            m.frame_locked = bool(k)
            out.append(MarkerPart(m, rng.normal(size=(2 + k, 3)), plain=bool(k)))
        m = Marker()
        m.header.frame_id = "cam"
        m.ns = "same layout"
        m.mesh_use_embedded_materials = True
        out.append(MarkerPart(m, rng.normal(size=(2, 3))))
        return out

    for shift in (0, 4):  # markers with arrays starting at both offsets (mod 8)
        try:
            fast = deserialize_message(encode_marker_array(parts(shift)), MarkerArray)
        except RuntimeError as exc:  # a layout this module does not expect, or undecodable
            return False, f"markers could not be encoded from numpy: {exc}"
        slow = deserialize_message(serialize_message(to_marker_array(parts(shift))), MarkerArray)
        if fast != slow:
            return False, "decoded markers differ from rclpy's serialization"
    return True, "ok"
