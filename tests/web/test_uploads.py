"""Upload checks: size, type by content (not by name), pixel count before decoding."""

import struct

import cv2
import numpy as np
import pytest

from edge import MAX_IMAGE_PIXELS
from edge.web.uploads import Refusal, UploadRefused, check_upload, image_kind

MB = 1_000_000


def encoded(ext: str, shape=(40, 60, 3)) -> bytes:
    ok, data = cv2.imencode(ext, np.full(shape, 128, np.uint8))
    return data.tobytes()


@pytest.mark.parametrize("ext", [".jpg", ".png", ".webp", ".bmp"])
def test_photos_are_accepted(ext):
    image = check_upload(encoded(ext), 10 * MB, MAX_IMAGE_PIXELS)
    assert image.shape == (40, 60, 3) and image.dtype == np.uint8


def refusal(data: bytes, max_bytes: int = 10 * MB) -> Refusal:
    with pytest.raises(UploadRefused) as e:
        check_upload(data, max_bytes, MAX_IMAGE_PIXELS)
    return e.value.reason


def test_too_big_not_image_and_too_many_pixels_are_told_apart():
    assert refusal(encoded(".jpg"), max_bytes=100) == Refusal.TOO_BIG
    assert refusal(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj") == Refusal.NOT_IMAGE
    assert refusal(b"") == Refusal.NOT_IMAGE
    assert refusal(b"GIF89a" + bytes(100)) == Refusal.NOT_IMAGE
    assert refusal(encoded(".png", (8000, 8000, 3))) == Refusal.TOO_MANY_PIXELS  # a 64 Mpixel bomb in ~200 KB
    jpeg = bytearray(encoded(".jpg"))
    sof = jpeg.index(b"\xff\xc0")
    jpeg[sof + 5:sof + 9] = struct.pack(">HH", 60000, 60000)  # a header claiming 3.6 Gpixels
    assert refusal(bytes(jpeg)) == Refusal.TOO_MANY_PIXELS
    assert refusal(encoded(".jpg")[:200]) == Refusal.NOT_IMAGE  # cut short


def test_the_kind_comes_from_the_bytes():
    assert image_kind(encoded(".png")[:16]) == "png" and image_kind(encoded(".jpg")[:16]) == "jpeg"
    assert image_kind(b"%PDF-1.4") is None


@pytest.mark.parametrize("shape", [(1, 1, 3), (31, 400, 3), (400, 8, 3)])
def test_a_picture_too_small_to_judge_is_refused_not_labelled(shape):
    """A 1x1 photo blown up to the model's input shows nothing: no label, a 422 the page translates."""
    from edge.images import MIN_PICTURE_SIDE
    from edge.web.uploads import STATUS

    for ext in (".png", ".jpg"):
        with pytest.raises(UploadRefused) as e:
            check_upload(encoded(ext, shape), 10 * MB, MAX_IMAGE_PIXELS)
        assert e.value.reason == Refusal.TOO_SMALL and STATUS[e.value.reason] == 422
        assert f"{shape[1]}x{shape[0]}" in e.value.detail and "too small to judge" in e.value.detail
    assert check_upload(encoded(".png", (MIN_PICTURE_SIDE, MIN_PICTURE_SIDE, 3)), 10 * MB, MAX_IMAGE_PIXELS).shape[0] == 32
