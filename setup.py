"""ament_python build of the face3d_ros package (also installable with plain pip)."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "face3d_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    package_data={PACKAGE: ["core/pipeline/data/*"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
        (f"share/{PACKAGE}/rviz", glob("rviz/*.rviz")),
    ],
    install_requires=["setuptools", "numpy", "torch", "opencv-python-headless", "scipy", "tflite",
                      "pyyaml", "rosbags", "mcap", "matplotlib", "trimesh"],
    zip_safe=True,
    maintainer="face3d maintainers",
    maintainer_email="face3d@example.com",
    description="Per-face 3D meshes, landmarks, head pose, gaze and expressions for ROS 2.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "face3d_node = face3d_ros.ros.node:main",
            "face3d_people = face3d_ros.ros.people_node:main",
            "face3d-fetch-models = face3d_ros.tools.fetch_models:main",
            "face3d-infer = face3d_ros.tools.infer:main",
            "face3d-bench = face3d_ros.tools.bench:main",
            "face3d-demo = face3d_ros.tools.demo:main",
            "face3d-eval = face3d_ros.tools.eval:main",
            "face3d-bag-make = face3d_ros.tools.bag_make:main",
            "face3d-enroll = face3d_ros.tools.enroll:main",
            "face3d-express = face3d_ros.tools.express:main",
            "face3d-accuracy = face3d_ros.tools.accuracy:main",
            "face3d-recon-accuracy = face3d_ros.tools.recon_accuracy:main",
        ],
    },
)
