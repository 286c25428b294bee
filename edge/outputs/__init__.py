"""The kiosk's outputs: each subscribes to the loop's events and status (edge/events.py) and
sees the kiosk only through its port (edge/port.py).

open_outputs is the one place that decides, from the configuration, which outputs a running
kiosk has besides its audit log (which the kiosk always subscribes first)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from edge.port import Port
from edge.state import StateDir

if TYPE_CHECKING:
    from edge.config import KioskConfig
    from edge.events import Subscriber
    from edge.kiosk import Kiosk


def open_outputs(cfg: KioskConfig, kiosk: Kiosk) -> list[Subscriber]:
    """The configured outputs, started and attached to the kiosk (after its audit log), each
    given the kiosk's port only; returned for callers that look at one. The kiosk closes them
    when it stops."""
    from edge.modelstore import ModelStore

    port = Port(kiosk)
    outputs: list[Subscriber] = []
    if cfg.fleet.enabled:
        from edge.announce import ModelFollower
        from edge.outputs.fleet import FleetUplink

        db = StateDir(cfg.state_dir).audit_db
        follow = ModelFollower(cfg, db) if cfg.rollout.public_key is not None else None  # the site's model
        outputs.append(FleetUplink(cfg.fleet, cfg.kiosk_id, db, cfg.state_dir, port.model, follow, port.warn))
    if cfg.web.enabled:  # the pages (the kiosk screen offers "I agree"), and the metrics they serve at /metrics
        from edge.outputs.metrics import MetricsOutput
        from edge.web.server import WebOutput

        metrics = MetricsOutput(port)
        outputs += [metrics, WebOutput(port, metrics)]
    if os.environ.get("NOTIFY_SOCKET"):  # started by systemd (deploy/mpox-kiosk.service): readiness, watchdog, status
        from edge.outputs.systemd import SystemdNotify

        if notify := SystemdNotify.from_environment():
            outputs.append(notify)
    if cfg.rollout.public_key is not None or ModelStore.of(cfg).current() is not None:  # model trial and switch
        from edge.outputs.rollout import RolloutWatch

        outputs.append(RolloutWatch(cfg, port))
    kiosk.attach(outputs)
    return outputs
