"""Where the model looked: a class activation map made into a heatmap, and the heatmap
laid over the picture for staff (numpy and OpenCV only).

The maps come from the IR's "cam" output (training/cam.py) via Engine.explain_frame. A
heatmap shows where the picture spoke *for* the reported class, relative to its strongest
spot: it is not a probability, and a cool picture is not a clean bill of health.
"""

from __future__ import annotations

import cv2
import numpy as np

# The strongest spot is covered by this much colour; cold parts show the picture untouched.
MAX_ALPHA = 0.6
COLOUR_MAP = cv2.COLORMAP_TURBO  # blue (none) to red (strongest), readable by most colour-blind staff


def class_heatmap(cam: np.ndarray, index: int, size: tuple[int, int]) -> np.ndarray:
    """The class activation maps of every class ([C, h, w], the IR's "cam" output without its
    batch axis) -> float32 heatmap in [0, 1] of size (height, width) for class `index`.

    The class's map less the mean of all classes' maps: softmax reads only differences of
    logits, so what raises every class alike (skin, the picture's border) says nothing about
    the result and is left out. Its positive part (as Grad-CAM) is divided by its peak and
    resized bilinearly. All zeros when nothing in the picture speaks for the class more than
    for the others."""
    cam = np.nan_to_num(np.asarray(cam, np.float32))
    if cam.ndim != 3 or not 0 <= index < len(cam):
        raise ValueError(f"need maps [classes, h, w] and a class index, got shape {cam.shape} and index {index}")
    positive = np.maximum(cam[index] - cam.mean(0), 0)
    peak = float(positive.max())
    scaled = positive / peak if peak > 0 else positive
    h, w = size
    return np.clip(cv2.resize(scaled, (int(w), int(h)), interpolation=cv2.INTER_LINEAR), 0, 1).astype(np.float32)


def overlay(image_bgr: np.ndarray, heatmap: np.ndarray) -> np.ndarray:
    """uint8 BGR picture + heatmap in [0, 1] -> a new uint8 BGR picture with the heatmap's
    colours blended in, more opaque where the heatmap is hotter. A heatmap of another size
    is stretched over the whole picture (it covers the region the model saw)."""
    if not isinstance(image_bgr, np.ndarray) or image_bgr.dtype != np.uint8 or image_bgr.ndim != 3 or image_bgr.shape[2] != 3:
        raise ValueError(f"image must be an HxWx3 uint8 BGR array, got {getattr(image_bgr, 'dtype', type(image_bgr).__name__)} "
                         f"{getattr(image_bgr, 'shape', '')}")
    heat = np.asarray(heatmap, np.float32)
    if heat.ndim != 2 or heat.size == 0:
        raise ValueError(f"heatmap must be a non-empty 2-D array, got shape {heat.shape}")
    h, w = image_bgr.shape[:2]
    if heat.shape != (h, w):
        heat = cv2.resize(heat, (w, h), interpolation=cv2.INTER_LINEAR)
    heat = np.clip(np.nan_to_num(heat), 0, 1)
    colours = cv2.applyColorMap(np.round(heat * 255).astype(np.uint8), COLOUR_MAP)
    alpha = (MAX_ALPHA * heat)[:, :, None]
    blended = image_bgr.astype(np.float32) * (1 - alpha) + colours.astype(np.float32) * alpha
    return np.clip(np.round(blended), 0, 255).astype(np.uint8)
