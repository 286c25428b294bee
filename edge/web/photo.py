"""The check page's model: its own Engine (own OpenVINO infer request; kiosk.engine's belongs
to the loop's thread), loaded at the first upload, one photo at a time. The photo is judged by
the kiosk's rule (edge.decision.judge) and handed to the loop (kiosk.submit), which publishes
it like any screening: audit row marked as an upload, metrics, uplink.

The heatmap ("why the model said so") comes from Engine.explain_frame and edge/heatmap.py's
overlay when the model and the code have them; otherwise the result says there is none.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from dataclasses import dataclass

import cv2
import numpy as np

from edge.decision import Screening, screen_picture
from edge.errors import ModelError
from edge.preprocess import frame_quality
from edge.quality import box_pixels

log = logging.getLogger(__name__)
OVERLAY_MAX_SIDE = 640  # what a phone screen shows; the full photo would only cost bytes


@dataclass(frozen=True)
class Checked:
    screening: Screening
    overlay_jpeg: bytes | None  # the heatmap on the photo, when the model gives one


def overlay_heatmap(image: np.ndarray, heatmap: np.ndarray | None) -> bytes | None:
    """The heatmap over a phone-sized copy of the picture, as JPEG; None without a heatmap."""
    if heatmap is None:
        return None
    try:
        from edge.heatmap import overlay  # the class-activation-map helper (issue 15, "why the model said so")
    except ImportError:
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
    def __init__(self, kiosk) -> None:
        self.kiosk = kiosk
        self._engine = None
        self._lock = threading.Lock()

    def engine(self):
        """The check page's own Engine (same model, checksum and settings as the kiosk's)."""
        if self._engine is None:
            from edge.kiosk import load_engine

            engine = load_engine(self.kiosk.cfg)
            if engine.sha256 != self.kiosk.model.sha256:  # a new model was installed: the kiosk restarts onto it
                raise ModelError("the kiosk is changing its model: try again in a minute")
            self._engine = engine
        return self._engine

    def probabilities(self, image: np.ndarray, roi=None) -> tuple[np.ndarray, np.ndarray | None]:
        """Class probabilities of the picture (or its roi) and the heatmap of the roi (None when
        the model or this code has none)."""
        with self._lock:
            engine = self.engine()
            explain = getattr(engine, "explain_frame", None)
            if explain is None:
                return engine.classify_frame(image, roi), None
            return explain(image, roi)

    def check(self, image: np.ndarray) -> Checked:
        probs, heatmap = self.probabilities(image)
        cfg, model = self.kiosk.cfg, self.kiosk.model
        try:
            quality = {k: float(v) for k, v in frame_quality(image).items()}
        except ValueError:  # a picture too small to measure: judged all the same, its quality unknown
            quality = {}
        keep = image if cfg.store.keep_best_frame else None  # the photo is kept only when retention is on
        screening = screen_picture(probs, self.kiosk.engine.info.labels, model.mpox_threshold, cfg.decision,
                                   time.monotonic(), quality, keep)
        self.kiosk.submit(screening)
        log.info("photo check %s: %s (%s)", screening.id[:8], screening.outcome.value, screening.label)
        return Checked(screening, overlay_heatmap(image, heatmap))

    def explain_frame_jpeg(self, frame: np.ndarray) -> bytes | None:
        """A kept camera frame with the heatmap over its target box, for the dashboard (None
        when there is no heatmap). The box, not the whole frame: the region the model judged
        lay inside it (the audit row does not keep the region itself)."""
        h, w = frame.shape[:2]
        x, y, bw, bh = box_pixels(self.kiosk.cfg.quality.box, w, h)
        heat = self.probabilities(frame, (x, y, bw, bh))[1]
        if heat is None:
            return None
        full = np.zeros((h, w), np.float32)
        full[y:y + bh, x:x + bw] = cv2.resize(heat.astype(np.float32), (bw, bh), interpolation=cv2.INTER_LINEAR)
        return overlay_heatmap(frame, full)
