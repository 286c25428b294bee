"""The kiosk screen's live state: sent to the pages when what the screen shows changes, at
once, and never sampled while nothing changes (a kiosk with nobody in front costs the
server nothing)."""

import asyncio
from dataclasses import replace

from edge.decision import State
from edge.events import KioskStatus
from edge.web.live import Live


def test_the_screen_hears_each_change_at_once_and_nothing_else():
    async def scenario():
        live = Live()
        live.attach(asyncio.get_running_loop())
        page = live.subscribe()
        assert (await page.get())[1]["state"] == "idle"  # the current view first
        status = KioskStatus(camera_ok=True)
        for frame in range(50):  # frames counted, fps measured: nothing the screen shows
            live.on_status(replace(status, frames=frame, fps=15.0))
            await asyncio.sleep(0)
        assert (await asyncio.wait_for(page.get(), 1))[1]["camera_ok"] is True
        await asyncio.sleep(0.3)
        assert page.empty()  # no sampling: only changes are sent
        live.on_status(replace(status, state=State.AWAITING_CONSENT))
        assert (await asyncio.wait_for(page.get(), 1))[1]["state"] == "awaiting_consent"
        assert page.empty()

    asyncio.run(scenario())
