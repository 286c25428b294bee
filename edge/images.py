"""Image files: the one reader every part uses, so a bad file fails the same clear way.

Only a regular file is read (edge/files.py), and a picture smaller than MIN_PICTURE_SIDE on a
side is too small to judge: `judgeable` says so, for `mpox classify`, the check page and the
kiosk's photo check alike.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edge.errors import ImageError
from edge.files import read_regular

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
MAX_IMAGE_BYTES = 200_000_000  # no photo comes near; a bigger "image" would only fill memory
# A picture this small, blown up to the model's input (224), shows no lesion: its "answer" would
# be the model's guess about a blur. The kiosk's gate never classifies such a region either.
MIN_PICTURE_SIDE = 32

def read_image(path: str | Path) -> np.ndarray:
    """An image file -> uint8 BGR, or ImageError saying why not (anything but a regular file
    is refused unread: edge/files.py)."""
    try:
        raw = np.frombuffer(read_regular(path, MAX_IMAGE_BYTES, "an image file"), np.uint8)
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


class TooSmall(ImageError):
    """A readable picture too small to judge."""


def judgeable(image: np.ndarray, name: str) -> np.ndarray:
    """The image, or TooSmall when a side is under MIN_PICTURE_SIDE pixels."""
    h, w = image.shape[:2]
    if min(h, w) < MIN_PICTURE_SIDE:
        raise TooSmall(f"{name}: {w}x{h} pixels, too small to judge (at least {MIN_PICTURE_SIDE} on each side): no label")
    return image
