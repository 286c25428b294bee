"""Image files: the one reader every part uses, so a bad file fails the same clear way.

Only a regular file is read (a FIFO would block the reader for ever, a device never end), and a
picture smaller than MIN_PICTURE_SIDE on a side is too small to judge: `judgeable` says so, for
`mpox classify`, the check page and the kiosk's photo check alike.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import cv2
import numpy as np

from edge.errors import ImageError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
MAX_IMAGE_BYTES = 200_000_000  # no photo comes near; a bigger "image" would only fill memory
# A picture this small, blown up to the model's input (224), shows no lesion: its "answer" would
# be the model's guess about a blur. The kiosk's gate never classifies such a region either.
MIN_PICTURE_SIDE = 32

FILE_KINDS = {stat.S_ISDIR: "a folder", stat.S_ISFIFO: "a FIFO", stat.S_ISCHR: "a character device",
              stat.S_ISBLK: "a block device", stat.S_ISSOCK: "a socket"}


def _not_regular(path: str | Path, mode: int) -> ImageError:
    kind = next((name for test, name in FILE_KINDS.items() if test(mode)), "not a regular file")
    return ImageError(f"{path}: {kind}, not an image file: refused")


def read_image(path: str | Path) -> np.ndarray:
    """An image file -> uint8 BGR, or ImageError saying why not. Anything but a regular file is
    refused before it is opened (and opened without blocking, in case it changed since)."""
    try:
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode):
            raise _not_regular(path, mode)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise _not_regular(path, st.st_mode)
            if st.st_size > MAX_IMAGE_BYTES:
                raise ImageError(f"{path}: {st.st_size / 1e6:.0f} MB, over the {MAX_IMAGE_BYTES / 1e6:.0f} MB of any photo: refused")
            raw = np.frombuffer(f.read(), np.uint8)
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
