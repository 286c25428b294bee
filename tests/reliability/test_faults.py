"""Unlucky and hostile input, each ending in one clear line and nothing lost: a camera that
vanishes and returns, two kiosks on one state folder, broken configs, broken models, broken
images."""

import shutil
import struct
import subprocess
import time
import zlib

import cv2
import numpy as np
import pytest

from edge.capture import Capture
from edge.errors import CameraError
from edge.sources.base import Source
from tests.reliability.conftest import ROOT, assert_one_clear_line, mpox_process, mpox_run


class Flaky(Source):
    """A camera unplugged and plugged back: every other open fails, and each opened camera
    dies after a few frames, raising, returning nothing, or blocking."""

    opened = 0

    def __init__(self) -> None:
        self.frames_left = 3
        self.name = "flaky"

    def open(self) -> None:
        Flaky.opened += 1
        if Flaky.opened % 2 == 0:
            raise CameraError("no such device")

    def read(self):
        self.frames_left -= 1
        if self.frames_left >= 0:
            return np.zeros((8, 8, 3), np.uint8)
        if Flaky.opened % 3 == 0:
            time.sleep(0.2)  # a stalled read
            return None
        raise OSError("device disconnected")


def test_a_camera_that_vanishes_and_returns_100_times():
    Flaky.opened = 0
    cap = Capture(Flaky, 4, read_timeout_s=0.05, reconnect_min_s=0.001, reconnect_max_s=0.002)
    cap.start()
    deadline = time.monotonic() + 120
    while cap.stats.outages < 100 and time.monotonic() < deadline:
        cap.get(timeout=0.01)
    cap.stop()
    assert cap.stats.outages >= 100 and cap.stats.frames >= 300 and not cap._supervisor.is_alive()


def test_a_second_kiosk_on_the_same_state_folder_is_refused(tmp_path, demo_config):
    first = mpox_process(["kiosk", "run", "--no-view", "--config", str(demo_config)], tmp_path, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "state" / "kiosk.lock").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)
        second = mpox_run(["kiosk", "run", "--no-view", "--config", str(demo_config)], tmp_path)
        assert_one_clear_line(second)
        assert "another kiosk" in second.stderr
    finally:
        first.terminate()
        first.communicate(timeout=60)
    assert first.returncode == 0


HOSTILE_CONFIGS = [
    b"source: [1, 2\n",  # not YAML
    b"- a\n- b\n",  # not a mapping
    b"kiosk_id: caf\xe9\n",  # not UTF-8
    b"quality:\n  box: [.nan, 0, 1, 1]\n",
    b"quality:\n  box: [0.9, 0.9, 0.5, 0.5]\n",
    b"store:\n  retention_days: 1e300\n",
    b"decision:\n  frames: -1\n",
    b"decision:\n  frames: 4\n  best_frames: 9\n",
    b"source:\n  kind: usb\n",
    b"source:\n  kind: file\n",  # no target
    b"model:\n  path: /nonexistent/model.xml\n",
    b"presence:\n  min_fill: 0.5\n  close_fill: 0.1\n",
    b"camera: 1\n",  # unknown key
    b"\x00\x01\x02\x03",
    b"a: &a [*a]\n",  # a self-referencing alias
]


@pytest.mark.parametrize("text", HOSTILE_CONFIGS)
def test_hostile_configs_are_one_clear_line(tmp_path, text):
    cfg = tmp_path / "kiosk.yaml"
    cfg.write_bytes(text)
    for args in (["kiosk", "validate-config", str(cfg)], ["kiosk", "run", "--no-view", "--max-frames", "5", "--config", str(cfg)]):
        assert_one_clear_line(mpox_run(args, tmp_path))


def model_copy(tmp_path, name="fast-mpoxnet-int8"):
    d = tmp_path / "models"
    d.mkdir(exist_ok=True)
    for suffix in (".xml", ".bin"):
        shutil.copy(ROOT / "models" / f"{name}{suffix}", d / f"{name}{suffix}")
    return d / f"{name}.xml"


def damage(kind: str, tmp_path):
    xml = model_copy(tmp_path)
    binf = xml.with_suffix(".bin")
    if kind == "truncated bin":
        binf.write_bytes(binf.read_bytes()[:1000])
    elif kind == "empty bin":
        binf.write_bytes(b"")
    elif kind == "garbage xml":
        xml.write_bytes(b"<net><layers><layer id='0' type='Parameter'>" + b"\x00" * 100)
    elif kind == "swapped bin":
        other = model_copy(tmp_path, "fast-mpoxnet")
        shutil.copy(other.with_suffix(".bin"), binf)
    elif kind == "bit flips":
        data = bytearray(binf.read_bytes())
        for i in range(0, len(data), 997):
            data[i] ^= 0xFF
        binf.write_bytes(bytes(data))
    elif kind == "no metadata":
        text = xml.read_text()
        xml.write_text(text[:text.index("<rt_info>")] + text[text.index("</rt_info>") + len("</rt_info>"):])
    return xml


@pytest.mark.parametrize("kind", ["truncated bin", "empty bin", "garbage xml", "swapped bin", "bit flips", "no metadata"])
@pytest.mark.parametrize("verify", [True, False])
def test_broken_models_are_one_clear_line(tmp_path, kind, verify):
    xml = damage(kind, tmp_path)
    cfg = tmp_path / "kiosk.yaml"
    cfg.write_text(f"state_dir: state\nmodel:\n  path: {xml}\n  verify_checksum: {str(verify).lower()}\n")
    result = mpox_run(["kiosk", "run", "--no-view", "--max-frames", "5", "--config", str(cfg)], tmp_path)
    if not verify and kind == "bit flips":  # weights with flipped bits still load: only a checksum can tell
        assert result.returncode == 0 or ("Traceback" not in result.stderr and result.returncode == 1), result.stderr[-2000:]
        return
    assert_one_clear_line(result)
    classify = mpox_run(["classify", "--model", str(xml), str(ROOT / "edge" / "demo" / "measles33.png")], tmp_path)
    if kind not in ("swapped bin", "bit flips"):  # classify checks no checksums (research use)
        assert_one_clear_line(classify)
        said = [line for line in classify.stderr.splitlines() if line.startswith("Error:")]
        # the cause, not OpenVINO's "Exception from src/...cpp:84:" that comes before it
        assert len(said) == 1 and "Exception from" not in said[0] and not said[0].rstrip().endswith(":"), said
    else:
        assert classify.returncode in (0, 1) and "Traceback" not in classify.stderr


def png(width: int, height: int, body: bytes = b"\x00" * 4, depth: int = 8, colour: int = 2) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(body)) + chunk(b"IEND", b""))


def hostile_images(folder):
    folder.mkdir()
    good = cv2.imencode(".jpg", np.full((64, 64, 3), 128, np.uint8))[1].tobytes()
    files = {
        "bomb.png": png(40000, 40000), "wide.png": png(1_000_000, 1), "zero.png": png(0, 0), "empty.jpg": b"",
        "truncated.jpg": good[: len(good) // 2], "text.png": b"just some text", "pdf.jpg": b"%PDF-1.4\n%\xe2\xe3\n",
        "deep.png": cv2.imencode(".png", np.full((32, 32, 3), 60000, np.uint16))[1].tobytes(),
        "grey.png": cv2.imencode(".png", np.full((32, 32), 90, np.uint8))[1].tobytes(),
        "rgba.png": cv2.imencode(".png", np.full((32, 32, 4), 90, np.uint8))[1].tobytes(),
        "tiny.png": cv2.imencode(".png", np.full((1, 1, 3), 90, np.uint8))[1].tobytes(),
        "good.jpg": good,
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return files


def test_hostile_images_never_crash_classify_and_the_good_ones_are_classified(tmp_path):
    hostile_images(tmp_path / "images")
    result = mpox_run(["classify", "--format", "jsonl", str(tmp_path / "images")], tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert len(lines) == 12
    for ok in ("good.jpg", "deep.png", "grey.png", "rgba.png"):
        assert any(ok in line and '"label"' in line for line in lines), ok
    for bad in ("bomb.png", "wide.png", "zero.png", "empty.jpg", "text.png", "pdf.jpg", "tiny.png"):
        assert any(bad in line and '"error"' in line for line in lines), bad
    assert any("tiny.png" in line and "too small to judge" in line for line in lines)  # 1x1: no label, and why


def test_classify_refuses_what_is_not_a_regular_file_without_waiting(tmp_path):
    """A FIFO nobody writes to would block the reader for ever; a device never ends."""
    import os

    fifo = tmp_path / "photo.jpg"
    os.mkfifo(fifo)
    good = ROOT / "edge" / "demo" / "measles33.png"
    result = mpox_run(["classify", "--format", "jsonl", str(fifo), "/dev/zero", str(good)], tmp_path, timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert len(lines) == 3 and '"label"' in lines[2]
    assert "a FIFO, not an image file" in lines[0] and "a character device, not an image file" in lines[1]


def test_a_folder_source_of_hostile_images_plays_the_good_ones(tmp_path):
    hostile_images(tmp_path / "images")
    cfg = tmp_path / "kiosk.yaml"
    cfg.write_text(f"state_dir: state\nsource:\n  kind: folder\n  target: {tmp_path / 'images'}\n  fps: 0\n  loop: false\n")
    result = mpox_run(["kiosk", "run", "--no-view", "--config", str(cfg)], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "played to the end" in result.stderr and "frames" in result.stdout
