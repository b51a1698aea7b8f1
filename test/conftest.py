"""Shared fixtures of the test suite."""

from pathlib import Path

import pytest

# -- model layer ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """The verified model folder ($FACE3D_MODEL_DIR or ~/.cache/face3d/models).

    Fails (never skips) with the error that names ``face3d-fetch-models`` when a file is
    missing or corrupt: the test command's setup step fetches the models first.
    """
    from face3d_ros.core import model_store

    for name in model_store.MODEL_KEYS:
        path = model_store.resolve_model(name, None)
    return path.parent
