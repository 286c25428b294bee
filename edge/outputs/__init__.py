"""The kiosk's outputs: each subscribes to the loop's events and status (edge/events.py).

open_outputs is the one place that decides, from the configuration, which outputs a running
kiosk has besides its audit log (which the kiosk always subscribes first)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edge.config import KioskConfig
    from edge.events import Subscriber
    from edge.kiosk import Kiosk


# Played back, not a person in front of the camera: nobody could tap "I agree", and what was
# recorded is screened as it plays (the staff replaying it decided that).
RECORDINGS = frozenset({"file", "folder"})


def open_outputs(cfg: KioskConfig, kiosk: Kiosk) -> list[Subscriber]:
    """The configured outputs, started and subscribed to the kiosk (after its audit log);
    returned for callers that look at one. The kiosk closes them when it stops."""
    from edge.modelstore import ModelStore

    outputs: list[Subscriber] = []
    if cfg.fleet.enabled:
        from edge.announce import ModelFollower
        from edge.outputs.fleet import FleetUplink

        follow = ModelFollower(cfg, kiosk.store.path) if cfg.rollout.public_key is not None else None  # the site's model
        outputs.append(FleetUplink(cfg.fleet, cfg.kiosk_id, kiosk.store.path, cfg.state_dir, kiosk.model, follow))
    if cfg.web.enabled:  # the pages, and the metrics they serve at /metrics
        from edge.outputs.metrics import MetricsOutput
        from edge.web.server import WebOutput

        if cfg.web.consent and cfg.source.kind not in RECORDINGS:  # nobody is screened before "I agree" on the kiosk screen
            kiosk.ask_consent()
        metrics = MetricsOutput(kiosk)
        outputs += [metrics, WebOutput(kiosk, metrics)]
    if os.environ.get("NOTIFY_SOCKET"):  # started by systemd (deploy/mpox-kiosk.service): readiness, watchdog, status
        from edge.outputs.systemd import SystemdNotify

        if notify := SystemdNotify.from_environment():
            outputs.append(notify)
    if cfg.rollout.public_key is not None or ModelStore.of(cfg).current() is not None:  # model trial and switch
        from edge.outputs.rollout import RolloutWatch

        outputs.append(RolloutWatch(cfg, kiosk))
    for output in outputs:
        kiosk.outputs.subscribe(output)
    return outputs
