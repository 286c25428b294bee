"""Model announcements: how the health authority tells a site's kiosks that a new model is out.

The authority publishes one retained message per site on `mpox/<site>/model` (`mpox fleet
announce`): a JSON object {"url", "version", "sha256"} naming a signed bundle on its own
server, the model's version and the bundle file's sha256 (what `mpox models bundle` prints),
plus "at", when it was announced, so announcing again is a new message. Being retained, it
reaches a kiosk that was off or out of reach when it was sent, as soon as its uplink connects.

A kiosk with the uplink on and a rollout key follows it (edge/outputs/fleet.py subscribes and
hands each message to ModelFollower.offer on paho's thread): a version it runs, or one it
rolled back, is ignored quietly; otherwise install_bundle (edge/rollout.py) runs on the
follower's own thread with the announced sha256 and version, so a bundle replaced on the
server or in transit is refused. The outcome is one log line and one event in the audit log
and its outbox (the authority hears it through the uplink, store-and-forward). The running
kiosk then moves to the new model between screenings exactly as after `mpox models install`
(edge/outputs/rollout.py: in-process restart; under systemd an exec keeping the PID, edge/cli.py).
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

from edge.errors import KioskError
from edge.events import ModelFacts

if TYPE_CHECKING:
    from edge.config import KioskConfig

log = logging.getLogger(__name__)
SHA256 = re.compile(r"[0-9a-fA-F]{64}")
MAX_URL = 2048
MAX_VERSION = 128


class AnnouncementError(ValueError):
    """A model announcement that cannot be followed: the one-line reason."""


class AnnouncementEvent(str, Enum):
    """The audit log's (and the fleet's) event kinds for a followed announcement."""

    INSTALLED = "model_installed"
    REFUSED = "model_refused"


def model_topic(site: str) -> str:
    return f"mpox/{site}/model"


@dataclass(frozen=True)
class Announcement:
    url: str  # the bundle on the authority's own server
    version: str  # the model's version, as its rt_info says
    sha256: str  # of the bundle file
    allow_downgrade: bool = False  # the authority means to go back: install even if older than the model running

    def __post_init__(self) -> None:
        if not isinstance(self.url, str) or not self.url.startswith(("http://", "https://")):
            raise AnnouncementError(f"url must be an http:// or https:// address, got {str(self.url)[:80]!r}")
        if len(self.url) > MAX_URL or any(c.isspace() for c in self.url):
            raise AnnouncementError("url is longer than 2048 characters or holds spaces")
        if not isinstance(self.version, str) or not 0 < len(self.version) <= MAX_VERSION or not self.version.isprintable():
            raise AnnouncementError(f"version must be 1 to {MAX_VERSION} printable characters, got {str(self.version)[:80]!r}")
        if not isinstance(self.sha256, str) or not SHA256.fullmatch(self.sha256):
            raise AnnouncementError(f"sha256 must be 64 hex digits (the bundle file's), got {str(self.sha256)[:80]!r}")
        if not isinstance(self.allow_downgrade, bool):
            raise AnnouncementError(f"allow_downgrade must be true or false, got {str(self.allow_downgrade)[:80]!r}")

    def payload(self, at: float | None = None) -> str:
        from edge.store import utc

        body = {"url": self.url, "version": self.version, "sha256": self.sha256.lower(), "at": utc(time.time() if at is None else at)}
        if self.allow_downgrade:
            body["allow_downgrade"] = True
        return json.dumps(body)


def parse_announcement(payload: bytes) -> Announcement:
    """The announcement in a message, or AnnouncementError; fields other than url, version,
    sha256, allow_downgrade (and "at") are ignored, so an authority can add some without stopping old kiosks."""
    try:
        body = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        raise AnnouncementError(f"not JSON: {payload[:60]!r}") from None
    if not isinstance(body, dict):
        raise AnnouncementError(f"not a JSON object: {payload[:60]!r}")
    missing = [k for k in ("url", "version", "sha256") if k not in body]
    if missing:
        raise AnnouncementError(f"missing {', '.join(missing)} (expected url, version, sha256)")
    return Announcement(body["url"], body["version"], body["sha256"], body.get("allow_downgrade", False))


class ModelFollower:
    """A kiosk following its site's announcements. offer() runs on paho's thread and only
    decides whether there is work; installs run one at a time on the follower's own thread,
    never on the kiosk loop (whose engine and audit connection it must not touch)."""

    def __init__(self, cfg: KioskConfig, db_path: Path) -> None:
        """db_path: the audit database (already migrated), for the outcome event."""
        self.cfg, self.db_path = cfg, db_path
        self.topic = model_topic(cfg.fleet.site)
        self.recorded: Callable[[], None] = lambda: None  # the uplink's wake-up: an event waits in the outbox
        self._last: bytes | None = None  # paho's thread only
        self._lock = threading.Lock()
        self._pending: tuple[Announcement, ModelFacts] | None = None  # the newest announcement wins
        self._worker: threading.Thread | None = None
        self._closed = False

    def offer(self, payload: bytes, running: ModelFacts) -> None:
        """A message on the model topic (paho's thread): quick, and never raises for its content."""
        if payload == self._last:
            return  # the retained message again, after a reconnect: already handled
        self._last = payload
        if not payload:
            log.debug("fleet: the model announcement on %s was withdrawn", self.topic)
            return
        try:
            announcement = parse_announcement(payload)
        except AnnouncementError as e:
            log.error("fleet: ignored the model announcement on %s: %s; the kiosk keeps running %s %s", self.topic, e,
                      running.name, running.version)
            return
        with self._lock:
            if self._closed:
                return
            self._pending = (announcement, running)
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, name="fleet-model-install", daemon=True)
                self._worker.start()

    def close(self) -> None:
        """Nothing new starts; an install under way finishes on its own (it is safe to cut:
        edge/rollout.py), and its event waits in the outbox for the next start."""
        with self._lock:
            self._closed = True
            self._pending = None

    def _work(self) -> None:
        while True:
            with self._lock:
                job, self._pending = self._pending, None
                if job is None or self._closed:
                    self._worker = None
                    return
            self._follow(*job)

    def _follow(self, a: Announcement, running: ModelFacts) -> None:
        from edge.rollout import InstallOutcome, install_bundle, rolled_back

        if a.version == running.version:
            log.debug("fleet: announced model %s is the one running", a.version)
            return
        if (why := rolled_back(self.cfg, a.version)) is not None:
            log.debug("fleet: announced model %s was rolled back on this kiosk (%s): not installed again", a.version, why)
            return
        try:
            result = install_bundle(a.url, self.cfg, sha256=a.sha256, version=a.version, allow_downgrade=a.allow_downgrade)
        except (KioskError, OSError) as e:
            self._outcome(AnnouncementEvent.REFUSED, f"{a.version} from {a.url}: {e}", running)
            return
        except Exception as e:  # a fault here must not go unseen nor stop the kiosk
            log.exception("fleet: installing the announced model %s failed unexpectedly", a.version)
            self._outcome(AnnouncementEvent.REFUSED, f"{a.version} from {a.url}: unexpected {type(e).__name__}: {e}", running)
            return
        if result.outcome is InstallOutcome.ALREADY_CURRENT:
            log.debug("fleet: announced model %s is already installed (%s)", a.version, result.folder.name)
            return
        self._outcome(AnnouncementEvent.INSTALLED, f"{result.name} {result.version} from {a.url} as {result.folder.name}, "
                                                   f"on trial; rollback goes to {result.fallback}", running)

    def _outcome(self, kind: AnnouncementEvent, detail: str, running: ModelFacts) -> None:
        from edge.store import append_event

        if kind is AnnouncementEvent.INSTALLED:
            log.info("fleet: announced model installed: %s; the kiosk moves to it between screenings", detail)
        else:
            log.error("fleet: announced model refused: %s; the kiosk keeps running %s %s", detail, running.name, running.version)
        try:
            append_event(self.db_path, self.cfg.kiosk_id, kind.value, detail)
        except sqlite3.Error as e:
            log.error("fleet: the %s event could not be written to the audit log (%s)", kind.value, e)
            return
        self.recorded()
