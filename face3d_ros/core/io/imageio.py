"""Reading image files into RGB arrays with clear errors (OpenCV codecs)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


class ImageReadError(ValueError):
    """An image file that cannot be used; the message says why and what to do."""


def read_image(path: str | Path) -> np.ndarray:
    """(H, W, 3) RGB (uint8, or uint16 for 16-bit files) or (H, W, 4) RGBA from a file.

    Grayscale files come back as (H, W). Raises ImageReadError for a missing, empty,
    unreadable or zero-size file.
    """
    p = Path(path)
    if not p.is_file():
        raise ImageReadError(f"{p}: no such file")
    if p.stat().st_size == 0:
        raise ImageReadError(f"{p}: the file is empty")
    data = np.fromfile(p, dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ImageReadError(f"{p}: not a readable image (corrupt, truncated header or an "
                             "unsupported format; OpenCV reads PNG, JPEG, BMP, TIFF, WebP, ...)")
    if img.size == 0 or img.shape[0] == 0 or img.shape[1] == 0:
        raise ImageReadError(f"{p}: zero-size image")
    if img.ndim == 3 and img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    elif img.ndim == 3 and img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA)
    elif img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    return img
