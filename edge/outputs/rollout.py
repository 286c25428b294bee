"""The running kiosk's side of a model rollout (edge/rollout.py): confirm a model on trial
once the kiosk is healthy on it, roll it back when it is not, and restart on a newly
installed model when nobody is being screened.

Healthy means: `rollout.trial_frames` frames went through the whole loop (camera, scene, gate,
the model when someone is there) within `rollout.trial_s` of the start. A timer thread, not
the loop, judges the deadline, so a loop stuck inside the new model is caught too: the model
is rolled back and, if the loop does not stop within STOP_GRACE_S, the process exits with
EXIT_RESTART for the service manager to restart it on the previous model.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import TYPE_CHECKING

from edge.decision import State
from edge.events import Event, KioskStatus
from edge.modelstore import ModelStore

if TYPE_CHECKING:
    from edge.config import KioskConfig
    from edge.port import KioskPort

log = logging.getLogger(__name__)
LOOK_EVERY_S = 1.0  # how often the loop looks whether another model was installed
STOP_GRACE_S = 10.0
EXIT_RESTART = 75  # EX_TEMPFAIL: start me again (Restart=on-failure); only for a loop that cannot be stopped: a model change execs (edge/cli.py)


class RolloutWatch:
    def __init__(self, cfg: KioskConfig, port: KioskPort) -> None:
        self.port = port
        self.store = ModelStore.of(cfg)
        folder = port.model.path.resolve().parent
        self.folder = folder if folder.parent == self.store.root.resolve() else None  # None: the packaged model
        self.need = cfg.rollout.trial_frames
        self.trial = self.folder is not None and not self.store.confirmed(self.folder)
        self.restart = False  # the kiosk should start again (on another model): read by `mpox kiosk run`
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._next_look = 0.0
        self._timer: threading.Timer | None = None
        if self.trial:
            self._timer = threading.Timer(cfg.rollout.trial_s, self._deadline, args=(cfg.rollout.trial_s,))
            self._timer.daemon = True
            self._timer.start()

    def on_event(self, event: Event) -> None:
        pass

    def on_status(self, status: KioskStatus) -> None:
        if self.trial and status.frames >= self.need:
            self._confirm(status.frames)
        now = time.monotonic()
        if now >= self._next_look:
            self._next_look = now + LOOK_EVERY_S
            self._look_for_new_model(status)

    def _confirm(self, frames: int) -> None:
        with self._lock:
            if not self.trial:
                return
            self.trial = False
            if self._timer is not None:
                self._timer.cancel()
        try:
            self.store.confirm(self.folder)
            log.info("model %s confirmed: %d frames processed on it", self.folder.name, frames)
        except OSError as e:  # replaced meanwhile by a newer install, or the disk is failing: stays on trial
            log.error("model %s could not be confirmed: %s", self.folder.name, e)

    def _deadline(self, trial_s: float) -> None:
        with self._lock:
            if not self.trial or self._closed.is_set():
                return
            self.trial = False
        frames = self.port.status.frames
        if self.store.rollback(self.folder, f"{frames} of {self.need} frames processed in the first {trial_s:g} s") is None:
            return  # another model was installed meanwhile: the look below restarts on it
        self.restart = True
        self.port.stop_for_model_change()
        if not self._closed.wait(STOP_GRACE_S):
            log.error("the kiosk loop did not stop within %g s after the rollback: exiting for a restart", STOP_GRACE_S)
            os._exit(EXIT_RESTART)

    def _look_for_new_model(self, status: KioskStatus) -> None:
        """Another model became current (an install): start again on it, between screenings."""
        if status.state not in (State.IDLE, State.AWAITING_CONSENT) or self.restart:
            return
        current = self.store.current() if self.store.root.is_dir() else None
        if (current.resolve() if current else None) != self.folder:
            log.info("model %s is now current: restarting the kiosk on it", current.name if current else "(packaged)")
            self.restart = True
            self.port.stop_for_model_change()

    def close(self) -> None:
        self._closed.set()
        if self._timer is not None:
            self._timer.cancel()
