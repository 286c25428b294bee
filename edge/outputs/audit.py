"""The audit log as an output: each screening and each operational event becomes a row."""

from __future__ import annotations

from edge.events import CameraBack, CameraLost, Event, KioskStatus, ScreeningDone, Started, Stopped
from edge.store import AuditLog


class AuditOutput:
    def __init__(self, store: AuditLog) -> None:
        self.store = store

    def on_event(self, event: Event) -> None:
        match event:
            case ScreeningDone(at=at, screening=s):
                self.store.record(s, at)
            case Started(at=at, model=m):
                self.store.event("started", f"model {m.name} {m.version} ({m.precision}) on {m.device}; "
                                            f"mpox threshold {m.mpox_threshold:g}", at)
            case Stopped(at=at, screenings=n, discarded=discarded):
                self.store.event("stopped", f"{n} screenings; "
                                            f"{'a screening in progress was discarded' if discarded else 'none in progress'}", at)
            case CameraLost(at=at, reason=reason):
                self.store.event("camera_outage", reason, at)
            case CameraBack(at=at, source=source):
                self.store.event("camera_ok", source, at)

    def on_status(self, status: KioskStatus) -> None:
        pass  # the audit log keeps events, not the status of every frame
