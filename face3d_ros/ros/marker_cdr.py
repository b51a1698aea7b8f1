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

The bytes are published with ``Publisher.publish(bytes)``. :func:`self_check` compares the
decoded result with rclpy's own serialization of the same markers; the node uses this path only
when the check passes on its ROS installation, and plain messages otherwise.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

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
    """

    marker: Marker
    points: Optional[np.ndarray] = None
    colors: Optional[np.ndarray] = None
    index: Optional[np.ndarray] = None

    def rows(self, values: Optional[np.ndarray], width: int, dtype: str) -> np.ndarray:
        """``values`` picked by ``index`` as a contiguous (K, width) array (empty for None)."""
        if values is None:
            return np.zeros((0, width), dtype=dtype)
        values = np.asarray(values, dtype=dtype)
        return np.ascontiguousarray(values if self.index is None else values[self.index])


def _body(marker: Marker, offset: int) -> bytes:
    """CDR bytes of ``marker`` when it starts at payload offset ``offset`` (0 or 4 mod 8)."""
    if offset % 8 == 0:
        return serialize_message(marker)[4:]
    return serialize_message(MarkerArray(markers=[marker]))[8:]


#: (start offset mod 8, frame_id, ns, length without arrays) -> (points count offset, padding).
#: Only the two strings before ``points`` vary in size there, so the layout repeats per key.
_LAYOUTS: Dict[Tuple[int, str, str, int], Tuple[int, int]] = {}


def _layout(m: Marker, offset: int, empty: bytes) -> Tuple[int, int]:
    """Where the ``points`` count sits in ``empty`` (``m`` without arrays, starting at payload
    ``offset``) and the padding CDR puts before the first point there."""
    key = (offset % 8, m.header.frame_id, m.ns, len(empty))
    found = _LAYOUTS.get(key)
    if found is None:
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


def _spliced(part: MarkerPart, offset: int) -> bytes:
    """CDR bytes of a marker with array data, starting at payload ``offset``."""
    m = part.marker
    m.points = []
    m.colors = []
    empty = _body(m, offset)
    count_at, pad = _layout(m, offset, empty)
    pts = part.rows(part.points, 3, "<f8")
    cols = part.rows(part.colors, 4, "<f4")
    return b"".join((
        empty[:count_at],
        _U32.pack(len(pts)), b"\0" * (pad if len(pts) else 0), pts.tobytes(),
        _U32.pack(len(cols)), cols.tobytes(),
        empty[count_at + 8:],
    ))


def encode_marker_array(parts: Sequence[MarkerPart]) -> bytes:
    """The serialized ``visualization_msgs/MarkerArray`` of ``parts``, ready to publish.

    A run of markers without arrays that starts at offset 4 (mod 8), such as the first markers,
    is serialized in one call. Markers with arrays get their ``points``/``colors`` emptied
    (they are scratch messages).
    """
    header = serialize_message(MarkerArray())[:4]  # encapsulation: byte order and format
    chunks: List[bytes] = [header, _U32.pack(len(parts))]
    offset = 4  # payload bytes so far
    i = 0
    while i < len(parts):
        pad = -offset % 4  # a Marker starts with an int32
        if pad:
            chunks.append(b"\0" * pad)
            offset += pad
        part = parts[i]
        if part.points is not None or part.colors is not None:
            body = _spliced(part, offset)
            i += 1
        elif offset % 8 == 4:
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
