"""Rebuild ``face3d_ros/core/pipeline/data/canonical_face.npz`` from registry-package portraits.

    python -m face3d_ros.tools.make_canonical [--out PATH] [--model-dir DIR]

The canonical face is the mean, left/right-symmetric metric shape of the mesh network's own
output on frontal portraits (scikit-image's astronaut, matplotlib's Grace Hopper), each
expressed in its anatomical face frame and scaled by its iris (see ``core.pipeline.canonical``).
Its
frame's pitch and its eyeball centres are then set from renders of the two real head models
in ``../shared/data/heads`` (``$FACE3D_HEADS_DIR``) with exact truth: the Lee Perry-Smith scan
and the facecap head at small head turns, and facecap with its eyes turned (gaze truth). The
facecap renders with turned eyes also measure the landmark networks' follow of the eyes
(``core.pipeline.canonical.follow_from_renders``; facecap's skin beyond the lids does not move
with its
eyes), which the eyeball centres are then placed without (``core.pipeline.geometry.eye_fit``):
across
the line of sight from the facing head, in depth from the head turned by ``DEPTH_HEAD_YAWS``.
Renders of both heads turned by ``DEFORM_POSES`` and ``FRAME_POSES`` measure how the mesh
network deforms a face with the direction it is seen from
(``core.pipeline.canonical.pose_deformation_from_renders``), which the head pose fit then allows
for. The expression neutral takes the mouth and brow measures from neutral faces
(``NEUTRAL_SOURCES``: the head scan facing the camera and the Grace Hopper portrait, with its
mirror image), the eye measures from the canonical face
(``core.pipeline.canonical.expression_neutral_from``).
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

import numpy as np

from face3d_ros.core.pipeline.canonical import (DATA_FILE, CanonicalFace, build_canonical,
                                                expression_neutral_from,
                                                eyeballs_from_truth, follow_from_renders,
                                                frame_pitch, pose_deformation_from_renders,
                                                save_canonical, with_frame)
from face3d_ros.core.config import EngineConfig
from face3d_ros.core.types import LEFT_IRIS_CENTER, RIGHT_IRIS_CENTER

SOURCES = ("shape: skimage.data.astronaut, matplotlib sample grace_hopper.jpg (and their mirror "
           "images); frame pitch, eyeball centres, gaze follow and pose deformation: renders of "
           "the Lee Perry-Smith head scan (CC BY 3.0) and the facecap head (Face Cap, Niels "
           "Jansson); expression neutral (mouth, brows): the head scan facing the camera and "
           "the Grace Hopper portrait")
#: The neutral faces of the expression neutral's mouth and brow measures: the Lee Perry-Smith
#: scan facing the camera (eyes closed, mouth relaxed) and the Grace Hopper portrait (and its
#: mirror image; ``portrait_images`` indices). The astronaut portrait smiles with her mouth
#: open: she is in the canonical shape, not here. The facecap head, on which face3d-accuracy
#: scores the expressions, is in neither.
NEUTRAL_PORTRAITS = (1, 3)

#: Head poses (yaw, pitch) of the frame calibration renders, degrees; both heads.
FRAME_POSES = [(y, p) for y in (-20, 0, 20) for p in (-15, 0, 15)]
#: Head poses (yaw, pitch, roll) of the pose deformation renders (with FRAME_POSES), degrees;
#: both heads. None of them is a pose of ``face3d-accuracy``'s head pose sweep (multiples of
#: 15 deg, +-70, +-80, +-85), which so measures poses the deformation was not measured at.
DEFORM_POSES = ([(y, 0, 0) for y in (-65, -55, -50, -40, -35, -25, -10, -5, 5, 10, 25, 35, 40,
                                     50, 55, 65)]
                + [(y, p, 0) for y in (-65, -50, 50, 65) for p in (-20, 20)]
                + [(y, 0, r) for y in (-65, -50, 50, 65) for r in (-30, 30)])
#: Eye rotations (yaw, pitch) of the eyeball calibration renders (facecap), degrees.
EYE_POSES = [(0, 0), (15, 0), (-15, 0), (0, 10), (0, -10)]
#: Eye rotations (yaw, pitch) of the gaze-follow renders (facecap facing the camera), degrees;
#: straight ahead first.
FOLLOW_EYE_POSES = [(0, 0)] + [(y, p) for y in (-20, 0, 20) for p in (-15, 0, 15)
                               if (y, p) != (0, 0)]
#: Head yaws (deg) of the renders that set the eyeball centres' depth (facecap, EYE_POSES):
#: seen from the front the depth does not show.
DEPTH_HEAD_YAWS = (-20, 20)
#: Outer eye-corner distance of the calibration renders, px (a face of about 220 px).
CALIBRATION_EYE_PX = 95.0


def portrait_images() -> List[np.ndarray]:
    """The frontal portraits (RGB uint8) and their mirror images."""
    import matplotlib.cbook
    from skimage import data

    from face3d_ros.core.io.imageio import read_image

    hopper = read_image(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    images = [data.astronaut(), hopper]
    return images + [np.ascontiguousarray(im[:, ::-1]) for im in images]


def _landmarks(engine, image: np.ndarray, refine: bool = False) -> np.ndarray:
    """(478, 3) px landmarks of the single face in ``image``, from its detection ROI (and,
    with ``refine``, once more from the ROI those landmarks place, as the tracker does). The
    engine detects on the whole image only (``min_face_px=0``): its detections are final
    without the face flag that verifies tile candidates."""
    from face3d_ros.core.pipeline.landmarks import roi_from_detection, roi_from_landmarks

    t = engine.to_tensor(image)
    dets = engine.detect([t])[0]
    if len(dets) != 1:
        raise RuntimeError(f"expected one face, found {len(dets)}")
    lm = engine.landmarks([t], [0], [roi_from_detection(dets[0])]).landmarks[0]
    if refine:
        lm = engine.landmarks([t], [0], [roi_from_landmarks(lm)]).landmarks[0]
    return lm.double().cpu().numpy()


def _fit_renders(engine, face: CanonicalFace, renders, landmarks=None):
    """(rotation, translation, scale) of the pose fit of ``face`` to each (image, truth), the
    last two in the truth's metric scale (``landmarks``: the renders' own, if already read)."""
    from face3d_ros.core.pipeline.geometry import pose_weights, solve_faces

    out = []
    if landmarks is None:
        landmarks = [_landmarks(engine, image, refine=True) for image, _ in renders]
    for lm, (image, truth) in zip(landmarks, renders):
        k = truth.intrinsics
        geo = solve_faces(lm[None], np.array([[k.fx, k.fy, k.cx, k.cy]]), face.vertices,
                          pose_weights(), face.eyeball_centres, engine.config.iris_diameter_m,
                          face.gaze_follow, face.pose_deformation)
        # The reconstruction is the scene scaled about the camera by its metric-scale error:
        # the depth of the irises' midpoint, read over true.
        iris = float(geo.points[0, [RIGHT_IRIS_CENTER, LEFT_IRIS_CENTER], 2].mean())
        k = iris / float(truth.iris_centres[:, 2].mean()) if truth.iris_centres.size else 1.0
        out.append((geo.rotation[0], geo.translation[0] / k,
                    float(geo.scale[0]) / k))
    return out


def _eye_fits(face: CanonicalFace, landmarks, renders):
    """Per (image, truth) render with its landmarks: the eye fit (``geometry.eye_fit``) of
    ``face`` as (rotation, translation, scale), the true eyeball centres taken into the lift's
    weak perspective, and the unit ray to the face; lengths in the truth's metric scale."""
    from face3d_ros.core.pipeline.geometry import (eye_fit, eye_open_confidence, eye_openness,
                                                   lift_to_metric, perspective_points,
                                                   pose_weights, weighted_umeyama)

    can, w = face.vertices.astype(np.float64), pose_weights()
    eyes = face.eyeball_centres.astype(np.float64)
    follow = face.gaze_follow.astype(np.float64)
    out = []
    for lm, (_, truth) in zip(landmarks, renders):
        k = truth.intrinsics
        unit = lift_to_metric(lm[None], np.array([[k.fx, k.fy, k.cx, k.cy]]), np.ones(1))
        rot, t, s, _ = weighted_umeyama(can, unit, w)
        open_conf = eye_open_confidence(eye_openness(unit))
        rot, t, s = eye_fit(unit, can, w, eyes, follow, open_conf, rot, t, s)
        anchor = unit[:, [RIGHT_IRIS_CENTER, LEFT_IRIS_CENTER]].mean(1)  # (1, 3)
        scale = float(anchor[0, 2]) / float(truth.iris_centres[:, 2].mean())
        centres = perspective_points(truth.eyeball_centres[None] * scale,
                                     anchor, inverse=True)[0] / scale
        out.append((rot[0], t[0] / scale, float(s[0]) / scale, centres,
                    anchor[0] / np.linalg.norm(anchor[0])))
    return out


def _eyeballs(face: CanonicalFace, landmarks, renders, depth_only=None, iterations: int = 1):
    """Eyeball centres of ``face`` from renders with gaze truth (see :func:`_eye_fits`): all
    three coordinates (facing renders: their depth then comes from the fit's depth, which
    does not matter there), or only the depth, across the line of sight (``depth_only``: the
    centres to keep y, z of). The eye fit depends on the centres it starts from (they place
    the straight-ahead iris): ``iterations`` rounds, each moving half way to the centres found
    (the plain rounds overshoot: on facecap they alternate between two heights 1 mm apart)."""
    eyes = face.eyeball_centres
    for _ in range(iterations):
        fits = _eye_fits(with_frame(face, 0.0, eyes), landmarks, renders)
        view = None if depth_only is None else np.stack([f[4] for f in fits])
        found = eyeballs_from_truth(*(np.stack([f[i] for f in fits]) for i in (3, 0, 1, 2)),
                                    view=view, depth_only=depth_only)
        eyes = found if iterations == 1 else 0.5 * (eyes + found)
    return eyes


def _renders(head_name: str, poses, heads: Optional[str]):
    """(image, truth) renders of a head at (head yaw, head pitch, eye yaw, eye pitch[, head
    roll]) poses."""
    from face3d_ros.tools import head_render as hr

    head = hr.load_head(head_name, heads)
    cam = hr.camera_from_fov(640, 480, 60.0)
    t = np.array([0.0, 0.0, hr.distance_for_eye_corners(head, CALIBRATION_EYE_PX, cam.fx)])
    for yaw, pitch, eye_yaw, eye_pitch, *roll in poses:
        eyes = {"eye_yaw": eye_yaw, "eye_pitch": eye_pitch} if head.has_eyes else {}
        rot = hr.camera_R_face_from_euler(yaw, pitch, roll[0] if roll else 0, t)
        yield hr.render(head, cam, rot, t, **eyes)


def _face_frame(engine, face: CanonicalFace, landmarks: np.ndarray, intrinsics) -> np.ndarray:
    """(478, 3) the landmarks (478, 3) px of one face in the frame of ``face``'s head pose fit
    (as the engine measures expressions: pose removed, scale divided out)."""
    from face3d_ros.core.pipeline.geometry import pose_weights, solve_faces

    k = intrinsics
    geo = solve_faces(landmarks[None], np.array([[k.fx, k.fy, k.cx, k.cy]]), face.vertices,
                      pose_weights(), face.eyeball_centres, engine.config.iris_diameter_m,
                      face.gaze_follow, face.pose_deformation)
    return geo.face_points[0]


def _expression_neutral(engine, face: CanonicalFace, frame_renders, frame_landmarks
                        ) -> np.ndarray:
    """The expression neutral of ``face`` (its own eye measures; the mouth and brows of the
    head scan facing the camera, among the frame renders, and of ``NEUTRAL_PORTRAITS``)."""
    from face3d_ros.core.types import CameraIntrinsics

    faces = [_face_frame(engine, face, lm, truth.intrinsics)
             for lm, (_, truth) in zip(frame_landmarks, frame_renders)
             if truth.head == "lps" and abs(truth.yaw) < 1e-6 and abs(truth.pitch) < 1e-6]
    if len(faces) != 1:
        raise RuntimeError(f"expected one frontal head scan render, found {len(faces)}")
    images = portrait_images()
    for i in NEUTRAL_PORTRAITS:
        h, w = images[i].shape[:2]
        faces.append(_face_frame(engine, face, _landmarks(engine, images[i], refine=True),
                                 CameraIntrinsics.from_fov(w, h, engine.config.default_hfov_deg)))
    return expression_neutral_from(face.vertices, np.stack(faces))


def _pose_deformation(engine, face: CanonicalFace, frame_renders, frame_landmarks,
                      heads: Optional[str]) -> np.ndarray:
    """The pose deformation of ``face`` (``core.pipeline.canonical.
    pose_deformation_from_renders``) from the frame renders and both heads at DEFORM_POSES (a
    render in which not exactly one face is found is left out)."""
    landmarks, intrinsics, rotations = list(frame_landmarks), [], []
    for _, truth in frame_renders:
        k = truth.intrinsics
        intrinsics.append([k.fx, k.fy, k.cx, k.cy])
        rotations.append(truth.camera_R_face)
    for name in ("lps", "facecap"):
        for image, truth in _renders(name, [(y, p, 0, 0, r) for y, p, r in DEFORM_POSES],
                                     heads):
            try:
                landmarks.append(_landmarks(engine, image, refine=True))
            except RuntimeError:
                continue
            k = truth.intrinsics
            intrinsics.append([k.fx, k.fy, k.cx, k.cy])
            rotations.append(truth.camera_R_face)
    return pose_deformation_from_renders(face, np.stack(landmarks), np.array(intrinsics),
                                         np.stack(rotations))


def make(model_dir: Optional[str] = None, heads: Optional[str] = None) -> CanonicalFace:
    """Build the canonical face: shape from the portraits; frame, gaze follow and eyeballs from
    renders."""
    from face3d_ros.core.pipeline.engine import FaceEngine

    engine = FaceEngine(EngineConfig(device="cpu", model_dir=model_dir, min_face_px=0))
    shape = build_canonical([_landmarks(engine, im) for im in portrait_images()])
    renders = [r for name in ("lps", "facecap")
               for r in _renders(name, [(y, p, 0, 0) for y, p in FRAME_POSES], heads)]
    frame_lm = [_landmarks(engine, image, refine=True) for image, _ in renders]
    fits = _fit_renders(engine, shape, renders, frame_lm)
    pitch = frame_pitch(np.stack([f[0] for f in fits]),
                        np.stack([truth.camera_R_face for _, truth in renders]))
    framed = with_frame(shape, pitch)

    follow_renders = list(_renders("facecap", [(0, 0, y, p) for y, p in FOLLOW_EYE_POSES],
                                   heads))
    follow_lm = [_landmarks(engine, im, refine=True) for im, _ in follow_renders]
    framed = with_frame(framed, 0.0, framed.eyeball_centres,
                        follow_from_renders(np.stack(follow_lm), shape.mirror))
    # Across the line of sight from the facing head (the straight-ahead render is shared)...
    front = [r for r, (y, p) in zip(zip(follow_lm, follow_renders), FOLLOW_EYE_POSES)
             if (y, p) in EYE_POSES]
    front += [(_landmarks(engine, r[0], refine=True), r) for r in _renders(
        "facecap", [(0, 0, y, p) for y, p in EYE_POSES if (y, p) not in FOLLOW_EYE_POSES],
        heads)]
    eyes = _eyeballs(framed, [f[0] for f in front], [f[1] for f in front], iterations=6)
    # ...then the depth from turned heads.
    turned = list(_renders("facecap", [(hy, 0, y, p) for hy in DEPTH_HEAD_YAWS
                                       for y, p in EYE_POSES], heads))
    turned_lm = [_landmarks(engine, im, refine=True) for im, _ in turned]
    eyes = _eyeballs(with_frame(framed, 0.0, eyes), turned_lm, turned, depth_only=eyes)
    deformation = _pose_deformation(engine, framed, renders, frame_lm, heads)
    final = with_frame(shape, pitch, eyes, framed.gaze_follow, deformation)
    return with_frame(final, 0.0, eyes, final.gaze_follow, deformation,
                      _expression_neutral(engine, final, renders, frame_lm))


def main(argv: Optional[List[str]] = None) -> int:
    """Rebuild and write the canonical face."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(DATA_FILE))
    p.add_argument("--model-dir")
    p.add_argument("--heads", help="folder of the head models (default ../shared/data/heads "
                   "or $FACE3D_HEADS_DIR)")
    args = p.parse_args(argv)
    face = make(args.model_dir, args.heads)
    save_canonical(face, args.out, SOURCES)
    width = face.vertices[:, 1].max() - face.vertices[:, 1].min()
    eyes = face.eyeball_centres * 1000.0
    print(f"wrote {args.out}: 478 points, face width {width * 100:.1f} cm, eyeball centres "
          f"(mm) right {eyes[0].round(1)} left {eyes[1].round(1)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
