"""The kiosk loop's thread -> the web server's asyncio loop, for the kiosk screen's live state.

on_status runs for every frame on the loop's thread, so it only swaps a reference to the
frozen snapshot (atomic, O(1)); the server's loop samples it at SAMPLE_HZ and sends the
screen's view to each page when it changed. Events (a finished screening) are rare and
handed over with call_soon_threadsafe, so a result reaches the page at once. Each page has
its own small queue; a page too slow to read loses its oldest messages, never the kiosk's
time.
"""

from __future__ import annotations

import asyncio
import json
import time

from edge.decision import Origin
from edge.events import Event, KioskStatus, ScreeningDone, status_fields
from edge.screening_code import screening_code

SAMPLE_HZ = 10
CLIENT_QUEUE = 16


def screen_view(status: KioskStatus) -> dict:
    """What the kiosk screen may show: state and guidance, never a past person's result."""
    f = status_fields(status)
    return {"state": f["state"], "verdict": status.verdict.value, "progress": list(status.progress),
            "camera_ok": f["camera_ok"]}


class Live:
    def __init__(self) -> None:
        self.status = KioskStatus()
        self.beat = time.monotonic()  # when the loop last published a status
        self.closing = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._clients: set[asyncio.Queue] = set()
        self._sent: dict | None = None

    # --- the kiosk loop's thread -------------------------------------------------------
    def on_status(self, status: KioskStatus) -> None:
        self.status = status
        self.beat = time.monotonic()

    def on_event(self, event: Event) -> None:
        loop = self._loop
        if isinstance(event, ScreeningDone) and event.screening.origin == Origin.CAMERA and loop is not None \
                and not loop.is_closed():
            s = event.screening
            message = ("result", {"id": s.id, "code": screening_code(s.id), "outcome": s.outcome.value, "label": s.label, "at": event.at})
            loop.call_soon_threadsafe(self._broadcast, message)

    # --- the server's asyncio loop -----------------------------------------------------
    async def run(self) -> None:
        """Started by the app's lifespan: sample the status, send what changed."""
        self._loop = asyncio.get_running_loop()
        while not self.closing:
            view = screen_view(self.status)
            if view != self._sent:
                self._sent = view
                self._broadcast(("status", view))
            await asyncio.sleep(1 / SAMPLE_HZ)

    def subscribe(self) -> asyncio.Queue:
        q: asyncio.Queue = asyncio.Queue(CLIENT_QUEUE)
        q.put_nowait(("status", screen_view(self.status)))
        self._clients.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue) -> None:
        self._clients.discard(q)

    def close(self) -> None:
        """Every page's stream ends (the server is stopping). On the server's loop."""
        self.closing = True
        for q in list(self._clients):
            self._put(q, None)

    def close_from_any_thread(self) -> None:
        loop = self._loop
        if loop is not None and loop.is_running():
            loop.call_soon_threadsafe(self.close)
        else:
            self.closing = True

    def _broadcast(self, message: tuple[str, dict]) -> None:
        for q in list(self._clients):
            self._put(q, message)

    @staticmethod
    def _put(q: asyncio.Queue, message) -> None:
        if q.full():
            q.get_nowait()  # the oldest goes: a slow page must not hold the others up
        q.put_nowait(message)


def sse(kind: str, data: dict) -> str:
    return f"event: {kind}\ndata: {json.dumps(data)}\n\n"


def state_is_live(status: KioskStatus, now: float, beat: float, max_age_s: float = 5.0) -> tuple[bool, str]:
    """Whether the kiosk loop runs, sees its camera and is not stuck (a screening episode far
    longer than one lasts, recently): /healthz's answer and its reason."""
    if now - beat > max_age_s:
        return False, f"the kiosk loop has published nothing for {now - beat:.0f} s"
    if not status.camera_ok:
        return False, f"camera unavailable: {status.camera_problem}"
    if status.stuck:
        return False, f"stuck: {status.stuck}; the kiosk started over"
    return True, "ok"
