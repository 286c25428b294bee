"""The fleet uplink: screenings, events, status and health to the authority's MQTT broker.

Store-and-forward: the audit log writes each screening's and event's message to the `outbox`
table in the same transaction as its own row (edge/store.py). This output only reads the
outbox and marks a row sent when the broker has acknowledged it (PUBACK; PUBCOMP at QoS 2),
so a broker outage, a network cut or a kiosk restart loses nothing: what is not acknowledged
is sent again (at least once; a repeat carries the same uuid, and the collector keeps one).

Threads: on_event and on_status run on the kiosk loop and only keep a reference and set an
Event. The uplink's own thread owns its SQLite connection (the AuditLog's belongs to the
loop), connects and reconnects with backoff, publishes outbox rows (at most WINDOW
unacknowledged) and health; paho's network thread runs while connected and hands
acknowledgements back through a deque. A connection problem is logged once when it starts
and once when it is over, never once per retry.

Topics, with the site from the config and the kiosk's id:
  mpox/<site>/<kiosk>/screening  QoS 1: one JSON per screening (no picture)
  mpox/<site>/<kiosk>/event      QoS 1: camera outages and returns, start, stop
  mpox/<site>/<kiosk>/status     retained: online and the model on connect; last will: offline
  mpox/<site>/<kiosk>/health     retained, every health_interval_s: fps, drops, outages, disk, model
  mpox/<site>/model              subscribed (with a rollout key): the authority's model announcement,
                                 handed to edge/announce.py, which installs on its own thread
"""

from __future__ import annotations

import json
import logging
import shutil
import socket
import sqlite3
import ssl
import threading
import time
from collections import deque
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from edge.config import FleetConfig, systemd_credential
from edge.events import Event, KioskStatus, ModelFacts, Started, model_fields, status_fields
from edge.store import connect, utc

if TYPE_CHECKING:
    from edge.announce import ModelFollower

log = logging.getLogger(__name__)
WINDOW = 100  # outbox rows published and not yet acknowledged
POLL_S = 5.0  # the outbox is read at least this often (rows whose write the disk delayed)
CONNACK_TIMEOUT_S = 10.0
DRAIN_S = 3.0  # at stop, how long the broker gets to acknowledge what is left (the rest goes next start)
CREDENTIAL = "mqtt-password"  # systemd LoadCredential= name
HEALTH_FIGURES = ("state", "camera_ok", "camera_problem", "fps", "frames", "dropped", "outages", "screenings", "abandoned",
                  "uptime_s")  # of the status (edge.events.status_fields), in each health message


class Presence(str, Enum):
    ONLINE = "online"
    OFFLINE = "offline"


def read_password(cfg: FleetConfig) -> str | None:
    """The systemd credential when the service has one, else the config's password."""
    path = systemd_credential(CREDENTIAL)
    return path.read_text().rstrip("\r\n") if path is not None else cfg.password


def make_client(cfg: FleetConfig, client_id: str, password: str | None = None, keep_session: bool = False,
                reconnect: bool = False) -> mqtt.Client:
    """A paho client (callback API v2) with the config's protocol, login and TLS; OSError or
    ValueError when a TLS file cannot be read. keep_session (3.1.1): the broker keeps the
    session (MQTT 5 asks for that when connecting); reconnect: paho's loop reconnects by itself."""
    version = MQTTProtocolVersion.MQTTv5 if cfg.mqtt_version == "5" else MQTTProtocolVersion.MQTTv311
    session = {} if version == MQTTProtocolVersion.MQTTv5 else {"clean_session": not keep_session}
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=version, reconnect_on_failure=reconnect,
                         **session)
    if cfg.username:
        client.username_pw_set(cfg.username, password)
    if cfg.tls:
        client.tls_set(ca_certs=str(cfg.ca_file) if cfg.ca_file else None,
                       certfile=str(cfg.client_cert) if cfg.client_cert else None,
                       keyfile=str(cfg.client_key) if cfg.client_key else None)
    return client


def describe(e: BaseException) -> str:
    """A connection failure as a technician reads it."""
    if isinstance(e, ssl.SSLCertVerificationError):
        return f"TLS: the broker's certificate is not trusted ({e.verify_message}); check fleet.ca_file and fleet.host"
    if isinstance(e, ssl.SSLError):
        return f"TLS failed ({e.reason or e})"
    if isinstance(e, ConnectionRefusedError):
        return "connection refused (is the broker running and listening on that port?)"
    if isinstance(e, socket.gaierror):
        return f"unknown host ({e.strerror})"
    if isinstance(e, TimeoutError):
        return "no answer (timed out)"
    if isinstance(e, OSError):
        return e.strerror or str(e) or type(e).__name__
    return str(e) or type(e).__name__


class FleetUplink:
    def __init__(self, cfg: FleetConfig, kiosk_id: str, db_path: Path, state_dir: Path, model: ModelFacts,
                 follow: ModelFollower | None = None) -> None:
        """Starts the uplink's thread. db_path: the audit database (already migrated); follow:
        the site's model announcements go to it (None: not subscribed)."""
        self.cfg, self.kiosk_id, self.db_path, self.state_dir, self.model = cfg, kiosk_id, db_path, state_dir, model
        self.follow = follow
        self.base = f"mpox/{cfg.site}/{kiosk_id}"
        self.broker = f"{cfg.host}:{cfg.port}"
        self.status: KioskStatus | None = None  # the loop's latest snapshot (replaced whole, read here)
        self.sent = 0  # outbox rows the broker acknowledged
        self.wake = threading.Event()
        self.closing = threading.Event()
        self.connected = threading.Event()
        self.session_over = threading.Event()
        self.acks: deque[tuple[int, str | None]] = deque()  # (mid, refusal or None), from paho's thread
        self._inflight: dict[int, int] = {}  # paho mid -> outbox seq
        self._cursor = 0  # highest outbox seq published in this connection
        self._problem: str | None = None
        self._refused: str | None = None  # CONNACK or PUBACK refusal, from paho's thread
        self.client: mqtt.Client | None = None
        try:
            self.client = make_client(cfg, f"mpox-{cfg.site}-{kiosk_id}", read_password(cfg))
        except (OSError, ValueError) as e:
            log.error("fleet: uplink off: cannot use the TLS files (%s); screening goes on and the outbox keeps every "
                      "event for when this is fixed", describe(e))
            return
        self.client.will_set(f"{self.base}/status", self._presence(Presence.OFFLINE, with_time=False), qos=1, retain=True)
        self.client.max_inflight_messages_set(WINDOW + 5)  # room for status and health beside the outbox window
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        if follow is not None:
            follow.recorded = self.wake.set  # its outcome event waits in the outbox
            self.client.on_message = self._on_message
        self.thread = threading.Thread(target=self._run, name="fleet-uplink", daemon=True)
        self.thread.start()

    # ---- called on the kiosk loop: cheap ----
    def on_event(self, event: Event) -> None:
        if isinstance(event, Started):
            self.model = event.model
        self.wake.set()  # the audit log (subscribed first) has committed its row and outbox entry

    def on_status(self, status: KioskStatus) -> None:
        self.status = status

    def close(self) -> None:
        """Give the broker DRAIN_S to acknowledge what is left, say offline, disconnect."""
        if self.follow is not None:
            self.follow.close()
        if self.client is None:
            return
        self.closing.set()
        self.wake.set()
        self.thread.join(timeout=DRAIN_S + CONNACK_TIMEOUT_S)

    # ---- paho's network thread ----
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self._refused = str(reason_code)
            self.session_over.set()
        else:
            self.connected.set()
            if self.follow is not None:  # on every connection: the broker sends the retained announcement
                client.subscribe(self.follow.topic, qos=1)
        self.wake.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connected.clear()
        self.session_over.set()
        self.wake.set()

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        self.acks.append((mid, str(reason_code) if reason_code.is_failure else None))
        self.wake.set()

    def _on_message(self, client, userdata, msg) -> None:
        if msg.topic != self.follow.topic:
            return
        try:
            self.follow.offer(msg.payload, self.model)
        except Exception:  # an exception would end paho's network thread, and the uplink with it
            log.exception("fleet: the model announcement on %s could not be handled; the uplink goes on", msg.topic)

    # ---- the uplink's thread ----
    def _run(self) -> None:
        db = connect(self.db_path)
        try:
            backoff = min(1.0, self.cfg.reconnect_max_s)
            while not self.closing.is_set():
                if self._session(db):
                    backoff = min(1.0, self.cfg.reconnect_max_s)
                if self.closing.wait(backoff):
                    break
                backoff = min(backoff * 2, self.cfg.reconnect_max_s)
        except Exception as e:  # the uplink's fault must not stop the kiosk; the outbox keeps everything
            log.exception("fleet: uplink stopped by an unexpected error (%s); screening goes on, the outbox keeps every event", e)
        finally:
            db.close()

    def _session(self, db: sqlite3.Connection) -> bool:
        """One connection, from connect to its end; True if the broker accepted it."""
        self.connected.clear()
        self.session_over.clear()
        self._refused = None
        try:
            self.client.connect(self.cfg.host, self.cfg.port, self.cfg.keepalive_s)
        except (OSError, ValueError) as e:
            self._report(describe(e), db)
            return False
        self.client.loop_start()
        accepted = False
        try:
            deadline = time.monotonic() + CONNACK_TIMEOUT_S
            while not (self.connected.is_set() or self.session_over.is_set() or self.closing.is_set()) and time.monotonic() < deadline:
                self.wake.wait(0.5)
                self.wake.clear()
            if not self.connected.is_set():
                if self.closing.is_set():
                    return False
                self._report(self._refusal() if self._refused else "the broker did not answer the login in time", db)
                return False
            accepted = True
            self._report(None, db)
            self._publish_presence(Presence.ONLINE)
            self._cursor = 0  # rows refused earlier are tried again; those in flight paho resends itself
            next_health = time.monotonic()
            while not self.session_over.is_set():
                self._step(db)
                now = time.monotonic()
                if now >= next_health:
                    self._publish_health(db)
                    next_health = now + self.cfg.health_interval_s
                if self.closing.is_set():
                    self._drain(db)
                    break
                self.wake.wait(min(POLL_S, max(0.0, next_health - now)))
                self.wake.clear()
            if not self.closing.is_set():
                self._report("lost the connection", db)
            return True
        finally:
            if self.closing.is_set() and self.connected.is_set():
                try:  # a clean stop: no last will, so say it
                    self.client.publish(f"{self.base}/status", self._presence(Presence.OFFLINE), qos=1,
                                        retain=True).wait_for_publish(1.0)
                except (RuntimeError, ValueError):
                    pass  # the connection went meanwhile: the last will says it
            if accepted:
                self.client.disconnect()
            self.client.loop_stop()
            self._step(db, publish=False)

    def _step(self, db: sqlite3.Connection, publish: bool = True) -> None:
        try:
            self._mark_acked(db)
            if publish:
                self._publish_outbox(db)
        except sqlite3.Error as e:  # e.g. the loop holds the database longer than the timeout: next wake retries
            self._report(f"audit database: {e}", db, connection=False)

    def _publish_outbox(self, db: sqlite3.Connection) -> None:
        while len(self._inflight) < WINDOW:
            rows = db.execute("SELECT seq, kind, payload FROM outbox WHERE sent_utc IS NULL AND seq > ? ORDER BY seq LIMIT ?",
                              (self._cursor, WINDOW - len(self._inflight))).fetchall()
            if not rows:
                return
            flying = set(self._inflight.values())
            for seq, kind, payload in rows:
                self._cursor = seq
                if seq not in flying:
                    self._inflight[self.client.publish(f"{self.base}/{kind}", payload, qos=self.cfg.qos).mid] = seq

    def _mark_acked(self, db: sqlite3.Connection) -> None:
        done = []
        while self.acks:
            mid, refusal = self.acks.popleft()
            seq = self._inflight.pop(mid, None)
            if seq is None:
                continue  # status or health
            if refusal:  # e.g. an ACL: kept, tried again on the next connection
                self._report(f"the broker refused a message: {refusal}", db, connection=False)
            else:
                done.append(seq)
        if done:
            db.execute(f"UPDATE outbox SET sent_utc = ? WHERE seq IN ({','.join('?' * len(done))})", (utc(time.time()), *done))
            self.sent += len(done)

    def _drain(self, db: sqlite3.Connection) -> None:
        deadline = time.monotonic() + DRAIN_S
        while time.monotonic() < deadline and not self.session_over.is_set():
            self._step(db)
            if not self._inflight:
                return
            self.wake.wait(0.1)
            self.wake.clear()

    def _unsent(self, db: sqlite3.Connection) -> int:
        return db.execute("SELECT COUNT(*) FROM outbox WHERE sent_utc IS NULL").fetchone()[0]

    def _report(self, problem: str | None, db: sqlite3.Connection, connection: bool = True) -> None:
        """One log line when a problem starts or changes, one when it is over."""
        if problem == self._problem:
            return
        self._problem = problem
        try:
            waiting = f"{self._unsent(db)} messages wait in the outbox"
        except sqlite3.Error:
            waiting = "the outbox keeps every event"
        if problem is None:
            log.info("fleet: connected to %s as %s; %s", self.broker, self.base, waiting)
        elif connection:
            log.error("fleet: broker %s: %s; screening goes on, %s (retrying every %gs at most)", self.broker, problem, waiting,
                      self.cfg.reconnect_max_s)
        else:
            log.error("fleet: %s; screening goes on, %s", problem, waiting)

    def _refusal(self) -> str:
        words = self._refused.lower()
        if "password" in words or "authori" in words:
            return f"the broker refused the login ({self._refused}): check fleet.username and the password"
        return f"the broker refused the connection ({self._refused})"

    def _presence(self, presence: Presence, with_time: bool = True) -> str:
        body = {"status": presence.value, "site": self.cfg.site, "kiosk": self.kiosk_id}
        if with_time:
            body["at"] = utc(time.time())
        if presence == Presence.ONLINE:
            body["model"] = model_fields(self.model)
        return json.dumps(body)

    def _publish_presence(self, presence: Presence) -> None:
        self.client.publish(f"{self.base}/status", self._presence(presence), qos=1, retain=True)

    def _publish_health(self, db: sqlite3.Connection) -> None:
        st = self.status or KioskStatus()
        try:
            disk_free = shutil.disk_usage(self.state_dir).free
        except OSError:
            disk_free = None
        try:
            unsent = self._unsent(db)
        except sqlite3.Error:
            unsent = None
        figures = {k: v for k, v in status_fields(st).items() if k in HEALTH_FIGURES}
        self.client.publish(f"{self.base}/health", json.dumps({
            "at": utc(time.time()), "site": self.cfg.site, "kiosk": self.kiosk_id, **figures,
            "disk_free_mb": None if disk_free is None else round(disk_free / 1e6, 1),
            "outbox_unsent": unsent, "model": model_fields(self.model)}), qos=0, retain=True)
