"""The picamera2 source without a Pi: a stand-in Picamera2 that serves known YUV420 frames
(with row padding, as libcamera does) or never answers, to check colour conversion, the
one-instance rule and the capture timeout. On a Pi with a camera, the last test uses the real one."""

import sys
import threading
import types
from concurrent.futures import Future

import cv2
import numpy as np
import pytest

import edge.sources.picamera as picamera
from edge.errors import CameraError


class StandInCamera:
    created = 0

    def __init__(self):
        StandInCamera.created += 1
        self.hang = False
        self.config = None
        self.running = False

    def create_video_configuration(self, main, lores, controls, buffer_count):
        return {"main": main, "lores": lores, "controls": controls}

    def configure(self, config):
        self.config = config

    def start(self):
        self.running = True

    def stop(self):
        self.running = False

    def capture_array(self, name, wait):
        assert name == "lores" and wait is False and self.running
        job = types.SimpleNamespace(future=Future())
        job.get_result = lambda timeout: job.future.result(timeout)
        if not self.hang:
            w, h = self.config["lores"]["size"]
            bgr = np.zeros((h, w, 3), np.uint8)
            bgr[:, : w // 2] = (40, 90, 200)  # skin-like left half, blue-grey right half
            bgr[:, w // 2:] = (150, 110, 80)
            i420 = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420)  # (h*3/2, w)
            job.future.set_result(pad_rows(i420, w, h, stride=w + 32))
        return job


def pad_rows(i420, w, h, stride):
    """Re-lay an I420 frame with `stride`-byte luma rows, the way picamera2 hands it over."""
    y = i420[:h]
    u = i420[h:h + h // 4].reshape(h // 2, w // 2)
    v = i420[h + h // 4:].reshape(h // 2, w // 2)
    out_y = np.zeros((h, stride), np.uint8)
    out_y[:, :w] = y
    planes = []
    for c in (u, v):
        p = np.zeros((h // 2, stride // 2), np.uint8)
        p[:, : w // 2] = c
        planes.append(p.reshape(h // 4, stride))
    return np.vstack([out_y, *planes])


@pytest.fixture
def stand_in(monkeypatch):
    module = types.ModuleType("picamera2")
    module.Picamera2 = StandInCamera
    monkeypatch.setitem(sys.modules, "picamera2", module)
    monkeypatch.setattr(picamera, "_camera", None)
    StandInCamera.created = 0
    return module


def test_frames_are_bgr_at_the_configured_size_without_row_padding(stand_in):
    src = picamera.PiCameraSource(448, 336, 15, timeout_s=1.0)
    src.open()
    frame = src.read()
    assert frame.shape == (336, 448, 3) and frame.dtype == np.uint8
    assert np.abs(frame[10, 10].astype(int) - (40, 90, 200)).max() <= 6
    assert np.abs(frame[10, 400].astype(int) - (150, 110, 80)).max() <= 6
    assert src.camera.config["lores"] == {"size": (448, 336), "format": "YUV420"}


def test_one_picamera2_for_the_process_across_reopens(stand_in):
    for _ in range(3):
        src = picamera.PiCameraSource(320, 240, 15, timeout_s=1.0)
        src.open()
        assert src.read() is not None
        src.close()
        src.close()  # twice is safe
    assert StandInCamera.created == 1


def test_a_capture_that_never_returns_times_out(stand_in):
    src = picamera.PiCameraSource(320, 240, 15, timeout_s=0.2)
    src.open()
    src.camera.hang = True
    done = threading.Event()
    result = []
    threading.Thread(target=lambda: (result.append(src.read()), done.set()), daemon=True).start()
    assert done.wait(5) and result == [None]


def test_without_picamera2_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "picamera2", None)  # import fails
    monkeypatch.setattr(picamera, "_camera", None)
    with pytest.raises(CameraError, match="needs the picamera2 package"):
        picamera.PiCameraSource(320, 240, 15, 1.0).open()


def test_real_camera_delivers_a_frame():
    pytest.importorskip("picamera2", reason="only on a Raspberry Pi with picamera2")
    src = picamera.PiCameraSource(448, 336, 15, timeout_s=3.0)
    src.open()
    try:
        frame = src.read()
        assert frame is not None and frame.shape == (336, 448, 3)
    finally:
        src.close()
