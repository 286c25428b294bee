"""The terminal view when the kiosk is run by hand: state, guidance, fps, last result."""

from __future__ import annotations

import time

from rich.console import Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from edge.decision import Outcome, State
from edge.events import Event, KioskStatus, status_fields

OUTCOME_STYLE = {Outcome.MPOX: "bold red", Outcome.OTHER_RASH: "bold yellow", Outcome.OTHER_CONDITION: "bold yellow", Outcome.NO_RASH: "bold green",
                 Outcome.UNCERTAIN: "bold magenta"}
REFRESH_S = 0.25  # the panel is rebuilt at most this often (the loop runs far faster)


def render(st: KioskStatus, kiosk_id: str, model: str) -> Panel:
    f = status_fields(st)
    figures = Table.grid(padding=(0, 2))
    figures.add_row("state", Text(f["state"], style="bold"), "fps", f"{f['fps']:.1f}")
    figures.add_row("frames", str(f["frames"]), "classified", str(f["classified"]))
    figures.add_row("screenings", str(f["screenings"]), "abandoned", str(f["abandoned"]))
    figures.add_row("dropped", str(f["dropped"]), "camera outages", str(f["outages"]))
    camera = Text("camera ok", style="green") if f["camera_ok"] else Text(f"camera unavailable: {f['camera_problem']}", style="red")
    parts = [Text(f["message"], style="bold cyan"), camera, figures]
    if st.state == State.ASSESSING:
        parts.insert(1, Text(f"checking {st.progress[0]}/{st.progress[1]} frames"))
    if st.last_result:
        r = st.last_result
        probs = "  ".join(f"{k} {v:.2f}" for k, v in r.probabilities.items())
        when = time.strftime("%H:%M:%S", time.localtime(r.at))
        parts.append(Text(f"last: {r.outcome.value} at {when}   {probs}", style=OUTCOME_STYLE[r.outcome]))
    return Panel(Group(*parts), title=f"mpox kiosk {kiosk_id}", subtitle=model)


class TerminalOutput:
    """A live panel on the terminal; use as a context manager around the kiosk's run."""

    def __init__(self, kiosk_id: str, model: str) -> None:
        self.kiosk_id, self.model = kiosk_id, model
        self.live = Live(render(KioskStatus(), kiosk_id, model), refresh_per_second=4, screen=False)
        self._last = 0.0

    def __enter__(self) -> TerminalOutput:
        self.live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.live.__exit__(*exc)

    def on_event(self, event: Event) -> None:
        pass  # everything it shows is in the status

    def on_status(self, status: KioskStatus) -> None:
        now = time.monotonic()
        if now - self._last >= REFRESH_S:
            self._last = now
            self.live.update(render(status, self.kiosk_id, self.model))
