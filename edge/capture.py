"""Capture apart from inference: a reader thread per opened source feeds a bounded queue
(when it is full the oldest frame is dropped and counted), and a supervisor thread reopens a
source that fails, returns nothing or stalls, with exponential backoff. A read that blocks
forever (a known picamera2 and RTSP behaviour) cannot be interrupted, so the supervisor
abandons that reader and opens a fresh source; the old thread is a daemon.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edge.errors import KioskError, SourceEnded
from edge.events import CameraBack, CameraLost
from edge.sources.base import Source

log = logging.getLogger(__name__)


@dataclass
class Frame:
    image: np.ndarray  # uint8 BGR
    t: float  # time.monotonic() when it was read; for a recording, its own clock (Source.media_time) from there
    seq: int


@dataclass
class CaptureStats:
    frames: int = 0
    dropped: int = 0  # frames the queue had no room for
    empty_reads: int = 0  # reads that returned no frame
    skipped: int = 0  # frames let go by undecoded while the kiosk dozed (nobody in front)
    outages: int = 0  # times the source failed or stalled and was reopened
    reopen_attempts: int = 0


def _close_after(reader: threading.Thread, source: Source) -> None:
    reader.join()
    try:
        source.close()
    except Exception as e:  # noqa: BLE001 - a driver that fails to close is logged, never a crash
        log.warning("closing %s failed: %s", source.name, e)


class Capture:
    def __init__(self, make_source: Callable[[], Source], queue_size: int, read_timeout_s: float, reconnect_min_s: float,
                 reconnect_max_s: float, on_event: Callable[[CameraLost | CameraBack], None] | None = None) -> None:
        """on_event is called on the reader thread with each CameraBack / CameraLost."""
        self.make_source = make_source
        self.frames: queue.Queue[Frame] = queue.Queue(maxsize=queue_size)
        self.read_timeout_s, self.backoff_min, self.backoff_max = read_timeout_s, reconnect_min_s, reconnect_max_s
        self.on_event = on_event or (lambda event: None)
        self.stats = CaptureStats()
        self.healthy = False
        self.problem = "starting"  # why the camera is unavailable, for the screen
        self.source_name = ""
        self._stop = threading.Event()
        self._generation = 0
        self._last_frame = 0.0
        self._reader_error: str | None = None
        self._lock = threading.Lock()
        self._supervisor: threading.Thread | None = None
        self.healthy_for = 0.0
        self.ended = False  # a non-looping file or folder played to its end: no more frames, not an outage
        # Set by the loop while it dozes: a camera's frames come at most this often (seconds), the
        # others skipped undecoded (Source.skip). A recording is never skipped: the loop sees every frame.
        self.look_every = 0.0

    def start(self) -> None:
        self._supervisor = threading.Thread(target=self._supervise, name="capture-supervisor", daemon=True)
        self._supervisor.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._supervisor is not None:
            self._supervisor.join(timeout)

    def get(self, timeout: float) -> Frame | None:
        try:
            return self.frames.get(timeout=timeout)
        except queue.Empty:
            return None

    # --- supervisor -------------------------------------------------------------------

    def _supervise(self) -> None:
        backoff = self.backoff_min
        while not self._stop.is_set():
            source = self.make_source()
            self.source_name = source.name
            self.stats.reopen_attempts += 1
            try:
                source.open()
            except (KioskError, OSError, RuntimeError) as e:
                self._unhealthy(f"cannot open camera: {e}")
                self._stop.wait(backoff)
                backoff = min(self.backoff_max, backoff * 2)
                continue
            with self._lock:
                self._generation += 1
                generation = self._generation
                self._reader_error = None
                self._last_frame = opened = time.monotonic()
            reader = threading.Thread(target=self._read, args=(source, generation), name=f"capture-reader-{generation}", daemon=True)
            reader.start()
            reason = self._watch(opened)
            with self._lock:
                self._generation += 1  # the reader, if it ever wakes, sees it is stale and exits
            if reason is None:  # stopping: let the reader leave its read before the source goes
                reader.join(self.read_timeout_s)
                if not reader.is_alive():
                    source.close()
                    break
            # Released only once its reader has left read() (releasing a capture another thread
            # is reading crashes OpenCV); a reader that never returns keeps its source open.
            threading.Thread(target=_close_after, args=(reader, source), daemon=True).start()
            if reason is None:
                break
            self._unhealthy(reason)
            if self.healthy_for > 10 * self.backoff_min:
                backoff = self.backoff_min  # it had been working: retry soon
            self._stop.wait(backoff)
            backoff = min(self.backoff_max, backoff * 2)

    def _watch(self, opened: float) -> str | None:
        """Wait while the reader delivers; the reason it stopped, or None when stopping or when
        the source played to its end."""
        self.healthy_for = 0.0
        while not self._stop.wait(min(0.05, self.read_timeout_s / 4)):
            with self._lock:
                error, last = self._reader_error, self._last_frame
            if self.ended:
                return None
            if not self.healthy and last > opened:
                self._healthy()  # it delivered, even if it failed right after
            if error is not None:
                return f"camera error: {error}"
            if time.monotonic() - last > self.read_timeout_s:
                return f"no frame for {self.read_timeout_s:g} s"
            self.healthy_for = time.monotonic() - opened
        return None

    def _healthy(self) -> None:
        self.healthy, self.problem = True, ""
        log.info("camera %s delivering frames", self.source_name)
        self.on_event(CameraBack(time.time(), self.source_name))

    def _unhealthy(self, reason: str) -> None:
        if self.healthy:
            self.stats.outages += 1
            self.on_event(CameraLost(time.time(), f"{self.source_name}: {reason}"))
        if self.healthy or reason != self.problem:
            log.warning("camera unavailable: %s", reason)
        self.healthy, self.problem = False, reason

    # --- reader -----------------------------------------------------------------------

    def _skip(self, source: Source) -> int:
        """Let the camera's next frame go by undecoded: 1, or 0 when it had none."""
        if not source.skip():
            self.stats.empty_reads += 1
            time.sleep(0.005)  # a source with nothing to give must not spin a core
            return 0
        self.stats.skipped += 1
        with self._lock:
            self._last_frame = time.monotonic()
        return 1

    def _read(self, source: Source, generation: int) -> None:
        seq = 0
        anchor: float | None = None  # a recording's clock: monotonic time at its second 0, fixed at its first frame
        delivered = float("-inf")  # when the last frame went to the queue
        while not self._stop.is_set():
            try:
                if anchor is None and seq and time.monotonic() - delivered < self.look_every:
                    seq += self._skip(source)  # the loop dozes: a camera's frame it would not look at
                    continue
                image = source.read()
            except SourceEnded as e:
                log.info("%s", e)
                with self._lock:
                    self.ended = self.ended or generation == self._generation
                return
            except Exception as e:  # noqa: BLE001 - any failure of a driver is an outage, never a crash
                with self._lock:
                    if generation == self._generation:
                        self._reader_error = str(e) or type(e).__name__
                return
            with self._lock:
                if generation != self._generation:
                    return
            if image is None:
                self.stats.empty_reads += 1
                time.sleep(0.005)  # a source with nothing to give must not spin a core
                continue
            now = media = time.monotonic()
            if (media_time := source.media_time()) is not None:
                anchor = now - media_time if anchor is None else anchor
                media = anchor + media_time
            with self._lock:
                self._last_frame = now
            seq += 1
            self.stats.frames += 1
            delivered = now
            frame = Frame(image, media, seq)
            if media_time is not None:  # a recording: every frame, at the pace the loop takes them
                while not self._stop.is_set() and generation == self._generation:
                    try:
                        self.frames.put(frame, timeout=0.1)
                        break
                    except queue.Full:
                        with self._lock:
                            self._last_frame = time.monotonic()  # waiting for the loop is not a stalled source
                continue
            while True:
                try:
                    self.frames.put_nowait(frame)
                    break
                except queue.Full:
                    try:
                        self.frames.get_nowait()  # the newest frame matters most: drop the oldest
                        self.stats.dropped += 1
                    except queue.Empty:
                        pass
