"""OpenCV capture: a V4L2 device (index or /dev/videoN), an RTSP/HTTP URL, or a video file."""

from __future__ import annotations

import cv2
import numpy as np

from edge.errors import CameraError, SourceEnded
from edge.sources.base import Pacer, Source

DEFAULT_FILE_FPS = 15.0  # a file whose container gives no frame rate, played with fps 0


class OpenCVSource(Source):
    def __init__(self, kind: str, target: str, width: int, height: int, fps: float, loop: bool) -> None:
        self.kind, self.target, self.width, self.height, self.fps, self.loop = kind, target, width, height, fps, loop
        self.name = f"{kind}:{target}"
        self.cap: cv2.VideoCapture | None = None
        self.pacer = Pacer(fps if kind == "file" else 0)
        self.played = 0  # frames read from a file, over every loop of it: its clock
        self.file_fps = fps or DEFAULT_FILE_FPS

    def open(self) -> None:
        target: int | str = int(self.target) if self.kind == "device" and str(self.target).isdigit() else str(self.target)
        cap = cv2.VideoCapture(target, cv2.CAP_V4L2) if self.kind == "device" else cv2.VideoCapture(target)
        if not cap.isOpened():
            cap.release()
            raise CameraError(f"cannot open {self.name}")
        if self.kind == "device":
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
            cap.set(cv2.CAP_PROP_FPS, self.fps)
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the newest frame, not a backlog
        if self.kind == "file":
            rate = cap.get(cv2.CAP_PROP_FPS)
            if 0 < rate <= 1000:  # the recording's own rate; some containers do not say
                self.file_fps = rate
        self.cap = cap

    def read(self) -> np.ndarray | None:
        if self.cap is None:
            raise CameraError(f"{self.name} is not open")
        ok, frame = self.cap.read()
        if not ok and self.kind == "file" and self.loop:
            self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = self.cap.read()
        if not ok:
            if self.kind == "file":
                raise SourceEnded(f"{self.name}: end of file") if not self.loop else CameraError(f"{self.name}: cannot read a frame")
            return None
        self.pacer.wait()
        self.played += 1
        return frame

    def skip(self) -> bool:
        """A camera's frame taken off the driver without decoding it (grab, no retrieve)."""
        if self.kind == "file" or self.cap is None:
            return super().skip()
        return bool(self.cap.grab())

    def media_time(self) -> float | None:
        return (self.played - 1) / self.file_fps if self.kind == "file" and self.played else None

    def close(self) -> None:
        if self.cap is not None:
            self.cap.release()
            self.cap = None
