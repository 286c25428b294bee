"""The Raspberry Pi camera through picamera2 (libcamera).

- picamera2 is imported only when this source opens: it exists only on Raspberry Pi OS.
- One `Picamera2` for the whole process: libcamera cannot open the same camera twice, and
  recreating the object after a failure leaks it. A reopen stops and restarts that instance.
- Frames come from the low-resolution YUV420 stream, sized by the config (e.g. 448x336, so
  the target box is about the model's 224 px): the ISP does the resize for free.
- Every capture has a timeout, because `capture_array()` can block forever when the
  camera or its cable fails; a timed-out capture returns None and Capture reconnects.
"""

from __future__ import annotations

import concurrent.futures
import threading

import cv2
import numpy as np

from edge.errors import CameraError
from edge.sources.base import Source

_camera = None  # the process's one Picamera2
_camera_lock = threading.Lock()


def the_camera():
    """The process's Picamera2, created on first use."""
    global _camera
    with _camera_lock:
        if _camera is None:
            try:
                from picamera2 import Picamera2
            except ImportError as e:
                raise CameraError("source kind 'picamera2' needs the picamera2 package "
                                  "(Raspberry Pi OS: sudo apt install python3-picamera2, and a venv made with "
                                  "--system-site-packages)") from e
            try:
                _camera = Picamera2()
            except (RuntimeError, IndexError) as e:  # IndexError: no camera attached
                raise CameraError(f"no Raspberry Pi camera found: {e}") from e
        return _camera


def yuv420_to_bgr(planes: np.ndarray, width: int, height: int) -> np.ndarray:
    """picamera2's YUV420 array (height*3/2 rows of `stride` bytes) -> BGR, padding cut off."""
    if planes.shape[0] != height * 3 // 2:
        raise CameraError(f"unexpected YUV420 frame shape {planes.shape} for {width}x{height}")
    bgr = cv2.cvtColor(np.ascontiguousarray(planes), cv2.COLOR_YUV2BGR_I420)
    return bgr[:, :width] if bgr.shape[1] != width else bgr


class PiCameraSource(Source):
    name = "picamera2"

    def __init__(self, width: int, height: int, fps: float, timeout_s: float) -> None:
        # YUV420 needs even sizes
        self.width, self.height, self.fps, self.timeout_s = width - width % 2, height - height % 2, fps, timeout_s
        self.camera = None

    def open(self) -> None:
        cam = the_camera()
        try:
            cam.stop()  # a reopen after a failure: restart the same instance
            main = {"size": (max(self.width, 640), max(self.height, 480)), "format": "YUV420"}
            lores = {"size": (self.width, self.height), "format": "YUV420"}
            controls = {"FrameRate": float(self.fps)} if self.fps else {}
            cam.configure(cam.create_video_configuration(main=main, lores=lores, controls=controls, buffer_count=4))
            cam.start()
        except Exception as e:  # libcamera raises RuntimeError and others; all mean "camera not usable"
            raise CameraError(f"picamera2 failed to start: {e}") from e
        self.camera = cam

    def read(self) -> np.ndarray | None:
        planes = self._planes()
        return None if planes is None else yuv420_to_bgr(planes, self.width, self.height)

    def skip(self) -> bool:
        return self._planes() is not None  # not converted to BGR

    def _planes(self) -> np.ndarray | None:
        if self.camera is None:
            raise CameraError("picamera2 is not open")
        job = self.camera.capture_array("lores", wait=False)
        try:
            return job.get_result(timeout=self.timeout_s)
        except concurrent.futures.TimeoutError:
            return None

    def close(self) -> None:
        if self.camera is not None:
            try:
                self.camera.stop()
            except Exception:  # noqa: BLE001 - a dead camera may fail to stop; the next open tries again
                pass
            self.camera = None
