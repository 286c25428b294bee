"""Image files: the one reader every part uses, so a bad file fails the same clear way."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edge.errors import ImageError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


def read_image(path: str | Path) -> np.ndarray:
    """An image file -> uint8 BGR, or ImageError saying why not."""
    try:
        raw = np.fromfile(str(path), np.uint8)
    except OSError as e:
        raise ImageError(f"{path}: {e.strerror or e}") from None
    return decode_image(raw, str(path))


def decode_image(raw: bytes | np.ndarray, name: str) -> np.ndarray:
    """Encoded image bytes (e.g. an upload) -> uint8 BGR, or ImageError saying why not. A header
    claiming more than edge.MAX_IMAGE_PIXELS pixels is refused before any pixel is decoded."""
    raw = np.frombuffer(raw, np.uint8) if isinstance(raw, (bytes, bytearray, memoryview)) else raw
    try:
        image = cv2.imdecode(raw, cv2.IMREAD_COLOR) if raw.size else None
    except cv2.error as e:  # e.g. a header claiming more pixels than OPENCV_IO_MAX_IMAGE_PIXELS
        raise ImageError(f"{name}: cannot be decoded ({str(e).strip().splitlines()[-1][:120]})") from None
    if image is None:
        raise ImageError(f"{name}: not a readable image")
    return image
