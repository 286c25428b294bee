"""The fleet uplink: screenings, events, status and health to the authority's MQTT broker.

Store-and-forward, acknowledged end to end (edge/delivery.py): the audit log writes each
screening's and event's message to the `outbox` table in the same transaction as its own row
(edge/store.py). This output reads the outbox and publishes each row with its place in the
kiosk's numbered stream; the broker's PUBACK only frees room in the window. A row counts as
delivered when the authority's collector acknowledges it (a retained ack naming the highest
seq up to which it holds everything). What the collector asks for is sent again; what stays
unacknowledged is sent again, oldest first, after each reconnect and whenever resend_after_s
passes without an ack (the wait doubles while none comes, so a site whose collector is down
is not flooded). A broker crash, an outage, a network cut or a kiosk restart loses nothing; a
record may come twice with the same stream and seq, and the collector keeps one.

Threads: on_event and on_status run on the kiosk loop and only keep a reference and set an
Event. The uplink's own thread owns its SQLite connection (the AuditLog's belongs to the
loop), connects and reconnects with backoff, publishes outbox rows (at most WINDOW
unacknowledged by the broker) and health; paho's network thread runs while connected and
hands PUBACKs and messages back through deques. A connection problem is logged once when it
starts and once when it is over, never once per retry.

Each process has its own instance token: its MQTT client id (two kiosks configured with the
same id no longer knock each other off the broker) and its status carry it. A kiosk that sees
its own status topic say "online" from another instance with another outbox stream is
sharing its id: one warning line, and the warning in its status and health.

Topics, with the site from the config, the kiosk's id and its outbox stream:
  mpox/<site>/<kiosk>/screening  QoS 1: one JSON per screening (no picture), record version 2
  mpox/<site>/<kiosk>/event      QoS 1: camera outages and returns, start, stop
  mpox/<site>/<kiosk>/status     retained: online, the model and the instance on connect; last will: offline
  mpox/<site>/<kiosk>/health     retained, every health_interval_s: fps, drops, outages, disk, model, stream
  mpox/<site>/<kiosk>/ack/<stream>     subscribed: the collector's retained ack
  mpox/<site>/<kiosk>/resend/<stream>  subscribed: the collector's request for missing seqs
  mpox/<site>/model              subscribed (with a rollout key): the authority's model announcement,
                                 handed to edge/announce.py, which installs on its own thread
"""

from __future__ import annotations

import json
import logging
import secrets
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
from edge.delivery import Ack, Resend, ack_topic, envelope, resend_topic
from edge.events import Event, KioskStatus, ModelFacts, Started, model_fields, status_fields
from edge.store import connect, file_identity, outbox_stream, utc

if TYPE_CHECKING:
    from collections.abc import Callable

    from edge.announce import ModelFollower

log = logging.getLogger(__name__)
WINDOW = 100  # outbox rows published and not yet acknowledged by the broker
RESEND_BACKOFF = 32  # while no ack comes, the resend wait doubles up to resend_after_s times this
POLL_S = 5.0  # the outbox is read at least this often (rows whose write the disk delayed)
CONNACK_TIMEOUT_S = 10.0
DRAIN_S = 3.0  # at stop, how long the broker and the collector get to acknowledge what is left (the rest goes next start)
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
                 follow: ModelFollower | None = None, warn: Callable[[str, str | None], None] | None = None) -> None:
        """Starts the uplink's thread. db_path: the audit database (already migrated); follow:
        the site's model announcements go to it (None: not subscribed); warn: where a clash of
        kiosk ids is said besides the log and the broker (the kiosk's status: /healthz, the dashboard)."""
        self.cfg, self.kiosk_id, self.db_path, self.state_dir, self.model = cfg, kiosk_id, db_path, state_dir, model
        self.follow, self.warn = follow, warn
        self.base = f"mpox/{cfg.site}/{kiosk_id}"
        self.broker = f"{cfg.host}:{cfg.port}"
        self.instance = secrets.token_hex(4)  # this process, in its client id and its status
        self.stream: str | None = None  # the outbox's numbering (edge/delivery.py), read by the uplink's thread
        self.status: KioskStatus | None = None  # the loop's latest snapshot (replaced whole, read here)
        self.delivered = 0  # outbox rows the collector acknowledged in this run
        self.acked_upto = 0  # the collector's latest ack for this stream
        self.clash: str | None = None  # another live kiosk uses this id: the warning, else None
        self._db: sqlite3.Connection | None = None  # the uplink thread's own connection (_database)
        self._db_file: tuple[int, int] | None = None  # the file it was opened on
        self.wake = threading.Event()
        self.closing = threading.Event()
        self.connected = threading.Event()
        self.session_over = threading.Event()
        self.acks: deque[tuple[int, str | None]] = deque()  # (mid, refusal or None), from paho's thread
        self.inbox: deque[tuple[str, bytes]] = deque()  # acks, resend requests, our own status topic, from paho's thread
        self._inflight: dict[int, int] = {}  # paho mid -> outbox seq, until the broker's PUBACK
        self._published: dict[int, float] = {}  # outbox seq -> when last published (monotonic), until the collector's ack
        self._asked: set[int] = set()  # seqs to publish before new rows: asked for by the collector, or overdue
        self._cursor = 0  # highest outbox seq published in this connection
        self._wait = cfg.resend_after_s
        self._progress = time.monotonic()  # the last ack that moved, or the last resend
        self._heard_ack = False  # an ack came in this connection (a collector listens)
        self._overdue_said = False
        self._clashing: set[str] = set()  # the other streams seen under this id
        self._ignored: set[str] = set()  # topics whose bad message was already logged
        self._problem: str | None = None
        self._refused: str | None = None  # CONNACK or PUBACK refusal, from paho's thread
        self.client: mqtt.Client | None = None
        try:
            self.client = make_client(cfg, f"mpox-{cfg.site}-{kiosk_id}-{self.instance}", read_password(cfg))
        except (OSError, ValueError) as e:
            log.error("fleet: uplink off: cannot use the TLS files (%s); screening goes on and the outbox keeps every "
                      "event for when this is fixed", describe(e))
            return
        self.client.max_inflight_messages_set(WINDOW + 5)  # room for status and health beside the outbox window
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.on_message = self._on_message
        if follow is not None:
            follow.recorded = self.wake.set  # its outcome event waits in the outbox
        self.thread = threading.Thread(target=self._run, name="fleet-uplink", daemon=True)
        self.thread.start()

    @property
    def in_flight(self) -> int:
        """Records published and not yet taken by the broker (PUBACK)."""
        return len(self._inflight)

    @property
    def awaiting_ack(self) -> int:
        """Records published in this connection that the collector has not acknowledged."""
        return len(self._published)

    # ---- called on the kiosk loop: cheap ----
    def on_event(self, event: Event) -> None:
        if isinstance(event, Started):
            self.model = event.model
        self.wake.set()  # the audit log (subscribed first) has committed its row and outbox entry

    def on_status(self, status: KioskStatus) -> None:
        self.status = status

    def close(self) -> None:
        """Give the broker and the collector DRAIN_S to acknowledge what is left, say offline, disconnect."""
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
            # on every connection: the broker sends the retained ack, status and announcement
            topics = [(ack_topic(self.base, self.stream), 1), (resend_topic(self.base, self.stream), 1), (f"{self.base}/status", 1)]
            if self.follow is not None:
                topics.append((self.follow.topic, 1))
            client.subscribe(topics)
        self.wake.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connected.clear()
        self.session_over.set()
        self.wake.set()

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        self.acks.append((mid, str(reason_code) if reason_code.is_failure else None))
        self.wake.set()

    def _on_message(self, client, userdata, msg) -> None:
        if self.follow is None or msg.topic != self.follow.topic:
            self.inbox.append((msg.topic, msg.payload))  # the uplink's thread reads it (it owns the database)
            self.wake.set()
            return
        try:
            self.follow.offer(msg.payload, self.model)
        except Exception:  # an exception would end paho's network thread, and the uplink with it
            log.exception("fleet: the model announcement on %s could not be handled; the uplink goes on", msg.topic)

    # ---- the uplink's thread ----
    def _database(self) -> sqlite3.Connection:
        """The audit database, opened again when the store recreated its file (deleted or
        replaced while the kiosk ran): the old connection would read a file nobody writes."""
        now = file_identity(self.db_path)
        if self._db is not None and now is not None and now != self._db_file:
            log.warning("fleet: %s was recreated; the uplink reads the new file", self.db_path)
            self._db.close()
            self._db = None
        if self._db is None:
            self._db, self._db_file = connect(self.db_path), now
        return self._db

    def _run(self) -> None:
        db = self._database()
        try:
            self.stream = outbox_stream(db)
            self.client.will_set(f"{self.base}/status", self._presence(Presence.OFFLINE, with_time=False), qos=1, retain=True)
            backoff = min(1.0, self.cfg.reconnect_max_s)
            while not self.closing.is_set():
                if self._session(self._database()):
                    backoff = min(1.0, self.cfg.reconnect_max_s)
                if self.closing.wait(backoff):
                    break
                backoff = min(backoff * 2, self.cfg.reconnect_max_s)
        except Exception as e:  # the uplink's fault must not stop the kiosk; the outbox keeps everything
            log.exception("fleet: uplink stopped by an unexpected error (%s); screening goes on, the outbox keeps every event", e)
        finally:
            if self._db is not None:
                self._db.close()

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
            # everything unacknowledged goes again, oldest first; what is in flight paho resends itself
            self._cursor, self._heard_ack = 0, False
            self._published.clear()
            self._asked.clear()
            next_health = time.monotonic()
            while not self.session_over.is_set():
                db = self._database()
                self._step(db)
                now = time.monotonic()
                if now >= next_health:
                    self._publish_health(db)
                    next_health = now + self.cfg.health_interval_s
                if self.closing.is_set():
                    self._drain(db)
                    break
                self.wake.wait(min(POLL_S, self._wait, max(0.0, next_health - now)))
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
            self._take_pubacks(db)
            self._take_messages(db)
            if publish:
                self._resend_overdue()
                self._publish_outbox(db)
        except sqlite3.Error as e:  # e.g. the loop holds the database longer than the timeout: next wake retries
            self._report(f"audit database: {e}", db, connection=False)

    def _publish_outbox(self, db: sqlite3.Connection) -> None:
        """Asked-for rows first (oldest first), then new ones, WINDOW at most in flight."""
        flying = set(self._inflight.values())
        self._asked -= flying
        room = WINDOW - len(self._inflight)
        if room > 0 and self._asked:
            take = sorted(self._asked)[:room]
            self._asked.difference_update(take)
            rows = db.execute(f"SELECT seq, kind, payload FROM outbox WHERE seq IN ({','.join('?' * len(take))}) ORDER BY seq",
                              take).fetchall()  # sent or not: the collector's word counts; a pruned row is not there
            floor = self._bounds(db)[0]
            for seq, kind, payload in rows:
                self._send(seq, kind, payload, floor)
            room -= len(rows)
            flying = set(self._inflight.values())  # not again below
        while room > 0:
            rows = db.execute("SELECT seq, kind, payload FROM outbox WHERE sent_utc IS NULL AND seq > ? ORDER BY seq LIMIT ?",
                              (self._cursor, room)).fetchall()
            if not rows:
                return
            floor = self._bounds(db)[0]
            for seq, kind, payload in rows:
                self._cursor = seq
                if seq in flying:  # from the last connection: paho resends it
                    self._published.setdefault(seq, time.monotonic())
                else:
                    self._send(seq, kind, payload, floor)
                    room -= 1

    def _send(self, seq: int, kind: str, payload: str, floor: int) -> None:
        self._inflight[self.client.publish(f"{self.base}/{kind}", envelope(payload, self.stream, seq, floor), qos=self.cfg.qos).mid] = seq
        if seq > self.acked_upto:
            self._published[seq] = time.monotonic()

    def _resend_overdue(self) -> None:
        """When no ack has come for resend_after_s (doubling while none comes), the oldest
        unacknowledged WINDOW rows go again: a broker that lost them, a collector that was away."""
        if not self._published:
            return
        now = time.monotonic()
        oldest = min(self._published)
        if now - max(self._progress, self._published[oldest]) < self._wait:
            return
        self._asked.update(sorted(self._published)[:WINDOW])
        if not self._overdue_said:
            log.warning("fleet: the collector has not acknowledged %d records for %gs; sending them again, oldest first "
                        "(is `mpox fleet collect` running?)", len(self._published), self._wait)
            self._overdue_said = True
        self._progress = now
        self._wait = min(self._wait * 2, self.cfg.resend_after_s * RESEND_BACKOFF)

    def _take_pubacks(self, db: sqlite3.Connection) -> None:
        while self.acks:
            mid, refusal = self.acks.popleft()
            seq = self._inflight.pop(mid, None)
            if seq is not None and refusal:  # e.g. an ACL: kept, tried again on the next connection
                self._published.pop(seq, None)
                self._report(f"the broker refused a message: {refusal}", db, connection=False)

    def _take_messages(self, db: sqlite3.Connection) -> None:
        while self.inbox:
            topic, payload = self.inbox.popleft()
            try:
                if topic == ack_topic(self.base, self.stream):
                    self._acked(db, Ack.parse(payload))
                elif topic == resend_topic(self.base, self.stream):
                    self._asked.update(Resend.parse(payload).seqs())
                elif topic == f"{self.base}/status" and payload:
                    self._check_clash(json.loads(payload))
            except (ValueError, TypeError, AttributeError) as e:
                if topic not in self._ignored:
                    self._ignored.add(topic)
                    log.warning("fleet: ignored a message on %s (%s); further ones there are not logged", topic, e)

    def _acked(self, db: sqlite3.Connection, ack: Ack) -> None:
        self._heard_ack = True
        if ack.upto <= self.acked_upto:
            return
        self.delivered += db.execute("UPDATE outbox SET sent_utc = ? WHERE sent_utc IS NULL AND seq <= ?",
                                     (utc(time.time()), ack.upto)).rowcount
        self.acked_upto = ack.upto
        for seq in [s for s in self._published if s <= ack.upto]:
            del self._published[seq]
        self._progress, self._wait = time.monotonic(), self.cfg.resend_after_s
        if self._overdue_said:
            log.info("fleet: the collector acknowledges again (up to record %d)", ack.upto)
            self._overdue_said = False

    def _check_clash(self, body: dict) -> None:
        """Our own status topic: "online" from another instance with another outbox stream is
        another kiosk with our id (our own earlier run has our stream)."""
        other, stream = body.get("instance"), body.get("stream")
        if body.get("status") != Presence.ONLINE.value or not other or other == self.instance or stream == self.stream:
            return
        if stream in self._clashing:
            return
        self._clashing.add(stream)
        first = self.clash is None
        self.clash = (f"another kiosk uses the id '{self.kiosk_id}' at site {self.cfg.site} (instance {other}, outbox stream {stream}): "
                      "give each kiosk its own kiosk_id; until then their status and health overwrite each other")
        log.warning("fleet: %s", self.clash)
        if self.warn is not None:
            self.warn("fleet id", self.clash)
        if first:
            self._publish_presence(Presence.ONLINE)  # say it where the authority looks

    def _drain(self, db: sqlite3.Connection) -> None:
        deadline = time.monotonic() + DRAIN_S
        while time.monotonic() < deadline and not self.session_over.is_set():
            self._step(db)
            if not self._inflight and not (self._published and self._heard_ack):
                return
            self.wake.wait(0.1)
            self.wake.clear()

    def _bounds(self, db: sqlite3.Connection) -> tuple[int, int]:
        """(floor, last): the lowest seq the outbox still holds, and the highest it ever numbered."""
        low, high = db.execute("SELECT MIN(seq), MAX(seq) FROM outbox").fetchone()
        if low is None:
            row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
            high = row[0] if row else 0
            return high + 1, high
        return low, high

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
        body = {"status": presence.value, "site": self.cfg.site, "kiosk": self.kiosk_id, "instance": self.instance,
                "stream": self.stream}
        if with_time:
            body["at"] = utc(time.time())
        if presence == Presence.ONLINE:
            body["model"] = model_fields(self.model)
        if self.clash:
            body["clash"] = self.clash
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
            unsent, (floor, last) = self._unsent(db), self._bounds(db)
        except sqlite3.Error:
            unsent, floor, last = None, None, None
        figures = {k: v for k, v in status_fields(st).items() if k in HEALTH_FIGURES}
        self.client.publish(f"{self.base}/health", json.dumps({
            "at": utc(time.time()), "site": self.cfg.site, "kiosk": self.kiosk_id, **figures,
            "disk_free_mb": None if disk_free is None else round(disk_free / 1e6, 1),
            "outbox_unsent": unsent, "model": model_fields(self.model), "instance": self.instance, "stream": self.stream,
            "seq_floor": floor, "seq_last": last, "acked_upto": self.acked_upto, "clash": self.clash}), qos=0, retain=True)
