"""The terminal view when the kiosk is run by hand: state, guidance, fps, last result."""

from __future__ import annotations

import time

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from edge.kiosk import KioskStatus

OUTCOME_STYLE = {"mpox_suspected": "bold red", "other_rash_suspected": "bold yellow", "no_rash_detected": "bold green",
                 "uncertain": "bold magenta"}


def render(st: KioskStatus, kiosk_id: str, model: str) -> Panel:
    figures = Table.grid(padding=(0, 2))
    figures.add_row("state", Text(st.state, style="bold"), "fps", f"{st.fps:.1f}")
    figures.add_row("frames", str(st.frames), "classified", str(st.classified))
    figures.add_row("screenings", str(st.screenings), "abandoned", str(st.abandoned))
    figures.add_row("dropped", str(st.dropped), "camera outages", str(st.outages))
    camera = Text("camera ok", style="green") if st.camera_ok else Text(f"camera unavailable: {st.camera_problem}", style="red")
    parts = [Text(st.message, style="bold cyan"), camera, figures]
    if st.state == "assessing":
        parts.insert(1, Text(f"checking {st.progress[0]}/{st.progress[1]} frames"))
    if st.last_result:
        r = st.last_result
        probs = "  ".join(f"{k} {v:.2f}" for k, v in r["probabilities"].items())
        when = time.strftime("%H:%M:%S", time.localtime(r["at"]))
        parts.append(Text(f"last: {r['outcome']} at {when}   {probs}", style=OUTCOME_STYLE.get(r["outcome"], "")))
    return Panel(Group(*parts), title=f"mpox kiosk {kiosk_id}", subtitle=model)
