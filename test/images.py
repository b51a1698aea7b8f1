"""Image helpers shared by the detection and landmark tests."""

import matplotlib.image as mpimg
import numpy as np
import torch
from matplotlib import cbook


def as_tensor(rgb: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, H, W) float32 0..255."""
    return torch.from_numpy(np.array(rgb)).permute(2, 0, 1).float()


def hopper() -> np.ndarray:
    """Grace Hopper from matplotlib's sample data, (600, 512, 3) uint8 RGB."""
    with cbook.get_sample_data("grace_hopper.jpg") as f:
        return np.asarray(mpimg.imread(f, format="jpg"))
