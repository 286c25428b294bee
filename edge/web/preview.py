"""The kiosk screen's live picture: the latest frame (KioskPort.preview) with the target box and
the region being judged, as JPEG at a limited rate, encoded in its own thread and only while
someone watches. The frame is copied, never drawn on: the loop still owns it. When the last
viewer leaves the picture is dropped, so the next person never sees the previous one's skin."""

from __future__ import annotations

import threading

import cv2
import numpy as np

from edge.port import KioskPort
from edge.quality import Verdict, box_pixels

MAX_WIDTH = 640  # the screen's picture is small; encoding full frames would cost the loop's CPU
BOX_COLOUR = (255, 255, 255)
REGION_COLOUR = {True: (80, 200, 80), False: (0, 170, 255)}  # BGR: green when the frame is good, amber otherwise


def draw(image: np.ndarray, box: tuple[float, float, float, float], region, good: bool) -> np.ndarray:
    """A scaled copy of the frame with the target box and the region drawn on it."""
    h, w = image.shape[:2]
    scale = min(1.0, MAX_WIDTH / w)
    view = cv2.resize(image, (max(1, int(w * scale)), max(1, int(h * scale))), interpolation=cv2.INTER_AREA) \
        if scale < 1 else image.copy()
    x, y, bw, bh = box_pixels(box, view.shape[1], view.shape[0])
    cv2.rectangle(view, (x, y), (x + bw, y + bh), BOX_COLOUR, 3)
    if region is not None:
        rx, ry, rw, rh = (int(v * scale) for v in region)
        cv2.rectangle(view, (rx, ry), (rx + rw, ry + rh), REGION_COLOUR[good], 2)
    return view


class Preview:
    def __init__(self, port: KioskPort, fps: float) -> None:
        self.port, self.period = port, 1 / fps
        self.latest: tuple[int, bytes] = (0, b"")  # (sequence number, JPEG): replaced whole
        self.viewers = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._watched = threading.Event()  # someone watches (or the preview stops): the thread works only then
        self._thread = threading.Thread(target=self._run, name="web-preview", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def watch(self, delta: int) -> None:
        with self._lock:
            self.viewers += delta
            if self.viewers <= 0:
                self.latest = (self.latest[0] + 1, b"")
                if not self._stop.is_set():
                    self._watched.clear()
            else:
                self._watched.set()

    def _run(self) -> None:
        shown = None
        while self._watched.wait() and not self._stop.wait(self.period):
            frame = self.port.preview
            if self.viewers <= 0 or frame is None or frame is shown:
                continue
            shown = frame
            status = self.port.status
            view = draw(frame.image, self.port.cfg.quality.box, status.region, status.verdict == Verdict.OK)
            ok, jpeg = cv2.imencode(".jpg", view, [cv2.IMWRITE_JPEG_QUALITY, 75])
            with self._lock:
                if ok and self.viewers > 0:  # not when the last viewer left while this frame was encoded
                    self.latest = (self.latest[0] + 1, jpeg.tobytes())

    def stop(self) -> None:
        self._stop.set()
        self._watched.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)
