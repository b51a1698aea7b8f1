"""Bag reading and writing without ROS (rosbags): both storages, face3d types, damaged bags."""

import subprocess
import sys

import cv2
import numpy as np
import pytest

from face3d_ros.core.types import CameraIntrinsics
from face3d_ros.ros.camera_info import camera_info_to_intrinsics
from face3d_ros.tools import bag_make, bagio

STORAGES = ("mcap", "sqlite3")


@pytest.fixture(scope="module")
def small_frames(astronaut_rgb, chelsea_rgb):
    """Four 320x240 frames of real photos (astronaut twice, chelsea twice)."""
    a = bag_make.letterbox(astronaut_rgb, 320, 240)
    c = cv2.resize(chelsea_rgb, (320, 240))
    return [a, a, c, c]


def _images(path, topic=bag_make.DEFAULT_TOPIC):
    with bagio.BagReader(path) as r:
        out = [bagio.image_to_rgb(bagio.deserialize(raw, t), t)
               for _, t, _, raw in r.messages([topic])]
        return out, r.damage, r.storage


@pytest.mark.parametrize("storage", STORAGES)
def test_round_trip_images_camera_info_truth(tmp_path, small_frames, storage):
    intr = CameraIntrinsics(300.0, 300.0, 160.0, 120.0, 320, 240)
    truth = [bag_make.Truth(np.eye(3), np.array([0.0, 0.0, 1.0]), np.array([0.0, 0.0, -1.0]))
             ] * len(small_frames)
    n = bag_make.write_bag(tmp_path / "b", small_frames, 5.0, storage, intrinsics=intr,
                           truth=truth)
    assert n == 4
    images, damage, kind = _images(tmp_path / "b")
    assert damage is None and kind == storage
    assert len(images) == 4 and all(np.array_equal(a, b) for a, b in zip(images, small_frames))
    with bagio.BagReader(tmp_path / "b") as r:
        topics = {t.name: (t.msgtype, t.count) for t in r.topics}
        assert topics[bag_make.DEFAULT_INFO_TOPIC] == (bagio.CAMERA_INFO_TYPE, 4)
        assert topics[bag_make.TRUTH_POSE_TOPIC] == (bagio.POSE_TYPE, 4)
        stamps = []
        for topic, t, log_ns, raw in r.messages([bag_make.DEFAULT_INFO_TOPIC,
                                                 bag_make.TRUTH_POSE_TOPIC]):
            msg = bagio.deserialize(raw, t)
            stamps.append(bagio.stamp_ns(msg))
            assert bagio.stamp_ns(msg) == log_ns
            if t == bagio.CAMERA_INFO_TYPE:
                # the node's own camera_info policy reads the rosbags message too
                got, problem = camera_info_to_intrinsics(msg, 320, 240)
                assert problem is None and got == intr
            else:
                rot, pos = bagio.pose_from_msg(msg)
                assert np.allclose(rot, np.eye(3)) and np.allclose(pos, [0, 0, 1])
        assert sorted(set(stamps))[1] - sorted(set(stamps))[0] == 200_000_000  # 5 Hz


def test_compressed_images_and_bare_storage_file(tmp_path, small_frames):
    bag_make.write_bag(tmp_path / "c", small_frames[:2], compressed=True)
    with bagio.BagReader(tmp_path / "c" / "c.mcap") as r:  # the file, without metadata.yaml
        (topic,) = r.topics
        assert topic.msgtype == bagio.COMPRESSED_TYPE and topic.name.endswith("/compressed")
    images, _, _ = _images(tmp_path / "c", topic.name)
    assert len(images) == 2
    assert np.abs(images[0].astype(int) - small_frames[0]).mean() < 3.0  # JPEG, quality 95


def test_face_array_type_registered_from_msg_text(tmp_path):
    store = bagio.typestore()
    assert bagio.FACE_ARRAY_TYPE in store.types
    assert store.types["face3d_msgs/msg/Face3D"].NUM_LANDMARKS == 478


def test_pick_image_topic_lists_choices():
    topics = [bagio.TopicInfo("/left/image", bagio.IMAGE_TYPE, 3),
              bagio.TopicInfo("/right/image/compressed", bagio.COMPRESSED_TYPE, 3),
              bagio.TopicInfo("/info", bagio.CAMERA_INFO_TYPE, 3)]
    with pytest.raises(bagio.BagError, match="2 image topics.*/left/image.*/right/image"):
        bagio.pick_image_topic(topics)
    assert bagio.pick_image_topic(topics, "/left/image").name == "/left/image"
    with pytest.raises(bagio.BagError, match="not an image"):
        bagio.pick_image_topic(topics, "/info")
    with pytest.raises(bagio.BagError, match="no sensor_msgs/Image"):
        bagio.pick_image_topic(topics[2:])


@pytest.mark.parametrize("storage", STORAGES)
def test_truncated_bag_keeps_messages_before_the_damage(tmp_path, small_frames, storage):
    frames = small_frames * 3  # 12 frames of 230 kB
    bag_make.write_bag(tmp_path / "t", frames, storage=storage)
    (data,) = [p for p in (tmp_path / "t").iterdir() if p.suffix in (".mcap", ".db3")]
    size = data.stat().st_size
    with open(data, "r+b") as f:
        f.truncate(int(size * 0.6))
    images, damage, _ = _images(tmp_path / "t")
    assert damage is not None and "damaged" in damage
    assert 2 <= len(images) < len(frames)
    assert all(np.array_equal(a, b) for a, b in zip(images, frames))


def test_garbage_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "x.mcap"
    bad.write_bytes(b"not a bag at all" * 10)
    with pytest.raises(bagio.BagError, match="cannot read this bag"):
        bagio.BagReader(bad)
    with pytest.raises(bagio.BagError, match="no such bag"):
        bagio.BagReader(tmp_path / "missing")


def test_bag_make_cli_from_images_and_video(tmp_path, astronaut_rgb, chelsea_rgb):
    for i, img in enumerate((astronaut_rgb, chelsea_rgb)):
        cv2.imwrite(str(tmp_path / f"{i}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    (tmp_path / "cam.yaml").write_text(
        "image_width: 512\nimage_height: 512\ncamera_matrix:\n  rows: 3\n  cols: 3\n"
        "  data: [400, 0, 256, 0, 400, 256, 0, 0, 1]\n")
    video = tmp_path / "v.avi"
    vw = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5, (320, 240))
    for _ in range(3):
        vw.write(cv2.cvtColor(cv2.resize(chelsea_rgb, (320, 240)), cv2.COLOR_RGB2BGR))
    vw.release()
    cmd = [sys.executable, "-m", "face3d_ros.tools.bag_make"]
    r = subprocess.run(cmd + [str(tmp_path / "0.png"), str(tmp_path / "0.png"), "-o",
                              str(tmp_path / "img_bag"), "--camera-info",
                              str(tmp_path / "cam.yaml"), "--storage", "sqlite3"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    images, _, kind = _images(tmp_path / "img_bag")
    assert kind == "sqlite3" and len(images) == 2 and np.array_equal(images[0], astronaut_rgb)
    r = subprocess.run(cmd + [str(video), "-o", str(tmp_path / "vid_bag"), "--rate", "5"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert len(_images(tmp_path / "vid_bag")[0]) == 3
    r = subprocess.run(cmd + [str(tmp_path / "nope.png"), "-o", str(tmp_path / "z")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "no such file" in r.stderr
