"""The check page: a photo judged by the kiosk through its port (KioskPort.check_photo: the
kiosk's own model on its own infer request, the kiosk's rule and threshold), which hands it to
the loop to publish like any screening: audit row marked as an upload, metrics, uplink.

The heatmap ("why the model said so") is explain_frame's, drawn by edge/heatmap.py's overlay;
a model without the "cam" output gives none, and the result says so.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass

import cv2
import numpy as np

from edge.decision import Screening
from edge.heatmap import overlay
from edge.port import KioskPort
from edge.quality import box_pixels

log = logging.getLogger(__name__)
OVERLAY_MAX_SIDE = 640  # what a phone screen shows; the full photo would only cost bytes


@dataclass(frozen=True)
class Overlaid:
    screening: Screening
    overlay_jpeg: bytes | None  # the heatmap on the photo, when the model gives one


def overlay_heatmap(image: np.ndarray, heatmap: np.ndarray | None) -> bytes | None:
    """The heatmap over a phone-sized copy of the picture, as JPEG; None without a heatmap."""
    if heatmap is None:
        return None
    h, w = image.shape[:2]
    scale = min(1.0, OVERLAY_MAX_SIDE / max(h, w))
    small = cv2.resize(image, (max(1, int(w * scale)), max(1, int(h * scale))), interpolation=cv2.INTER_AREA)
    heat = cv2.resize(heatmap.astype(np.float32), (small.shape[1], small.shape[0]), interpolation=cv2.INTER_LINEAR)
    ok, jpeg = cv2.imencode(".jpg", overlay(small, heat), [cv2.IMWRITE_JPEG_QUALITY, 85])
    return jpeg.tobytes() if ok else None


def data_url(jpeg: bytes | None) -> str | None:
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode() if jpeg else None


class PhotoCheck:
    def __init__(self, port: KioskPort) -> None:
        self.port = port

    def check(self, image: np.ndarray) -> Overlaid:
        checked = self.port.check_photo(image)
        s = checked.screening
        log.info("photo check %s recorded", s.id[:8])  # its outcome is in the audit log only (edge/kiosk.py)
        return Overlaid(s, overlay_heatmap(image, checked.heatmap))

    def explain_frame_jpeg(self, frame: np.ndarray) -> bytes | None:
        """A kept camera frame with the heatmap over its target box, for the dashboard (None
        when there is no heatmap). The box, not the whole frame: the region the model judged
        lay inside it (the audit row does not keep the region itself)."""
        h, w = frame.shape[:2]
        x, y, bw, bh = box_pixels(self.port.cfg.quality.box, w, h)
        heat = self.port.explain(frame, (x, y, bw, bh))
        if heat is None:
            return None
        full = np.zeros((h, w), np.float32)
        full[y:y + bh, x:x + bw] = cv2.resize(heat.astype(np.float32), (bw, bh), interpolation=cv2.INTER_LINEAR)
        return overlay_heatmap(frame, full)
