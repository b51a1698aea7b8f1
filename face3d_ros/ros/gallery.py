"""Enrolled people of the people node: model files, person ids, re-identification, the
``people`` message and the gallery markers.

A pure helper (messages, no node, no spinning), tested without ROS spinning.

Person ids: a recognised face is published on ``people`` (face3d_msgs/RecognisedPeople) with
its track id (``face_id``) and its person's id (``person_id``): two separate numbers, never
mixed in one field. The person id is the model file's ``face_id`` (:func:`person_id`), so it
stays the same across restarts: models the node enrols store their person id itself; a model
enrolled with ``face3d-enroll --id 7`` is person 7.

The gallery markers (:func:`gallery_markers`) show every enrolled model in one frame of its own
(``frame_id``, default ``face3d_enrolled``), side by side along -y, 0.25 m apart, each a
TRIANGLE_LIST coloured from its texture plus a TEXT marker with the name and id. RViz shows them
with that frame as the fixed frame (no TF needed), or anywhere once a static transform places
the frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
from face3d_msgs.msg import RecognisedPeople, RecognisedPerson
from geometry_msgs.msg import Point
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from face3d_ros.core.people.enrollment import face_frame_points
from face3d_ros.core.people.identity import Match, Reidentifier
from face3d_ros.core.people.model_io import FaceModel, ModelFileError, load_model, triangle_list
from face3d_ros.core.types import FrameResult

#: Largest person id (int32).
PERSON_ID_MAX = 2**31 - 1
NS_ENROLLED_MESH = "enrolled_mesh"
NS_ENROLLED_LABEL = "enrolled_label"
#: Spacing of the models in the gallery frame, metres.
GALLERY_SPACING_M = 0.25


def person_id(face_id: int) -> Optional[int]:
    """The person id of a model whose file holds ``face_id``: that id; None for -1 (no id)
    or one beyond int32."""
    if face_id < 0 or face_id > PERSON_ID_MAX:
        return None
    return int(face_id)


@dataclass(frozen=True)
class Person:
    """One enrolled person: published id, model, and the file it came from ("" when none)."""

    person_id: int
    model: FaceModel
    path: str = ""

    @property
    def name(self) -> str:
        """The model's name."""
        return self.model.name


def load_folder(folder: str | Path) -> Tuple[List[Person], List[str]]:
    """Every ``*.npz`` model in ``folder`` (sorted by name) and one problem text per bad file.

    A file that cannot be read, or whose id another file already has, is left out with a
    problem naming the file and the reason (the newer of two files with one id wins). A model
    without an id (-1) gets the next free id for this run only, with a problem saying so. A
    missing folder is no problem (nobody enrolled yet).
    """
    root = Path(folder).expanduser()
    if not root.is_dir():
        return [], []
    problems: List[str] = []
    loaded: List[Tuple[Path, FaceModel]] = []
    for path in sorted(root.glob("*.npz")):
        try:
            loaded.append((path, load_model(path)))
        except ModelFileError as exc:
            problems.append(f"skipped enrolled model {exc}")
    by_id: Dict[int, Tuple[Path, FaceModel]] = {}
    no_id: List[Tuple[Path, FaceModel]] = []
    for path, model in loaded:
        pid = person_id(model.face_id)
        if pid is None:
            no_id.append((path, model))
            continue
        old = by_id.get(pid)
        if old is not None:
            newer, older = ((path, old[0]) if path.stat().st_mtime >= old[0].stat().st_mtime
                            else (old[0], path))
            problems.append(f"skipped enrolled model {older}: person id {pid} is also in the "
                            f"newer {newer} (a re-enrolment); delete the older file")
            if newer == old[0]:
                continue
        by_id[pid] = (path, model)
    people = [Person(pid, m, str(p)) for pid, (p, m) in sorted(by_id.items())]
    for path, model in no_id:
        pid = next_person_id(people)
        problems.append(f"enrolled model {path} has no id (face_id -1): it is person {pid} "
                        "for this run only; enrol with an id (face3d-enroll --id N) to keep it")
        people.append(Person(pid, model, str(path)))
    return people, problems


def next_person_id(people: List[Person]) -> int:
    """The next free person id: one above the largest, from 1."""
    return max([p.person_id for p in people] + [0]) + 1


class Gallery:
    """The enrolled people of a node and the re-identification of its tracks.

    reidentifier: the core matcher (thresholds in ``core.people.identity``).
    """

    def __init__(self, reidentifier: Reidentifier) -> None:
        self.reid = reidentifier
        self._people: Dict[int, Person] = {}

    @property
    def people(self) -> List[Person]:
        """The enrolled people, by id."""
        return [self._people[k] for k in sorted(self._people)]

    def add(self, person: Person) -> None:
        """Add (or replace, same id) one person."""
        self._people[person.person_id] = person
        self.reid.add(person.person_id, person.name, person.model.vertices)

    def match_model(self, model: FaceModel) -> Match:
        """Whether a freshly enrolled model is somebody already enrolled (a re-enrolment)."""
        return self.reid.decide(model.vertices.astype(np.float64), self.reid.min_frames)

    def identify(self, model: FaceModel) -> Tuple[int, str, str]:
        """(person id, name, path of the model file it replaces or "") for a freshly fused
        model, before it is written: an enrolled person's own id, name and file when the model
        is them (a re-enrolment: the new model is written over their file), else the next free
        id and the name ``person<ID>``."""
        again = self.match_model(model)
        if again.known:
            old = self._people.get(again.person_id)
            return again.person_id, again.name, old.path if old is not None else ""
        pid = next_person_id(self.people)
        return pid, f"person{pid}", ""

    def recognise(self, frame: FrameResult,
                  alive: Optional[List[int]] = None) -> Dict[int, Match]:
        """Track id -> :class:`Match` of every recognised face of ``frame``.

        Each tracked face (track id >= 0) updates its track's running identity. When two faces
        of one frame match one person, the nearer keeps the person, the other is not listed.
        alive: track ids still tracked (briefly missed ones included); the others are forgotten.
        """
        matches: Dict[int, Match] = {}
        for i, face in enumerate(frame.faces):
            if face.track_id < 0:
                continue
            pose = face.head_pose
            m = self.reid.update(face.track_id, face_frame_points(face), pose.yaw, pose.pitch)
            if m.known:
                other = next((j for j, o in matches.items() if o.person_id == m.person_id),
                             None)
                if other is not None and matches[other].distance <= m.distance:
                    continue
                if other is not None:
                    del matches[other]
                matches[i] = m
        self.reid.prune(alive if alive is not None else
                        [f.track_id for f in frame.faces if f.track_id >= 0])
        return {frame.faces[i].track_id: m for i, m in sorted(matches.items())}


def match_confidence(distance: float, threshold: float) -> float:
    """Confidence in [0, 1] of a match at shape ``distance``: 1 - distance / threshold."""
    if not (np.isfinite(distance) and threshold > 0.0):
        return 0.0
    return float(np.clip(1.0 - float(distance) / float(threshold), 0.0, 1.0))


def people_msg(header: Header, matches: Dict[int, Match],
               threshold: float) -> RecognisedPeople:
    """``face3d_msgs/RecognisedPeople`` of one faces message: its ``header`` and, per
    recognised face (track id -> :class:`Match`, as :meth:`Gallery.recognise` gives), the
    track id, person id, name, confidence (:func:`match_confidence`) and shape distance."""
    msg = RecognisedPeople(header=header)
    msg.people = [RecognisedPerson(face_id=int(tid), person_id=int(m.person_id),
                                   name=str(m.name),
                                   confidence=match_confidence(m.distance, threshold),
                                   shape_distance=float(m.distance))
                  for tid, m in sorted(matches.items())]
    return msg


def gallery_markers(people: List[Person], frame_id: str) -> MarkerArray:
    """Every person as a textured TRIANGLE_LIST and a TEXT label in ``frame_id`` (metres).

    A DELETEALL marker comes first, so the latched array replaces what RViz showed before.
    """
    header = Header(frame_id=frame_id)
    out = [Marker(header=header, action=Marker.DELETEALL)]
    for k, person in enumerate(people):
        offset = np.array([0.0, -GALLERY_SPACING_M * k, 0.0])
        points, colours = triangle_list(person.model)
        mesh = Marker(header=header, ns=NS_ENROLLED_MESH, id=person.person_id,
                      type=Marker.TRIANGLE_LIST, action=Marker.ADD)
        mesh.pose.orientation.w = 1.0
        mesh.scale.x = mesh.scale.y = mesh.scale.z = 1.0
        mesh.color = ColorRGBA(r=1.0, g=1.0, b=1.0, a=1.0)
        mesh.points = [Point(x=x, y=y, z=z) for x, y, z in
                       (points.astype(np.float64) + offset).tolist()]
        mesh.colors = [ColorRGBA(r=r, g=g, b=b, a=1.0) for r, g, b in
                       colours.astype(np.float64).tolist()]
        label = Marker(header=header, ns=NS_ENROLLED_LABEL, id=person.person_id,
                       type=Marker.TEXT_VIEW_FACING, action=Marker.ADD)
        top = float(person.model.display_vertices[:, 2].max())
        label.pose.position.x, label.pose.position.y = float(offset[0]), float(offset[1])
        label.pose.position.z = top + 0.03
        label.pose.orientation.w = 1.0
        label.scale.z = 0.025
        label.color = ColorRGBA(r=1.0, g=1.0, b=1.0, a=1.0)
        label.text = f"{person.name} (id {person.person_id})"
        out += [mesh, label]
    return MarkerArray(markers=out)
