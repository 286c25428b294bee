"""The kiosk loop's one way out: typed events and a frozen status snapshot.

The loop publishes; the audit log, the terminal view, the web server, the metrics and the
fleet uplink subscribe (one module each under edge/outputs/), so adding an output never
touches the loop. Every subscriber is called on the loop's thread, in subscription order, and
must return quickly (hand work to its own thread or event loop). A snapshot is replaced,
never changed, so a reader on another thread never sees a half-updated status.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from edge.decision import Outcome, Screening, State
from edge.quality import Verdict

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelFacts:
    """The model a kiosk runs, as staff and the fleet see it."""

    name: str
    version: str
    sha256: str  # of the weights: the model's identity in the audit log
    precision: str
    device: str
    mpox_threshold: float  # the effective one: the config's override, else the model's (edge/models.py)
    path: Path | None = None  # the IR it was loaded from (where the rollout watch looks for its folder)


@dataclass(frozen=True)
class Started:
    at: float  # wall clock (time.time())
    model: ModelFacts


@dataclass(frozen=True)
class Stopped:
    at: float
    screenings: int
    discarded: bool  # a screening in progress was discarded
    restarting: bool = False  # stopped to start again on the model now current (edge/outputs/rollout.py)


@dataclass(frozen=True)
class StateChanged:
    at: float
    state: State
    message: str


@dataclass(frozen=True)
class ScreeningDone:
    at: float  # when it finished, wall clock
    screening: Screening


@dataclass(frozen=True)
class CameraLost:
    at: float
    reason: str


@dataclass(frozen=True)
class CameraBack:
    at: float
    source: str


Event = Started | Stopped | StateChanged | ScreeningDone | CameraLost | CameraBack


@dataclass(frozen=True)
class LastResult:
    """The latest screening as a screen shows it (never a picture)."""

    id: str
    outcome: Outcome
    label: str
    probabilities: dict[str, float]
    at: float


@dataclass(frozen=True)
class KioskStatus:
    """One consistent view of the kiosk, replaced as a whole on every change."""

    state: State = State.IDLE
    message: str = ""
    verdict: Verdict = Verdict.ABSENT  # the gate's on the last frame
    progress: tuple[int, int] = (0, 0)  # frames collected of those a screening needs
    region: tuple[int, int, int, int] | None = None  # what is classified, inside the box
    camera_ok: bool = False
    camera_problem: str = "starting"
    fps: float = 0.0
    frames: int = 0
    classified: int = 0
    infer_ms: float = 0.0  # the last classified frame's inference (preprocessing included), milliseconds
    dropped: int = 0
    outages: int = 0
    screenings: int = 0
    abandoned: int = 0
    audit_write_failures: int = 0  # writes the audit database refused (each retried)
    last_result: LastResult | None = None
    started_at: float = field(default_factory=time.time)  # wall clock
    consent_lapse_s: float | None = None  # consent is asked (edge/decision.py): good this long; None: not asked
    stuck: str = ""  # the last stuck episode, while recent (edge.kiosk.STUCK_REPORT_S): what was held how long; "" when none
    recoveries: int = 0  # stuck episodes the kiosk recovered from since it started
    warnings: tuple[str, ...] = ()  # standing problems outputs reported (another kiosk uses this id): screening goes on


def model_fields(m: ModelFacts) -> dict:
    """The model facts as every output writes them out."""
    return {"name": m.name, "version": m.version, "sha256": m.sha256, "precision": m.precision, "device": m.device,
            "mpox_threshold": m.mpox_threshold}


def status_fields(st: KioskStatus, now: float | None = None) -> dict:
    """The status as every output writes it out (the API, the fleet's health, systemd's line,
    the terminal view, the metrics): one name and one rounding per figure, JSON-ready."""
    return {"state": st.state.value, "message": st.message, "camera_ok": st.camera_ok, "camera_problem": st.camera_problem,
            "fps": round(st.fps, 2), "frames": st.frames, "classified": st.classified, "inference_ms": st.infer_ms,
            "dropped": st.dropped, "outages": st.outages, "screenings": st.screenings, "abandoned": st.abandoned,
            "audit_write_failures": st.audit_write_failures,
            "uptime_s": round((time.time() if now is None else now) - st.started_at),
            "consent_asked": st.consent_lapse_s is not None, "stuck": st.stuck, "recoveries": st.recoveries,
            "warnings": list(st.warnings)}


class Subscriber(Protocol):
    """An output. It may also have close(), called once after Stopped when the kiosk stops."""

    def on_event(self, event: Event) -> None: ...

    def on_status(self, status: KioskStatus) -> None: ...


class Publisher:
    """Calls each subscriber in turn. A subscriber that raises is logged (once per kind of
    failure) and skipped for that call: one broken output never stops the screening."""

    def __init__(self) -> None:
        self.subscribers: list[Subscriber] = []
        self.failures = 0
        self._reported: set[tuple[str, str]] = set()

    def subscribe(self, subscriber: Subscriber) -> None:
        self.subscribers.append(subscriber)

    def event(self, event: Event) -> None:
        for s in self.subscribers:
            self._call(s, "on_event", event)

    def status(self, status: KioskStatus) -> None:
        for s in self.subscribers:
            self._call(s, "on_status", status)

    def close(self) -> None:
        """Close every output that has close(), last subscribed first."""
        for s in reversed(self.subscribers):
            if hasattr(s, "close"):
                self._call(s, "close")

    def _call(self, subscriber: Subscriber, method: str, *args) -> None:
        try:
            getattr(subscriber, method)(*args)
        except Exception as e:  # noqa: BLE001 - an output's fault must not stop the loop
            self.failures += 1
            key = (type(subscriber).__name__, type(e).__name__)
            if key not in self._reported:
                self._reported.add(key)
                log.error("output %s failed in %s: %s: %s (screening goes on)", key[0], method, key[1], e)
