"""Capture: sources that raise, return nothing or stall are reopened and counted as outages;
a full queue drops the oldest frames and counts them. Real sources on real files."""

import shutil
import threading
import time

import cv2
import numpy as np
import pytest

from edge.capture import Capture
from edge.config import SourceConfig
from edge.errors import CameraError, ImageError
from edge.images import read_image
from edge.sources import open_source
from edge.sources.base import Source
from edge.sources.demo import DEMO_DIR, SCRIPT_FPS, DemoSource, frames_in

FRAME = np.zeros((48, 64, 3), np.uint8)


class Scripted(Source):
    """Delivers `good` frames per opening, then misbehaves as told; `fail_opens` openings fail first."""

    name = "scripted"
    opens = 0
    fail_opens = 0

    def __init__(self, how, good=5):
        self.how, self.good, self.n = how, good, 0
        self.release = threading.Event()

    def open(self):
        Scripted.opens += 1
        if Scripted.opens <= Scripted.fail_opens:
            raise CameraError("unplugged")

    def read(self):
        self.n += 1
        time.sleep(0.002)
        if self.n <= self.good:
            return FRAME
        if self.how == "raise":
            raise OSError("device vanished")
        if self.how == "none":
            return None
        self.release.wait(60)  # stall: blocks like a hung driver
        return None


def run_capture(how, seconds=1.5, fail_opens=0, queue_size=100):
    Scripted.opens, Scripted.fail_opens = 0, fail_opens
    events = []
    cap = Capture(lambda: Scripted(how), queue_size, read_timeout_s=0.2, reconnect_min_s=0.05, reconnect_max_s=0.1,
                  on_event=lambda event: events.append(type(event).__name__))
    cap.start()
    time.sleep(seconds)
    cap.stop()
    return cap, events


@pytest.mark.parametrize("how", ["raise", "none", "stall"])
def test_failing_sources_are_reopened_and_outages_counted(how):
    cap, events = run_capture(how)
    assert Scripted.opens >= 3, "reopened after each failure"
    assert cap.stats.outages >= 2 and events.count("CameraLost") == cap.stats.outages
    assert cap.stats.frames >= 5 * Scripted.opens - 5  # each opening delivered its good frames


def test_unplugged_camera_is_retried_until_it_comes_back():
    cap, events = run_capture("none", seconds=1.0, fail_opens=3)
    assert Scripted.opens > 3 and cap.stats.frames > 0 and "CameraBack" in events


def test_full_queue_drops_the_oldest_frames_and_counts_them():
    cap, _ = run_capture("raise", seconds=0.5, queue_size=2)
    assert cap.frames.qsize() == 2 and cap.stats.dropped == cap.stats.frames - 2


def test_folder_source_plays_images_and_skips_a_corrupt_one(tmp_path):
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.full((20, 30, 3), i * 50, np.uint8))
    (tmp_path / "3.png").write_bytes(b"not a png")
    src = open_source(SourceConfig(kind="folder", target=str(tmp_path), fps=0, loop=False))
    src.open()
    frames = [src.read() for _ in range(4)]
    assert [f[0, 0, 0] for f in frames[:3]] == [0, 50, 100] and frames[3] is None
    with pytest.raises(CameraError, match="played to the end"):
        src.read()


def png_claiming(width: int, height: int) -> bytes:
    """A few-byte PNG whose header claims width x height pixels: a decompression bomb."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 4)) + chunk(b"IEND", b""))


def test_a_picture_claiming_a_huge_size_is_skipped_and_the_rest_play(tmp_path):
    (tmp_path / "0.png").write_bytes(png_claiming(40000, 40000))
    cv2.imwrite(str(tmp_path / "1.png"), np.full((20, 30, 3), 77, np.uint8))
    src = open_source(SourceConfig(kind="folder", target=str(tmp_path), fps=0, loop=False))
    src.open()
    assert src.read() is None and src.read()[0, 0, 0] == 77
    with pytest.raises(ImageError, match="cannot be decoded"):
        read_image(tmp_path / "0.png")


def test_video_file_source_and_missing_targets(tmp_path):
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for i in range(5):
        writer.write(np.full((48, 64, 3), 40 * i, np.uint8))
    writer.release()
    src = open_source(SourceConfig(kind="file", target=str(video), fps=0, loop=True))
    src.open()
    frames = [src.read() for _ in range(8)]  # loops past the end
    assert all(f.shape == (48, 64, 3) for f in frames)
    src.close()
    for cfg in (SourceConfig(kind="file", target=str(tmp_path / "nope.avi")), SourceConfig(kind="device", target="/dev/video99"),
                SourceConfig(kind="folder", target=str(tmp_path / "nowhere"))):
        with pytest.raises(CameraError):
            open_source(cfg).open()


def test_demo_source_plays_visits_the_way_people_show_a_lesion():
    src = open_source(SourceConfig(kind="demo", fps=0))
    src.open()
    first = src.visit(0)
    assert first.plan.picture is src.pictures[0] and src.visit(1).plan.picture is src.pictures[1]
    assert {first.phase(i / 15) for i in range(int(first.plan.duration * 15))} >= {"empty", "approach", "hold", "leave"}
    held = [src.visit(n).plan for n in range(12)]
    assert all(0.35 <= p.coverage < 1 for p in held) and len({p.surround for p in held}) > 1  # not filling the box
    frames = [src.read() for _ in range(int(first.plan.duration * 15))]
    empty, hold = frames[0].astype(int), frames[int(first.hold_start() * 15) + 5].astype(int)
    assert np.abs(hold - empty).mean() > 5 and np.abs(frames[1].astype(int) - empty).mean() < 5
    assert src.read().shape == (480, 640, 3)  # and on to the next visit


def test_a_source_that_does_not_loop_ends_without_an_outage(tmp_path):
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.full((20, 30, 3), i * 50, np.uint8))
    cap = Capture(lambda: open_source(SourceConfig(kind="folder", target=str(tmp_path), fps=0, loop=False)), 8, 1.0, 0.05, 0.2)
    cap.start()
    deadline = time.monotonic() + 5
    while not cap.ended and time.monotonic() < deadline:
        time.sleep(0.02)
    cap.stop()
    assert cap.ended and cap.stats.frames == 3 and cap.stats.outages == 0 and cap.stats.reopen_attempts == 1


def test_the_demo_draws_each_frame_once_and_plays_the_frames_it_drew(tmp_path):
    """A cycle of one visit per picture: the frames are those of the visits themselves
    (VisitCamera.frame at the same time), drawn on the first play and kept (in the cache
    folder, which a restarted demo plays from), and the cycle starts again after the last."""
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    for f in sorted(DEMO_DIR.glob("*.png"))[:2]:
        shutil.copy(f, pictures / f.name)
    make = lambda: DemoSource(160, 120, fps=0, folder=pictures, cache_dir=tmp_path / "state")  # noqa: E731
    src = make()
    src.open()
    cameras = [src.visit(n) for n in range(2)]
    expected = [camera.frame(k / SCRIPT_FPS) for camera in cameras for k in range(frames_in(camera))]
    assert all(frames_in(c) / SCRIPT_FPS >= c.plan.duration > (frames_in(c) - 1) / SCRIPT_FPS for c in cameras)
    drawn = [src.read() for _ in expected]
    assert all(np.array_equal(a, b) for a, b in zip(drawn, expected, strict=True))
    assert np.array_equal(src.read(), expected[0])  # the cycle again
    assert len(list((tmp_path / "state").glob("demo-frames-*/visit-*.npz"))) == 2

    calls = []
    again = make()
    again.open()
    again.visit = lambda n: calls.append(n)  # a restart draws nothing
    again.skip()
    assert all(np.array_equal(again.read(), e) for e in expected[1:]) and not calls

    in_memory = DemoSource(160, 120, fps=0, folder=pictures)
    in_memory.open()
    assert all(np.array_equal(in_memory.read(), e) for e in expected + expected[:5]) and len(in_memory.prepared) == 2


class Camera(Source):
    """A live camera (or, with `recording`, a file's clock) that counts what it decoded and skipped."""

    name = "counting"

    def __init__(self, recording=False):
        self.recording, self.decoded, self.skipped = recording, 0, 0

    def open(self):
        pass

    def read(self):
        time.sleep(0.002)
        self.decoded += 1
        return FRAME

    def skip(self):
        time.sleep(0.002)
        self.skipped += 1
        return True

    def media_time(self):
        return self.decoded / 15 if self.recording else None


@pytest.mark.parametrize("recording", [False, True])
def test_while_the_loop_dozes_a_camera_skips_undecoded_frames_and_a_recording_none(recording):
    source = Camera(recording)
    cap = Capture(lambda: source, 1000, read_timeout_s=1.0, reconnect_min_s=0.05, reconnect_max_s=0.1)
    cap.look_every = 0.05
    cap.start()
    frames = []
    while len(frames) < 5:
        frame = cap.get(timeout=2)
        assert frame is not None
        frames.append(frame)
    cap.stop()
    if recording:
        assert source.skipped == 0 and [f.seq for f in frames] == [1, 2, 3, 4, 5]  # every frame of a recording
    else:
        assert source.skipped > source.decoded >= 5 and cap.stats.outages == 0
        assert all(b.seq - a.seq > 1 for a, b in zip(frames, frames[1:], strict=False))  # the camera's frame numbers


def test_the_demo_never_writes_its_frames_through_a_symbolic_link(tmp_path, caplog):
    """A link planted where the demo keeps its frames (the folder, or a file in it) would make
    the kiosk write outside its state folder: refused in one line, the demo plays from memory."""
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    shutil.copy(sorted(DEMO_DIR.glob("*.png"))[0], pictures / "one.png")
    outside = tmp_path / "outside"
    outside.mkdir()
    probe = DemoSource(160, 120, fps=0, folder=pictures, cache_dir=tmp_path / "probe")
    probe.open()
    name = probe._store.name
    for state, plant in ((tmp_path / "linked-folder", lambda s: (s / name).symlink_to(outside, target_is_directory=True)),
                         (tmp_path / "linked-file", lambda s: ((s / name).mkdir(), (s / name / "visit-0.tmp.npz").symlink_to(
                             outside / "precious")))):
        (outside / "precious").write_text("keep me")
        state.mkdir()
        plant(state)
        src = DemoSource(160, 120, fps=0, folder=pictures, cache_dir=state)
        src.open()
        frames = [src.read() for _ in range(frames_in(src.visit(0)) + 1)]
        assert all(f is not None for f in frames)  # it plays all the same
        assert sorted(p.name for p in outside.iterdir()) == ["precious"] and (outside / "precious").read_text() == "keep me"
    assert sum("symbolic link" in r.getMessage() for r in caplog.records) == 2
