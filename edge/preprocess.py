"""Camera frame -> model input: the Python face of the native kernels.

Uses the C++ extension `edge._native` when it is importable and an equivalent numpy/OpenCV
implementation otherwise (same signatures, same errors), logging once which one runs. The
numpy functions are also the reference the native kernels are tested against.

Geometry, shared by both: the ROI (x, y, w, h) is resized to size x size by exact area
averaging on each axis (antialiased when shrinking, pixel replication with blended edges when
growing), BGR becomes RGB, and the float variants apply (x/255 - mean) / std, CHW layout.
"""

from __future__ import annotations

import functools
import logging
import operator
from collections.abc import Sequence

import cv2
import numpy as np

try:
    from edge import _native
except ImportError:  # not built: the numpy path below does the same work, slower
    _native = None

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DARK_LEVEL = 10
BRIGHT_LEVEL = 245
MAX_SIZE = 4096
MAX_SIDE = 1 << 27  # the largest frame side and ROI area (pixels) the kernels take (bindings.cpp)
MAX_PIXELS = 1 << 27
MIN_STD = 1e-6  # a smaller std overflows float32
BACKEND = "native" if _native is not None else "numpy"

Roi = Sequence[int] | None


@functools.cache
def _announce() -> None:
    if _native is None:
        log.warning("preprocessing: numpy/OpenCV fallback (edge._native is not built)")
    else:
        log.info("preprocessing: native C++ kernels (edge._native)")


# --- checks shared by the numpy path (the native path makes the same ones in C++) ---------

def _check_uint8(frame: np.ndarray) -> None:
    if not isinstance(frame, np.ndarray):
        raise ValueError(f"frame must be a uint8 numpy array, got {type(frame).__name__}")
    if frame.dtype != np.uint8:
        raise ValueError(f"frame must be a uint8 array, got dtype {getattr(frame, 'dtype', type(frame).__name__)}")
    if frame.size == 0:
        raise ValueError(f"frame is empty: shape {frame.shape}")


def _check_bgr(frame: np.ndarray) -> None:
    _check_uint8(frame)
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"frame must be an HxWx3 BGR array, got shape {frame.shape}")


def _integer(value) -> int | None:
    """A Python or numpy integer (not a bool, a float or a string) as int; None otherwise."""
    if isinstance(value, (bool, np.bool_, float, np.floating)):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def _check_size(size) -> int:
    v = _integer(size)
    if v is None or not 1 <= v <= MAX_SIZE:
        raise ValueError(f"size must be an integer between 1 and {MAX_SIZE}, got {size!r}")
    return v


def _check_sides(width: int, height: int) -> None:
    if width > MAX_SIDE or height > MAX_SIDE:
        raise ValueError(f"frame is {width}x{height}: sides of at most {MAX_SIDE} pixels are supported")


def _is_sequence(value) -> bool:
    """A tuple, list or array: not a dict, set, generator, string or bytes."""
    return isinstance(value, (Sequence, np.ndarray)) and not isinstance(value, (str, bytes, bytearray))


def _roi_box(roi: Roi, width: int, height: int) -> tuple[int, int, int, int]:
    _check_sides(width, height)
    if roi is None:
        _check_pixels(width, height)
        return 0, 0, width, height
    try:
        values = [_integer(v) for v in roi] if _is_sequence(roi) and len(roi) == 4 else [None]
    except (TypeError, ValueError):  # a 0-d or 2-D array
        values = [None]
    if None in values:
        raise ValueError(f"roi must be four integers (x, y, w, h), got {roi!r}")
    x, y, w, h = values
    if w <= 0 or h <= 0:
        raise ValueError(f"roi width and height must be positive, got w={w}, h={h}")
    if x < 0 or y < 0 or x + w > width or y + h > height:
        raise ValueError(f"roi (x={x}, y={y}, w={w}, h={h}) is outside the {width}x{height} frame")
    _check_pixels(w, h)
    return x, y, w, h


def _check_pixels(w: int, h: int) -> None:
    if w * h > MAX_PIXELS:
        raise ValueError(f"roi of {w}x{h} pixels: at most {MAX_PIXELS} pixels are supported")


def _output(out: np.ndarray | None, shape: tuple[int, ...], dtype: type) -> np.ndarray:
    if out is None:
        return np.empty(shape, dtype)
    if not isinstance(out, np.ndarray):
        raise ValueError(f"out must be a numpy array or None, got {type(out).__name__}")
    if out.dtype != dtype or out.shape != shape:
        raise ValueError(f"out must be a {np.dtype(dtype)} array of shape {shape}, got {out.dtype} {out.shape}")
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError("out must be C-contiguous and writeable")
    return out


# --- the numpy/OpenCV reference ----------------------------------------------------------

def _area_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) exact area-average weights: output o averages input [o*s, (o+1)*s)."""
    edges = np.arange(n_out + 1) * (n_in / n_out)
    lo, hi = edges[:-1, None], edges[1:, None]
    i = np.arange(n_in)[None, :]
    overlap = np.clip(np.minimum(hi, i + 1) - np.maximum(lo, i), 0, None)
    return (overlap / overlap.sum(1, keepdims=True)).astype(np.float32)


def _area_resize(image: np.ndarray, size: int) -> np.ndarray:
    """Exact area average in float32. Growing axes use the weight matrix (OpenCV's
    INTER_AREA upscale rounds its footprint edges in float and can pick the wrong pixel
    at an exact boundary); shrinking axes use OpenCV's INTER_AREA, exact when no axis grows."""
    image = image.astype(np.float32)
    h, w = image.shape[:2]
    if w < size:
        image = np.einsum("ow,hwc->hoc", _area_matrix(w, size), image)
    if h < size:
        image = np.einsum("oh,hwc->owc", _area_matrix(h, size), image)
    if image.shape[:2] != (size, size):
        image = cv2.resize(np.ascontiguousarray(image), (size, size), interpolation=cv2.INTER_AREA)
    return image


def _to_tensor(rgb: np.ndarray, mean, std, out: np.ndarray) -> np.ndarray:
    scale = 1.0 / (255.0 * np.asarray(std, np.float32))
    bias = -np.asarray(mean, np.float32) / np.asarray(std, np.float32)
    np.copyto(out[0], rgb.transpose(2, 0, 1))
    out[0] *= scale[:, None, None]
    out[0] += bias[:, None, None]
    return out


def _triple(value, name: str) -> np.ndarray:
    try:
        ok = _is_sequence(value) and len(value) == 3
        t = np.array([float(v) for v in value], np.float64) if ok else None
    except (TypeError, ValueError):
        t = None
    with np.errstate(over="ignore"):
        if t is None or not np.all(np.isfinite(t.astype(np.float32))):
            raise ValueError(f"{name} must be three finite numbers, got {value!r}")
    return t


def _check_norm(mean, std) -> None:
    """(x/255 - mean) / std must stay finite in float32 for every x (as bindings.cpp checks)."""
    m, s = _triple(mean, "mean"), _triple(std, "std").astype(np.float32).astype(np.float64)
    if not np.all(s >= MIN_STD):
        raise ValueError(f"std must be at least {MIN_STD:g}, got {float(s[~(s >= MIN_STD)][0])!r}")
    with np.errstate(over="ignore"):
        if not np.all(np.isfinite(((np.abs(m.astype(np.float32)) + 1.0) / s).astype(np.float32))):
            raise ValueError("mean / std overflows float32")


def _bgr_roi(frame: np.ndarray, roi: Roi) -> np.ndarray:
    _check_bgr(frame)
    x, y, w, h = _roi_box(roi, frame.shape[1], frame.shape[0])
    return frame[y:y + h, x:x + w]


def _round_u8(image: np.ndarray, out: np.ndarray) -> np.ndarray:
    np.copyto(out, np.clip(image + 0.5, 0, 255), casting="unsafe")
    return out


def preprocess_numpy(frame, roi=None, size=224, mean=IMAGENET_MEAN, std=IMAGENET_STD, out=None):
    size = _check_size(size)
    _check_norm(mean, std)
    rgb = _area_resize(_bgr_roi(frame, roi), size)[:, :, ::-1]
    return _to_tensor(rgb, mean, std, _output(out, (1, 3, size, size), np.float32))


def preprocess_u8_numpy(frame, roi=None, size=224, out=None):
    size = _check_size(size)
    rgb = _area_resize(_bgr_roi(frame, roi), size)[:, :, ::-1]
    return _round_u8(rgb, _output(out, (size, size, 3), np.uint8))


def _yuv_to_bgr(frame: np.ndarray, roi: Roi, layout: str) -> np.ndarray:
    _check_uint8(frame)
    codes = {"nv12": cv2.COLOR_YUV2BGR_NV12, "i420": cv2.COLOR_YUV2BGR_I420}
    if not isinstance(layout, str) or layout not in codes:
        raise ValueError(f"layout must be 'nv12' or 'i420', got {layout!r}")
    if frame.ndim != 2:
        raise ValueError(f"a YUV 4:2:0 frame must be a 2-D (H*3/2)xW array, got shape {frame.shape}")
    rows, width = frame.shape
    if rows % 3 or (rows // 3 * 2) % 2 or width % 2:
        raise ValueError(f"a YUV 4:2:0 frame needs an even width and height (array of H*3/2 rows), got shape {frame.shape}")
    if frame.strides[1] != 1:
        raise ValueError("YUV frame rows must be contiguous (column stride 1)")
    _check_sides(width, rows // 3 * 2)
    if layout == "i420" and not frame.flags.c_contiguous:
        raise ValueError("an I420 frame must be C-contiguous (its chroma planes are packed)")
    x, y, w, h = _roi_box(roi, width, rows // 3 * 2)
    return cv2.cvtColor(np.ascontiguousarray(frame), codes[layout])[y:y + h, x:x + w]


def preprocess_yuv_numpy(frame, roi=None, size=224, mean=IMAGENET_MEAN, std=IMAGENET_STD, layout="nv12", out=None):
    size = _check_size(size)
    _check_norm(mean, std)
    rgb = _area_resize(_yuv_to_bgr(frame, roi, layout), size)[:, :, ::-1]
    return _to_tensor(rgb, mean, std, _output(out, (1, 3, size, size), np.float32))


def preprocess_yuv_u8_numpy(frame, roi=None, size=224, layout="nv12", out=None):
    size = _check_size(size)
    rgb = _area_resize(_yuv_to_bgr(frame, roi, layout), size)[:, :, ::-1]
    return _round_u8(rgb, _output(out, (size, size, 3), np.uint8))


def frame_quality_numpy(frame, roi=None) -> dict[str, float]:
    """Same integer arithmetic as the C++ kernel (OpenCV's fixed-point grey and YCrCb)."""
    bgr = _bgr_roi(frame, roi).astype(np.int64)
    b, g, r = bgr[..., 0], bgr[..., 1], bgr[..., 2]
    grey = (b * 1868 + g * 9617 + r * 4899 + (1 << 13)) >> 14
    cr = ((r - grey) * 11682 + (128 << 14) + (1 << 13)) >> 14
    cb = ((b - grey) * 9241 + (128 << 14) + (1 << 13)) >> 14
    lap = grey[:-2, 1:-1] + grey[2:, 1:-1] + grey[1:-1, :-2] + grey[1:-1, 2:] - 4 * grey[1:-1, 1:-1]
    skin = (cr >= 133) & (cr <= 173) & (cb >= 77) & (cb <= 127)
    return {
        "sharpness": float(lap.var()) if lap.size else 0.0,
        "brightness": float(grey.mean()),
        "dark_fraction": float((grey <= DARK_LEVEL).mean()),
        "bright_fraction": float((grey >= BRIGHT_LEVEL).mean()),
        "skin_fraction": float(skin.mean()),
    }


# --- the public face -------------------------------------------------------------------

def preprocess(frame, roi=None, size=224, mean=IMAGENET_MEAN, std=IMAGENET_STD, out=None) -> np.ndarray:
    """uint8 HxWx3 BGR frame (any strides) -> float32 [1,3,size,size] model input."""
    _announce()
    if _native is None:
        return preprocess_numpy(frame, roi, size, mean, std, out)
    return _native.preprocess(frame, roi, size, mean, std, out)


def preprocess_u8(frame, roi=None, size=224, out=None) -> np.ndarray:
    """uint8 HxWx3 BGR frame -> uint8 [size,size,3] RGB, for a model that normalises itself."""
    _announce()
    if _native is None:
        return preprocess_u8_numpy(frame, roi, size, out)
    return _native.preprocess_u8(frame, roi, size, out)


def preprocess_yuv(frame, roi=None, size=224, mean=IMAGENET_MEAN, std=IMAGENET_STD, layout="nv12", out=None) -> np.ndarray:
    """YUV 4:2:0 frame ((H*3/2)xW uint8, nv12 or i420) -> float32 [1,3,size,size]."""
    _announce()
    if _native is None:
        return preprocess_yuv_numpy(frame, roi, size, mean, std, layout, out)
    return _native.preprocess_yuv(frame, roi, size, mean, std, layout, out)


def preprocess_yuv_u8(frame, roi=None, size=224, layout="nv12", out=None) -> np.ndarray:
    """YUV 4:2:0 frame -> uint8 [size,size,3] RGB."""
    _announce()
    if _native is None:
        return preprocess_yuv_u8_numpy(frame, roi, size, layout, out)
    return _native.preprocess_yuv_u8(frame, roi, size, layout, out)


def frame_quality(frame, roi=None) -> dict[str, float]:
    """Sharpness, brightness, clipped fractions and skin fraction of the ROI (see README)."""
    _announce()
    if _native is None:
        return frame_quality_numpy(frame, roi)
    return _native.frame_quality(frame, roi)
