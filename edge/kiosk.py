"""The kiosk's main loop: one straight line from frame to audit row.

    capture (own thread) -> scene (presence, motion, the region shown) -> quality gate
        -> preprocess + infer the region (good frames only) -> screening state machine
        -> typed events and a frozen status (edge/events.py) -> the outputs (audit log first)

When no frame can be classified the loop dozes: it looks at presence.idle_fps frames a
second (the camera leaves the rest undecoded). That is while the kiosk waits for "I agree"
or shows a result, whoever is in front (presence there only decides when the result is over),
and while it is idle with nobody in front; it wakes to every frame as soon as a screening can
start: after the tap, or when anything changes in the box.

Stopping (SIGTERM/SIGINT, or a frame/screening limit for tests and benchmarks) discards the
screening in progress, closes the camera, flushes the log and returns.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable

import numpy as np

from edge.capture import Capture, Frame
from edge.config import KioskConfig
from edge.decision import Screening, ScreeningMachine, State, consent_asked, screen_picture
from edge.engine import Engine
from edge.events import (
    CameraBack,
    CameraLost,
    Event,
    KioskStatus,
    LastResult,
    ModelFacts,
    Publisher,
    ScreeningDone,
    Started,
    StateChanged,
    Stopped,
    Subscriber,
)
from edge.models import load_engine, resolve_threshold
from edge.outputs.audit import AuditOutput
from edge.port import Checked
from edge.preprocess import frame_quality
from edge.quality import Patience, Verdict, box_pixels, verdict
from edge.scene import SceneView, SceneWatch
from edge.sources import open_source
from edge.sources.base import Source
from edge.store import AuditLog, ModelStamp

log = logging.getLogger(__name__)
PRUNE_EVERY_S = 3600.0
DOZE_SLACK = 0.7  # a frame this share of a look's period after the last look is looked at (cameras' timing jitters)
MAX_DOZE_FRAMES = 60  # a look stands for at most this many frames (a reopened camera counts from 1 again)
STUCK_REPORT_S = 600.0  # a stuck episode (recovered from) stays in the status, /healthz and the dashboard this long
FLUSH_RETRY_S = 5.0


class Kiosk:
    def __init__(self, cfg: KioskConfig, engine: Engine | None = None, make_source: Callable[[], Source] | None = None,
                 outputs: Iterable[Subscriber] = ()) -> None:
        """engine and make_source default to what cfg names (tests and benchmarks pass their own);
        `outputs` subscribe after the audit log, which always comes first."""
        self.cfg = cfg
        self.engine = engine or load_engine(cfg)
        info = self.engine.info
        threshold = resolve_threshold(self.engine, cfg.model)
        self.model = ModelFacts(info.name, info.version, self.engine.sha256, self.engine.precision, self.engine.device, threshold,
                                self.engine.path)
        self.machine = ScreeningMachine(cfg.decision, info.labels, threshold)
        self.store = AuditLog(cfg.state_dir, cfg.store, cfg.kiosk_id, ModelStamp(info.name, info.version, self.engine.sha256),
                              outbox=cfg.fleet.enabled)
        self.outputs = Publisher()
        self.outputs.subscribe(AuditOutput(self.store))
        for output in outputs:
            self.outputs.subscribe(output)
        s = cfg.source
        self.camera_events: deque[CameraLost | CameraBack] = deque()  # from the capture thread, published by the loop
        self.submitted: queue.SimpleQueue[ScreeningDone] = queue.SimpleQueue()  # from other threads (uploads), published by the loop
        self.agreed = threading.Event()  # "I agree" tapped on the kiosk screen (the web server's thread), taken by the loop
        self.capture = Capture(make_source or (lambda: open_source(s, cfg.quality.box, cfg.state_dir)), cfg.queue_size, s.read_timeout_s, s.reconnect_min_s, s.reconnect_max_s,
                               on_event=self.camera_events.append)
        self.scene = SceneWatch(cfg.presence)
        self.patience = Patience(cfg.quality.accept_after_s)
        self.status = KioskStatus()  # replaced, never changed: readers on other threads see whole snapshots
        self.preview: Frame | None = None  # the latest frame, replaced (never written to): for a live preview
        self._consent_lapse_s: float | None = None
        self.stop_event = threading.Event()
        self._roi_cache: tuple[tuple[int, int], tuple[int, int, int, int]] | None = None
        self._frames = self._classified = self._screenings = 0
        self._model_change = False  # stop_for_model_change: the kiosk will start again on another model
        self._fps = self._infer_ms = 0.0
        self._region: tuple[int, int, int, int] | None = None
        self._verdict = Verdict.ABSENT
        self._last_result: LastResult | None = None
        self._state = self.machine.state
        self._look_every = 1.0 / cfg.presence.idle_fps if cfg.presence.idle_fps > 0 else 0.0
        self._dozing: State | None = None  # the state the kiosk dozes in (presence.idle_fps looks a second), None awake
        self._stuck: tuple[str, float] | None = None  # (why, when on the frames' clock): the last stuck episode
        self._warnings: dict[str, str] = {}  # the outputs' standing problems (warn), by what they are about
        self._t = 0.0  # the last frame's time
        self._looked: tuple[float, int] = (float("-inf"), 0)  # (time, seq) of the last frame looked at
        self.publish(Started(time.time(), self.model))

    def publish(self, event: Event) -> None:
        self.outputs.event(event)

    def ask_consent(self) -> None:
        """Before run(): no screening starts until agree(), one screening per consent, lapsing
        after decision.consent_lapse_s (edge/decision.py holds the rule); published in the status."""
        self._consent_lapse_s = self.cfg.decision.consent_lapse_s
        self.machine.ask_consent(self._consent_lapse_s, time.monotonic())
        self._state = self.machine.state
        self._update_status()
        log.info("screenings start only after 'I agree' on the kiosk screen (web.consent)")

    def attach(self, outputs: Iterable[Subscriber]) -> None:
        """Subscribe outputs (after the audit log). When one of them is a screen that offers
        "I agree", the kiosk applies its consent rule (edge.decision.consent_asked)."""
        for output in outputs:
            self.outputs.subscribe(output)
            if getattr(output, "offers_consent", False) and consent_asked(self.cfg) and self._consent_lapse_s is None:
                self.ask_consent()

    # --- the port (edge/port.py): what outputs may ask, from any thread -------------------------
    def agree(self) -> None:
        """The person in front of the kiosk tapped "I agree" (from any thread): the loop lets
        the next screening start."""
        self.agreed.set()

    def check_photo(self, image: np.ndarray) -> Checked:
        """A photo judged by the kiosk's rule on its own model (Engine.explain_frame runs on its
        own infer request), handed to the loop like any screening (audit row as an upload)."""
        probs, heatmap = self.engine.explain_frame(image)
        try:
            quality = {k: float(v) for k, v in frame_quality(image).items()}
        except ValueError:  # a picture too small to measure: judged all the same, its quality unknown
            quality = {}
        keep = image if self.cfg.store.keep_best_frame else None  # the photo is kept only when retention is on
        screening = screen_picture(probs, self.engine.info.labels, self.model.mpox_threshold, self.cfg.decision,
                                   time.monotonic(), quality, keep)
        self.submit(screening)
        return Checked(screening, heatmap)

    def explain(self, frame: np.ndarray, roi: tuple[int, int, int, int]) -> np.ndarray | None:
        return self.engine.explain_frame(frame, roi)[1]

    def stop_for_model_change(self) -> None:
        self._model_change = True
        self.stop()

    def warn(self, about: str, problem: str | None) -> None:
        warnings = dict(self._warnings)
        if problem:
            warnings[about] = problem
        else:
            warnings.pop(about, None)
        self._warnings = warnings  # replaced whole, never changed in place: the loop reads it while another thread warns

    def roi(self, width: int, height: int) -> tuple[int, int, int, int]:
        if self._roi_cache is None or self._roi_cache[0] != (width, height):
            self._roi_cache = ((width, height), box_pixels(self.cfg.quality.box, width, height))
        return self._roi_cache[1]

    def run(self, max_frames: int | None = None, max_screenings: int | None = None) -> KioskStatus:
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
                    self._fps, rate_n, rate_t = rate_n / (now - rate_t), 0, now
                    self._update_status()
                elif frame is None:
                    self._update_status()  # no frames (camera lost): the status still follows the camera
                if self.store.pending and now - last_flush >= FLUSH_RETRY_S:
                    self.store.flush()
                    last_flush = now
                if now - last_prune >= PRUNE_EVERY_S:
                    self.store.prune()
                    last_prune = now
                if self.capture.ended and self.capture.frames.empty():
                    break  # a non-looping file or folder played to its end
                if (max_frames is not None and self._frames >= max_frames) or \
                        (max_screenings is not None and self._screenings >= max_screenings):
                    break
        finally:
            self._shutdown()
        return self.status

    def process(self, frame: Frame) -> Screening | None:
        """One frame through the gate, the model and the state machine; the Screening when
        one completes (recorded already). The session simulator calls this with frames on
        its own clock."""
        image = frame.image
        self.preview = frame
        if self._dozing == self.machine.state and frame.t - self._looked[0] < DOZE_SLACK * self._look_every:
            self._frames += 1  # dozing: this frame goes by unseen
            return None
        box = self.roi(image.shape[1], image.shape[0])
        frames = frame.seq - self._looked[1] if self._dozing is not None and 0 < frame.seq - self._looked[1] <= MAX_DOZE_FRAMES else 1
        view = self.scene.observe(image, box, frame.t, assessing=self.machine.state == State.ASSESSING, frames=frames)
        self._looked = (frame.t, frame.seq)
        q = frame_quality(image, view.region) if view.present else {}  # nobody there: nothing to judge
        v, relaxed = self.patience.observe(verdict(view, q, self.cfg.quality, self.cfg.presence), q, frame.t)
        probs = None
        if v == Verdict.OK and self.machine.needs_probabilities:
            t0 = time.perf_counter()
            probs = self.engine.classify_frame(image, view.region)
            self._infer_ms = (time.perf_counter() - t0) * 1000
            self._classified += 1
        keep = image if self.cfg.store.keep_best_frame else None
        q.update(motion=view.motion, fill=view.fill, relaxed=float(relaxed))
        screening = self.machine.observe(frame.t, v, probs, q, keep)
        self._recover_if_stuck(frame.t)
        self._frames += 1
        self._t = frame.t
        self._region, self._verdict = view.region, v
        self._publish_state()
        self._doze(view)
        if screening is not None:
            wall = time.time() - max(0.0, time.monotonic() - screening.finished)  # a recording played fast runs ahead
            self._screenings += 1
            self._last_result = LastResult(screening.id, screening.outcome, screening.label, screening.probabilities, wall)
            self.publish(ScreeningDone(wall, screening))
            # The uuid only: an outcome in the journal would outlive store.retention_days and `install.sh
            # --purge`; the audit log, pruned by age, is a screening's only record.
            log.info("screening %s recorded (%d since start)", screening.id[:8], self._screenings)
        self._update_status()
        return screening

    def _recover_if_stuck(self, t: float) -> None:
        """A screening episode far longer than one lasts (decision.stuck_after_s) is the kiosk
        taking something for a person (the scene it learned no longer matches the room): said
        in the log, the status, /healthz and the dashboard, and recovered from by starting over
        and learning the empty scene again."""
        why = self.machine.stuck(t)
        if why is None:
            return
        log.warning("stuck: %s; starting over and learning the empty scene again", why)
        self.machine.recover(t)
        self.scene.forget()
        self.patience = Patience(self.cfg.quality.accept_after_s)
        self._stuck = (why, t)

    def _doze(self, view: SceneView) -> None:
        """Nothing to classify (awaiting consent or showing a result, whoever is in front; idle
        with nobody in front), the empty scene known: look at presence.idle_fps frames a
        second, and have the camera leave the others undecoded. Another state (the tap) or
        anything in the box of an idle kiosk wakes it to every frame."""
        m = self.machine
        dozes = self._look_every > 0 and not view.learning and \
            (not m.needs_probabilities or (m.state == State.IDLE and view.fill == 0.0))
        self._dozing = m.state if dozes else None
        self.capture.look_every = DOZE_SLACK * self._look_every if dozes else 0.0

    def submit(self, screening: Screening) -> None:
        """A screening made outside the loop (a photo uploaded to the check page), from any
        thread: the loop publishes it like its own, so the audit log and every output see it.
        It is not the kiosk's own result: the status and the kiosk's screen do not show it."""
        self.submitted.put(ScreeningDone(time.time(), screening))

    def _publish_state(self) -> None:
        if self.machine.state != self._state:
            self._state = self.machine.state
            self.publish(StateChanged(time.time(), self._state, self.machine.message))

    def _drain_events(self) -> None:
        if self.agreed.is_set():
            self.agreed.clear()
            self.machine.agree(time.monotonic())
            self._publish_state()
        while self.camera_events:
            self.publish(self.camera_events.popleft())
        while not self.submitted.empty():
            self.publish(self.submitted.get_nowait())

    def _update_status(self) -> None:
        """A new snapshot for every reader, then each output's on_status."""
        c, m = self.capture, self.machine
        self.status = KioskStatus(
            state=m.state, message=m.message if c.healthy else "Camera unavailable: please tell the staff",
            verdict=self._verdict, progress=m.progress, region=self._region, camera_ok=c.healthy, camera_problem=c.problem,
            fps=self._fps, frames=self._frames, classified=self._classified, infer_ms=self._infer_ms,
            dropped=c.stats.dropped, outages=c.stats.outages,
            screenings=self._screenings, abandoned=m.abandoned, audit_write_failures=self.store.failed_writes,
            last_result=self._last_result, started_at=self.status.started_at, consent_lapse_s=self._consent_lapse_s,
            stuck=self._stuck[0] if self._stuck and self._t - self._stuck[1] < STUCK_REPORT_S else "",
            recoveries=m.recoveries, warnings=tuple(self._warnings.values()))
        self.outputs.status(self.status)

    def stop(self) -> None:
        self.stop_event.set()

    def _shutdown(self) -> None:
        """Stop the camera and the outputs, then close the audit log whatever failed before:
        its queued rows go to the database or the journal, and are counted."""
        in_progress = self.machine.state == State.ASSESSING
        try:
            self.capture.stop()
            self._drain_events()
            self._update_status()
            self.publish(Stopped(time.time(), self._screenings, in_progress, restarting=self._model_change))
            self.outputs.close()
        finally:
            self.store.close()
        log.info("kiosk stopped: %d frames, %d screenings, %d frames dropped, %d camera outages; audit rows: %d written, "
                 "%d in the journal, %d lost", self.status.frames, self.status.screenings, self.status.dropped,
                 self.status.outages, self.store.written, self.store.spilled, self.store.lost)
