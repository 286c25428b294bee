"""The kiosk loop's thread -> the web server's asyncio loop, for the kiosk screen's live state.

on_status runs for every frame on the loop's thread, so it only swaps a reference to the
frozen snapshot and compares the screen's few fields with the last ones sent (O(1)); when
they changed, and when a camera screening finishes, the message is handed to the server's
loop with call_soon_threadsafe, so the page hears at once and a kiosk with nobody in front
costs the server nothing (no sampling while nothing changes). Each page has
its own small queue; a page too slow to read loses its oldest messages, never the kiosk's
time.
"""

from __future__ import annotations

import asyncio
import json
import time

from edge.decision import Origin
from edge.events import Event, KioskStatus, ScreeningDone
from edge.screening_code import screening_code

CLIENT_QUEUE = 16


def screen_key(status: KioskStatus) -> tuple:
    """What the kiosk screen may show (state and guidance, never a past person's result), as a
    tuple cheap enough to compare on every frame."""
    return status.state, status.verdict, tuple(status.progress), status.camera_ok


def screen_view(status: KioskStatus) -> dict:
    """screen_key as the page reads it."""
    state, verdict, progress, camera_ok = screen_key(status)
    return {"state": state.value, "verdict": verdict.value, "progress": list(progress), "camera_ok": camera_ok}


class Live:
    def __init__(self) -> None:
        self.status = KioskStatus()
        self.beat = time.monotonic()  # when the loop last published a status
        self.closing = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._clients: set[asyncio.Queue] = set()
        self._shown: tuple | None = None  # screen_key of the last status sent (the kiosk loop's thread)

    # --- the kiosk loop's thread -------------------------------------------------------
    def on_status(self, status: KioskStatus) -> None:
        self.status = status
        self.beat = time.monotonic()
        key = screen_key(status)
        if key != self._shown:
            self._shown = key
            self._hand_over(("status", screen_view(status)))

    def on_event(self, event: Event) -> None:
        if isinstance(event, ScreeningDone) and event.screening.origin == Origin.CAMERA:
            s = event.screening
            self._hand_over(("result", {"id": s.id, "code": screening_code(s.id), "outcome": s.outcome.value, "label": s.label,
                                        "at": event.at}))

    def _hand_over(self, message: tuple[str, dict]) -> None:
        if self._loop is not None:
            try:
                self._loop.call_soon_threadsafe(self._broadcast, message)
            except RuntimeError:  # the server's loop has closed: nobody is listening
                pass

    # --- the server's asyncio loop -----------------------------------------------------
    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """From the app's lifespan: messages go to pages through this loop from now on (a page
        that subscribes gets the current view first)."""
        self._loop = loop

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
