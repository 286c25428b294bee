"""What the check page accepts: a photo of at most `web.max_upload_mb`, whose first bytes say
it is JPEG, PNG, WebP or BMP (whatever its name or declared type), and that decodes within
edge.MAX_IMAGE_PIXELS, at least edge.images.MIN_PICTURE_SIDE on each side (smaller is too small
to judge). Anything else is a clear 4xx, before any pixel is decoded where the header already tells."""

from __future__ import annotations

from enum import Enum

import numpy as np

from edge.errors import ImageError
from edge.images import decode_image, judgeable


class Refusal(str, Enum):
    """Why an upload was refused: the page shows a translated sentence for each."""

    TOO_BIG = "too_big"  # 413
    NOT_IMAGE = "not_image"  # 415
    TOO_MANY_PIXELS = "too_many_pixels"  # 413
    TOO_SMALL = "too_small"  # 422


STATUS = {Refusal.TOO_BIG: 413, Refusal.NOT_IMAGE: 415, Refusal.TOO_MANY_PIXELS: 413, Refusal.TOO_SMALL: 422}


class UploadRefused(Exception):
    def __init__(self, reason: Refusal, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def image_kind(head: bytes) -> str | None:
    """The format the file's first bytes announce, or None for anything else (a PDF, text, HEIC...)."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head.startswith(b"BM"):
        return "bmp"
    return None


def png_pixels(data: bytes) -> int | None:
    """Width x height from a PNG's header (its first chunk), without decoding."""
    if len(data) >= 24 and data[12:16] == b"IHDR":
        return int.from_bytes(data[16:20], "big") * int.from_bytes(data[20:24], "big")
    return None


def too_big(max_bytes: int) -> UploadRefused:
    return UploadRefused(Refusal.TOO_BIG, f"the file is over {max_bytes / 1e6:g} MB")


def check_upload(data: bytes, max_bytes: int, max_pixels: int) -> np.ndarray:
    """The uploaded bytes -> uint8 BGR image, or UploadRefused saying why not."""
    if len(data) > max_bytes:
        raise too_big(max_bytes)
    kind = image_kind(data[:16])
    if kind is None:
        raise UploadRefused(Refusal.NOT_IMAGE, "not a JPEG, PNG, WebP or BMP image")
    pixels = png_pixels(data) if kind == "png" else None
    if pixels is not None and pixels > max_pixels:
        raise UploadRefused(Refusal.TOO_MANY_PIXELS, f"the picture claims {pixels:,} pixels; at most {max_pixels:,}")
    try:
        image = decode_image(data, f"uploaded {kind}")
    except ImageError as e:
        if "CV_IO_MAX_IMAGE" in str(e):  # OpenCV's own guard (edge.MAX_IMAGE_PIXELS) refused the header
            raise UploadRefused(Refusal.TOO_MANY_PIXELS, f"the picture has more than {max_pixels:,} pixels") from None
        raise UploadRefused(Refusal.NOT_IMAGE, str(e)) from None
    try:
        return judgeable(image, f"uploaded {kind}")
    except ImageError as e:
        raise UploadRefused(Refusal.TOO_SMALL, str(e)) from None
