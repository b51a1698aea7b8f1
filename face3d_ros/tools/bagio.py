"""Reading and writing ROS 2 bags without a ROS install (the ``rosbags`` library).

Both rosbag2 storage formats are handled: ``mcap`` and ``sqlite3``, as a bag folder (with
``metadata.yaml``) or a bare ``.mcap`` / ``.db3`` file. The face3d message types are registered
from their ``.msg`` text, so results bags carry ``face3d_msgs/msg/Face3DArray`` that RViz,
Foxglove and ``ros2 bag`` read like any other type.

Damaged bags: when a bag cannot be opened (truncated file, missing footer, malformed database)
or breaks while being read, :class:`BagReader` falls back to reading the storage file record by
record and yields every message stored before the damage; :attr:`BagReader.damage` then says
what is wrong. Nothing here imports rclpy.

One module (over 400 lines): reading (with the damaged-bag recovery) and writing share the
type store and the message builders; every bag tool imports just this.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import struct
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from face3d_ros.core.io.face_fields import frame_fields
from face3d_ros.core.types import CameraIntrinsics, FrameResult
from face3d_ros.ros.image_codec import compressed_msg_to_rgb, image_msg_to_rgb

STORAGES = ("mcap", "sqlite3")
IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
IMAGE_TYPES = (IMAGE_TYPE, COMPRESSED_TYPE)
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"
POSE_TYPE = "geometry_msgs/msg/PoseStamped"
VECTOR_TYPE = "geometry_msgs/msg/Vector3Stamped"
FACE_ARRAY_TYPE = "face3d_msgs/msg/Face3DArray"
MARKER_ARRAY_TYPE = "visualization_msgs/msg/MarkerArray"

_STORAGE_SUFFIX = {".mcap": "mcap", ".db3": "sqlite3"}


class BagError(RuntimeError):
    """A bag that cannot be used; the message says why and what to do."""


@dataclass(frozen=True)
class TopicInfo:
    """One topic of a bag: name, message type (``pkg/msg/Type``) and message count."""

    name: str
    msgtype: str
    count: int


# -- message types ------------------------------------------------------------------------


def msg_dir() -> Path:
    """Folder with the face3d_msgs ``.msg`` files (installed share/ or the source tree)."""
    candidates = []
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        if prefix:
            candidates.append(Path(prefix) / "share" / "face3d_msgs" / "msg")
    candidates.append(Path(__file__).resolve().parents[2] / "face3d_msgs" / "msg")
    for cand in candidates:
        if (cand / "Face3DArray.msg").is_file():
            return cand
    raise BagError("face3d_msgs/msg/*.msg not found (looked in "
                   f"{', '.join(str(c) for c in candidates)}); run from the source tree or "
                   "source scripts/env.sh")


@lru_cache(maxsize=1)
def typestore():
    """The rosbags type store: ROS 2 Kilted standard types plus the face3d_msgs messages."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_KILTED)
    types: Dict[str, tuple] = {}
    for path in sorted(msg_dir().glob("*.msg")):
        types.update(get_types_from_msg(path.read_text(), f"face3d_msgs/msg/{path.stem}"))
    store.register(types)
    return store


def deserialize(raw: bytes | memoryview, msgtype: str):
    """A rosbags message object from CDR bytes."""
    return typestore().deserialize_cdr(raw, msgtype)


def serialize(msg, msgtype: str) -> bytes:
    """CDR bytes of a rosbags message object."""
    return bytes(typestore().serialize_cdr(msg, msgtype))


# -- reading --------------------------------------------------------------------------------


def _storage_files(path: Path) -> Tuple[str, List[Path]]:
    """(storage id, files) of a bag folder or a bare storage file."""
    if path.is_file():
        storage = _STORAGE_SUFFIX.get(path.suffix)
        if storage is None:
            raise BagError(f"{path}: not a bag (expected a bag folder, a .mcap or a .db3 file)")
        return storage, [path]
    if not path.is_dir():
        raise BagError(f"{path}: no such bag (expected a bag folder, a .mcap or a .db3 file)")
    files = sorted(p for p in path.iterdir() if p.suffix in _STORAGE_SUFFIX)
    if not files:
        raise BagError(f"{path}: no .mcap or .db3 file in this folder; is it a ROS 2 bag?")
    kinds = {_STORAGE_SUFFIX[p.suffix] for p in files}
    if len(kinds) > 1:
        raise BagError(f"{path}: holds both .mcap and .db3 files; keep one bag per folder")
    return kinds.pop(), files


class BagReader:
    """Messages of a ROS 2 bag in time order, surviving damage.

    Use as a context manager. ``topics``: list of :class:`TopicInfo`; ``storage``: "mcap" or
    "sqlite3"; ``damage``: None, or a sentence saying what is wrong with the bag (set when it
    had to be read record by record, or broke while reading).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.storage, self._files = _storage_files(self.path)
        self.damage: Optional[str] = None
        self._reader = None
        self._tmp: Optional[tempfile.TemporaryDirectory] = None
        self._recovered: Optional[List[Tuple[str, str, int, bytes]]] = None
        from rosbags.rosbag2 import Reader

        target = self.path if self.path.is_dir() and (self.path / "metadata.yaml").is_file() \
            else self._files[0]
        try:
            reader = Reader(target)
            reader.open()
            self._reader = reader
            self.topics = [TopicInfo(c.topic, c.msgtype, c.msgcount) for c in reader.connections]
        except Exception as exc:  # any failure to open: try record by record
            self._recover(f"{exc}")

    # A bag that rosbags cannot open is read record by record up to the damage.
    def _recover(self, why: str) -> None:
        records: List[Tuple[str, str, int, bytes]] = []
        error = ""
        for f in self._files:
            try:
                if self.storage == "mcap":
                    _scan_mcap(f, records)
                else:
                    self._scan_sqlite(f, records)
            except _Damaged as exc:
                error = str(exc)
                break
        self._recovered = sorted(records, key=lambda r: r[2])
        counts: Dict[Tuple[str, str], int] = {}
        for topic, msgtype, _, _ in self._recovered:
            counts[(topic, msgtype)] = counts.get((topic, msgtype), 0) + 1
        self.topics = [TopicInfo(t, m, n) for (t, m), n in counts.items()]
        self.damage = (f"the bag is damaged ({why.rstrip('.')}"
                       + (f"; {error}" if error else "") + "): "
                       f"read {len(records)} messages stored before the damage")
        if not records:
            raise BagError(f"{self.path}: cannot read this bag: {why.rstrip('.')}"
                           + (f"; {error}" if error else "")
                           + ". Re-record or re-copy it (a truncated copy loses its index; "
                           "`ros2 bag reindex` can rebuild metadata.yaml)")

    def _scan_sqlite(self, f: Path, out: List[Tuple[str, str, int, bytes]]) -> None:
        """Rows of a (possibly truncated) rosbag2 sqlite3 file, in id order, up to the damage."""
        self._tmp = self._tmp or tempfile.TemporaryDirectory(prefix="face3d_bag_")
        copy = Path(self._tmp.name) / f.name
        shutil.copyfile(f, copy)
        with open(copy, "rb") as fh:
            head = fh.read(100)
        if len(head) < 100 or not head.startswith(b"SQLite format 3\x00"):
            raise _Damaged(f"{f.name} is not an SQLite database")
        page = struct.unpack(">H", head[16:18])[0]
        page = 65536 if page == 1 else page
        pages = struct.unpack(">I", head[28:32])[0]
        if copy.stat().st_size < page * pages:  # pad a truncated file to its declared size
            with open(copy, "r+b") as fh:
                fh.truncate(page * pages)
        con = sqlite3.connect(f"file:{copy}?mode=ro&immutable=1", uri=True)
        try:
            try:
                rows = con.execute("SELECT id, name, type FROM topics").fetchall()
            except sqlite3.DatabaseError as exc:
                raise _Damaged(f"{f.name}: {exc}") from None
            topics = {r[0]: (r[1], r[2]) for r in rows}
            i = 0
            while True:  # rosbag2 numbers messages 1, 2, ... in the order they were written
                i += 1
                try:
                    row = con.execute("SELECT topic_id, timestamp, data FROM messages "
                                      "WHERE id = ?", (i,)).fetchone()
                except sqlite3.DatabaseError as exc:
                    raise _Damaged(f"{f.name}: {exc} at message {i}") from None
                if row is None:
                    break
                if row[0] in topics:
                    out.append((*topics[row[0]], int(row[1]), bytes(row[2])))
        finally:
            con.close()

    def messages(self, topics: Optional[Sequence[str]] = None
                 ) -> Iterator[Tuple[str, str, int, bytes]]:
        """(topic, msgtype, log time ns, CDR bytes) in time order, for ``topics`` (all if None).

        A bag that breaks while being read stops the iteration and sets :attr:`damage`.
        """
        wanted = None if topics is None else set(topics)
        if self._recovered is not None:
            for rec in self._recovered:
                if wanted is None or rec[0] in wanted:
                    yield rec
            return
        conns = [c for c in self._reader.connections if wanted is None or c.topic in wanted]
        n = 0
        try:
            for conn, t_ns, raw in self._reader.messages(connections=conns):
                n += 1
                yield conn.topic, conn.msgtype, int(t_ns), raw
        except Exception as exc:  # corrupt record, CRC mismatch, malformed page, ...
            self.damage = (f"the bag is damaged ({exc}): read {n} messages stored before "
                           "the damage")

    def close(self) -> None:
        """Close the storage files and remove temporary copies."""
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> "BagReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Damaged(Exception):
    pass


def _scan_mcap(f: Path, out: List[Tuple[str, str, int, bytes]]) -> None:
    """Messages of a (possibly truncated) MCAP file, record by record, up to the damage."""
    from mcap.records import Channel, Message, Schema
    from mcap.stream_reader import StreamReader

    schemas: Dict[int, str] = {}
    channels: Dict[int, Tuple[str, str]] = {}
    with open(f, "rb") as fh:
        try:
            for rec in StreamReader(fh, skip_magic=False).records:
                if isinstance(rec, Schema):
                    schemas[rec.id] = rec.name
                elif isinstance(rec, Channel):
                    channels[rec.id] = (rec.topic, schemas.get(rec.schema_id, ""))
                elif isinstance(rec, Message) and rec.channel_id in channels:
                    out.append((*channels[rec.channel_id], int(rec.log_time), bytes(rec.data)))
        except Exception as exc:  # EndOfFile, bad CRC, bad record: the damage
            raise _Damaged(f"{f.name} ends or breaks after {fh.tell()} bytes "
                           f"({type(exc).__name__}{': ' + str(exc) if str(exc) else ''})") \
                from None


def pick_image_topic(topics: Sequence[TopicInfo], requested: Optional[str] = None) -> TopicInfo:
    """The image topic to evaluate: ``requested``, or the only Image/CompressedImage topic.

    Raises BagError listing the image topics when there is none, several (pass ``--topic``)
    or the requested one is missing or not an image.
    """
    images = [t for t in topics if t.msgtype in IMAGE_TYPES]
    listing = ", ".join(f"{t.name} ({t.msgtype.rsplit('/', 1)[-1]}, {t.count} msgs)"
                        for t in images) or "none"
    if requested is not None:
        for t in topics:
            if t.name == requested:
                if t.msgtype not in IMAGE_TYPES:
                    raise BagError(f"topic {requested} is a {t.msgtype}, not an image; image "
                                   f"topics: {listing}")
                return t
        raise BagError(f"topic {requested} is not in the bag; image topics: {listing}")
    if not images:
        raise BagError("the bag has no sensor_msgs/Image or CompressedImage topic; topics: "
                       + ", ".join(f"{t.name} ({t.msgtype})" for t in topics))
    if len(images) > 1:
        raise BagError(f"the bag has {len(images)} image topics: {listing}; choose one with "
                       "--topic")
    return images[0]


# -- message <-> numpy ----------------------------------------------------------------------


def image_to_rgb(msg, msgtype: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB from a rosbags Image or CompressedImage message, decoded like the
    node decodes its input (``face3d_ros.ros.image_codec``).

    Raises ImageFormatError (a ValueError) naming the problem (unsupported encoding, wrong
    data length, undecodable).
    """
    if msgtype == COMPRESSED_TYPE:
        return compressed_msg_to_rgb(msg)
    return image_msg_to_rgb(msg)


def stamp_ns(msg) -> int:
    """Header stamp of a rosbags message, nanoseconds."""
    return int(msg.header.stamp.sec) * 10**9 + int(msg.header.stamp.nanosec)


def _header(stamp: int, frame_id: str):
    t = typestore().types
    return t["std_msgs/msg/Header"](
        stamp=t["builtin_interfaces/msg/Time"](sec=int(stamp // 10**9),
                                               nanosec=int(stamp % 10**9)),
        frame_id=frame_id)


def image_msg(rgb: np.ndarray, stamp: int, frame_id: str, compressed: bool = False):
    """A rosbags ``rgb8`` Image (or JPEG CompressedImage) of (H, W, 3) uint8 RGB, stamp in ns."""
    t = typestore().types
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    if compressed:
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_QUALITY, 95])
        if not ok:
            raise ValueError("JPEG encoding failed")
        return t[COMPRESSED_TYPE](header=_header(stamp, frame_id), format="rgb8; jpeg "
                                  "compressed bgr8", data=buf.reshape(-1))
    h, w = rgb.shape[:2]
    return t[IMAGE_TYPE](header=_header(stamp, frame_id), height=h, width=w, encoding="rgb8",
                         is_bigendian=0, step=w * 3, data=rgb.reshape(-1))


def camera_info_msg(intr: CameraIntrinsics, stamp: int, frame_id: str):
    """A rosbags CameraInfo (plumb_bob, no distortion) of pinhole intrinsics."""
    t = typestore().types
    k = np.array([intr.fx, 0, intr.cx, 0, intr.fy, intr.cy, 0, 0, 1], dtype=np.float64)
    p = np.array([intr.fx, 0, intr.cx, 0, 0, intr.fy, intr.cy, 0, 0, 0, 1, 0], dtype=np.float64)
    roi_type = t["sensor_msgs/msg/RegionOfInterest"]
    roi = roi_type(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    return t[CAMERA_INFO_TYPE](header=_header(stamp, frame_id), height=intr.height,
                               width=intr.width, distortion_model="plumb_bob",
                               d=np.zeros(5), k=k, r=np.eye(3).reshape(-1), p=p, binning_x=0,
                               binning_y=0, roi=roi)


def _quat_xyzw(rotation: np.ndarray) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_matrix(np.asarray(rotation, dtype=np.float64)).as_quat()


def pose_stamped_msg(rotation: np.ndarray, translation: np.ndarray, stamp: int, frame_id: str):
    """A rosbags PoseStamped: (3, 3) camera_R_face and (3,) metres in the camera frame."""
    t = typestore().types
    q = _quat_xyzw(rotation)
    p = np.asarray(translation, dtype=np.float64)
    pose = t["geometry_msgs/msg/Pose"](
        position=t["geometry_msgs/msg/Point"](x=p[0], y=p[1], z=p[2]),
        orientation=t["geometry_msgs/msg/Quaternion"](x=q[0], y=q[1], z=q[2], w=q[3]))
    return t[POSE_TYPE](header=_header(stamp, frame_id), pose=pose)


def vector3_stamped_msg(vector: np.ndarray, stamp: int, frame_id: str):
    """A rosbags Vector3Stamped (a gaze direction: unit vector in the camera frame)."""
    t = typestore().types
    v = np.asarray(vector, dtype=np.float64)
    return t[VECTOR_TYPE](header=_header(stamp, frame_id),
                          vector=t["geometry_msgs/msg/Vector3"](x=v[0], y=v[1], z=v[2]))


def pose_from_msg(msg) -> Tuple[np.ndarray, np.ndarray]:
    """((3, 3) rotation, (3,) translation) of a rosbags PoseStamped."""
    from scipy.spatial.transform import Rotation

    o, p = msg.pose.orientation, msg.pose.position
    rot = Rotation.from_quat([o.x, o.y, o.z, o.w]).as_matrix()
    return rot, np.array([p.x, p.y, p.z])


def build(msgtype: str, fields: Optional[dict] = None):
    """A rosbags message of ``msgtype`` from nested field dicts (``core.io.face_fields``); every
    field the dict leaves out gets its default (zero, empty, a default nested message).

    Written here because rosbags builds a message only from all of its fields: this walks
    the type store's field definitions once per call.
    """
    from rosbags.typesys.store import Nodetype

    store = typestore()
    fields = fields or {}
    _, defs = store.fielddefs[msgtype]
    kwargs = {}
    for name, (kind, spec) in defs:
        value = fields.get(name)
        if kind == Nodetype.NAME:
            kwargs[name] = build(spec, value)
        elif kind == Nodetype.BASE:
            kwargs[name] = value if value is not None else _default(spec[0])
        else:  # ARRAY (fixed size) or SEQUENCE
            (sub_kind, sub_spec), size = spec
            if sub_kind == Nodetype.NAME:
                kwargs[name] = [build(sub_spec, v) for v in (value or [])]
            elif sub_spec[0] == "string":
                kwargs[name] = list(value or [])
            else:
                dtype = _NUMPY_TYPES[sub_spec[0]]
                arr = (np.zeros(size if kind == Nodetype.ARRAY else 0, dtype) if value is None
                       else np.asarray(value, dtype=dtype).reshape(-1))
                kwargs[name] = arr
    return store.types[msgtype](**kwargs)


_NUMPY_TYPES = {"bool": np.bool_, "byte": np.uint8, "char": np.uint8, "int8": np.int8,
                "uint8": np.uint8, "int16": np.int16, "uint16": np.uint16,
                "int32": np.int32, "uint32": np.uint32, "int64": np.int64,
                "uint64": np.uint64, "float32": np.float32, "float64": np.float64}


def _default(base: str):
    if base == "string":
        return ""
    if base == "bool":
        return False
    return 0.0 if base.startswith("float") else 0


def face_array_msg(frame: FrameResult, stamp: int, frame_id: str):
    """A rosbags ``face3d_msgs/Face3DArray`` of a frame: the fields the node publishes
    (``core.io.face_fields.frame_fields``), the header from ``stamp`` (ns) and ``frame_id``."""
    msg = build(FACE_ARRAY_TYPE, frame_fields(frame))
    msg.header = _header(stamp, frame_id)
    return msg


# -- writing --------------------------------------------------------------------------------


class BagWriter:
    """A new ROS 2 bag (folder) in ``mcap`` or ``sqlite3`` storage. Use as a context manager.

    overwrite: replace an existing bag folder at ``path`` (else BagError).
    """

    def __init__(self, path: str | Path, storage: str = "mcap", overwrite: bool = False) -> None:
        from rosbags.rosbag2 import StoragePlugin, Writer

        if storage not in STORAGES:
            raise BagError(f"storage must be one of {', '.join(STORAGES)}, got {storage!r}")
        self.path = Path(path)
        if self.path.exists():
            if not overwrite:
                raise BagError(f"{self.path} exists; remove it or choose another output path")
            shutil.rmtree(self.path) if self.path.is_dir() else self.path.unlink()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        self._writer = Writer(self.path, version=9, storage_plugin=plugin)
        self._writer.open()
        self._conns: Dict[str, object] = {}
        self.count = 0

    def _conn(self, topic: str, msgtype: str):
        conn = self._conns.get(topic)
        if conn is None:
            conn = self._writer.add_connection(topic, msgtype, typestore=typestore())
            self._conns[topic] = conn
        elif conn.msgtype != msgtype:
            raise BagError(f"topic {topic} already has type {conn.msgtype}, not {msgtype}")
        return conn

    def write(self, topic: str, msgtype: str, t_ns: int, msg) -> None:
        """Serialize a rosbags message and store it at log time ``t_ns``."""
        self.write_raw(topic, msgtype, t_ns, serialize(msg, msgtype))

    def write_raw(self, topic: str, msgtype: str, t_ns: int, raw: bytes) -> None:
        """Store CDR bytes (e.g. received from DDS) at log time ``t_ns``."""
        self._writer.write(self._conn(topic, msgtype), int(t_ns), raw)
        self.count += 1

    def close(self) -> None:
        """Finish the bag (index, metadata.yaml)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> "BagWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
