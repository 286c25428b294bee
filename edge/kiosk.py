"""The kiosk's main loop: one straight line from frame to audit row.

    capture (own thread) -> scene (presence, motion, the region shown) -> quality gate
        -> preprocess + infer the region (good frames only) -> screening state machine -> audit log

Stopping (SIGTERM/SIGINT, or a frame/screening limit for tests and benchmarks) discards the
screening in progress, closes the camera, flushes the log and returns.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from edge.capture import Capture, Frame
from edge.config import KioskConfig
from edge.decision import Screening, ScreeningMachine, State
from edge.engine import Engine
from edge.preprocess import frame_quality
from edge.quality import Verdict, box_pixels, verdict
from edge.scene import SceneWatch
from edge.sources import open_source
from edge.sources.base import Source
from edge.store import AuditLog, ModelStamp

log = logging.getLogger(__name__)
PRUNE_EVERY_S = 3600.0
FLUSH_RETRY_S = 5.0


def load_engine(cfg: KioskConfig) -> Engine:
    """The configured model, checked against its SHA256SUMS and metadata."""
    m = cfg.model
    ov_config = {}
    if m.inference_precision:
        ov_config["INFERENCE_PRECISION_HINT"] = m.inference_precision
    if m.threads:
        ov_config["INFERENCE_NUM_THREADS"] = m.threads
    checksums = (m.checksums or Path(m.path).parent / "SHA256SUMS") if m.verify_checksum else None
    return Engine(m.path, m.device, ov_config, checksums)


@dataclass
class KioskStatus:
    """What the screen (and a status file for other tools) shows."""

    state: str = State.IDLE.value
    message: str = ""
    camera_ok: bool = False
    camera_problem: str = "starting"
    fps: float = 0.0
    frames: int = 0
    classified: int = 0
    dropped: int = 0
    outages: int = 0
    screenings: int = 0
    abandoned: int = 0
    progress: tuple[int, int] = (0, 0)
    region: tuple[int, int, int, int] | None = None  # what is classified, inside the box
    verdict: Verdict = Verdict.ABSENT  # the gate's on the last frame
    last_result: dict = field(default_factory=dict)


class Kiosk:
    def __init__(self, cfg: KioskConfig, engine: Engine | None = None, make_source: Callable[[], Source] | None = None) -> None:
        """engine and make_source default to what cfg names (tests and benchmarks pass their own)."""
        self.cfg = cfg
        self.engine = engine or load_engine(cfg)
        info = self.engine.info
        threshold = cfg.model.mpox_threshold or info.mpox_threshold
        self.machine = ScreeningMachine(cfg.decision, info.labels, threshold)
        self.store = AuditLog(cfg.state_dir, cfg.store, cfg.kiosk_id, ModelStamp(info.name, info.version, self.engine.sha256))
        self.store.event("started", f"model {info.name} {info.version} ({self.engine.precision}) on {self.engine.device}; "
                                    f"mpox threshold {threshold:g}")
        s = cfg.source
        self.capture = Capture(make_source or (lambda: open_source(s, cfg.quality.box)), cfg.queue_size, s.read_timeout_s, s.reconnect_min_s, s.reconnect_max_s,
                               on_event=lambda kind, detail: self.pending_events.append((kind, detail, time.time())))
        self.pending_events: deque[tuple[str, str, float]] = deque()  # from the capture thread, written by the loop
        self.scene = SceneWatch(cfg.presence)
        self.status = KioskStatus()
        self.stop_event = threading.Event()
        self._roi_cache: tuple[tuple[int, int], tuple[int, int, int, int]] | None = None

    def roi(self, width: int, height: int) -> tuple[int, int, int, int]:
        if self._roi_cache is None or self._roi_cache[0] != (width, height):
            self._roi_cache = ((width, height), box_pixels(self.cfg.quality.box, width, height))
        return self._roi_cache[1]

    def run(self, max_frames: int | None = None, max_screenings: int | None = None, on_tick=None) -> KioskStatus:
        """Screen until stop() (or a limit is reached); returns the final status."""
        self.capture.start()
        last_prune = last_flush = rate_t = time.monotonic()
        rate_n = 0
        try:
            while not self.stop_event.is_set():
                frame = self.capture.get(timeout=0.1)
                now = time.monotonic()
                self._drain_events()
                if frame is not None:
                    self.process(frame)
                    rate_n += 1
                if now - rate_t >= 1.0:
                    self.status.fps, rate_n, rate_t = rate_n / (now - rate_t), 0, now
                if self.store.pending and now - last_flush >= FLUSH_RETRY_S:
                    self.store.flush()
                    last_flush = now
                if now - last_prune >= PRUNE_EVERY_S:
                    self.store.prune()
                    last_prune = now
                self._update_status()
                if on_tick is not None:
                    on_tick(self.status)
                if self.capture.ended and self.capture.frames.empty():
                    break  # a non-looping file or folder played to its end
                if (max_frames is not None and self.status.frames >= max_frames) or \
                        (max_screenings is not None and self.status.screenings >= max_screenings):
                    break
        finally:
            self._shutdown()
        return self.status

    def process(self, frame: Frame) -> Screening | None:
        """One frame through the gate, the model and the state machine; the Screening when
        one completes (recorded already). The session simulator calls this with frames on
        its own clock."""
        image = frame.image
        box = self.roi(image.shape[1], image.shape[0])
        view = self.scene.observe(image, box, frame.t, assessing=self.machine.state == State.ASSESSING)
        q = frame_quality(image, view.region) if view.present else {}  # nobody there: nothing to judge
        v = verdict(view, q, self.cfg.quality, self.cfg.presence)
        probs = None
        if v == Verdict.OK and self.machine.needs_probabilities:
            probs = self.engine.classify_frame(image, view.region)
            self.status.classified += 1
        keep = image if self.cfg.store.keep_best_frame else None
        q.update(motion=view.motion, fill=view.fill)
        screening = self.machine.observe(frame.t, v, probs, q, keep)
        self.status.frames += 1
        self.status.region, self.status.verdict = view.region, v
        if screening is not None:
            wall = time.time() - (time.monotonic() - screening.finished)
            self.store.record(screening, wall)
            self.status.screenings += 1
            self.status.last_result = {"outcome": screening.outcome.value, "label": screening.label,
                                       "probabilities": screening.probabilities, "at": wall}
            log.info("screening %s: %s (%s, agreement %.2f)", screening.id[:8], screening.outcome.value, screening.label,
                     screening.agreement)
        return screening

    def _drain_events(self) -> None:
        while self.pending_events:
            kind, detail, wall = self.pending_events.popleft()
            self.store.event(kind, detail, wall)

    def _update_status(self) -> None:
        st, c = self.status, self.capture
        st.state, st.progress, st.abandoned = self.machine.state.value, self.machine.progress, self.machine.abandoned
        st.camera_ok, st.camera_problem = c.healthy, c.problem
        st.message = self.machine.message if c.healthy else "Camera unavailable: please tell the staff"
        st.dropped, st.outages = c.stats.dropped, c.stats.outages

    def stop(self) -> None:
        self.stop_event.set()

    def _shutdown(self) -> None:
        in_progress = self.machine.state == State.ASSESSING
        self.capture.stop()
        self._drain_events()
        self.store.event("stopped", f"{self.status.screenings} screenings; "
                                    f"{'a screening in progress was discarded' if in_progress else 'none in progress'}")
        self.store.close()
        log.info("kiosk stopped: %d frames, %d screenings, %d frames dropped, %d camera outages; audit rows: %d written, "
                 "%d in the journal, %d lost", self.status.frames, self.status.screenings, self.status.dropped,
                 self.status.outages, self.store.written, self.store.spilled, self.store.lost)
