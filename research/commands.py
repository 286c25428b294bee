"""Research evaluation's commands, as `mpox --help` lists them (nothing imported until one runs)."""

from edge.commands import Registered

COMMANDS = [
    Registered("simulate", "research.cli:simulate", "Whole screening sessions from photos, played to the real kiosk loop."),
]
