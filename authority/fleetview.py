"""The authority's side of the fleet: follow every kiosk (`mpox fleet tail`), keep what they
report (`mpox fleet collect`), count it (`mpox fleet summary`) and announce a model to a site
(`mpox fleet announce`, edge/announce.py). The kiosk's side is edge/outputs/fleet.py.

Where the summary's figures come from: a collector's own SQLite file, not the broker. An MQTT
broker is not a history: it keeps only the last retained message of each topic (a kiosk's
status and health) and, for a persistent session, what is queued for a subscriber while it is
away. Counting a day's screenings by site and outcome needs someone who listened all day:
the collector subscribes to mpox/# with a persistent session at QoS 1 (the broker queues for it
while it restarts, up to its max_queued_messages), keeps each screening once by its uuid (the
uplink sends at least once) and each kiosk's latest status and health. The summary then needs
no broker, answers at once, and covers any window the file holds.
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
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge.announce import Announcement, model_topic
from edge.config import FleetConfig
from edge.decision import Outcome
from edge.errors import KioskError
from edge.outputs.fleet import describe, make_client, read_password
from edge.store import connect, utc

log = logging.getLogger(__name__)
CONNECT_TIMEOUT_S = 10.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS screenings (
    uuid TEXT PRIMARY KEY,
    site TEXT NOT NULL,
    kiosk TEXT NOT NULL,
    finished_utc TEXT NOT NULL,
    outcome TEXT NOT NULL,
    model_version TEXT NOT NULL,
    payload TEXT NOT NULL,
    received_utc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS screenings_finished ON screenings (finished_utc);
CREATE TABLE IF NOT EXISTS events (
    uuid TEXT PRIMARY KEY,
    site TEXT NOT NULL,
    kiosk TEXT NOT NULL,
    time_utc TEXT NOT NULL,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS kiosks (
    site TEXT NOT NULL,
    kiosk TEXT NOT NULL,
    status TEXT,
    status_utc TEXT,
    health TEXT,
    health_utc TEXT,
    PRIMARY KEY (site, kiosk)
);
"""


class FleetError(KioskError):
    """The broker cannot be reached or refused us, or a collector file cannot be used."""


@dataclass(frozen=True)
class Topic:
    site: str
    kiosk: str
    leaf: str  # screening | event | status | health


def parse_topic(topic: str) -> Topic | None:
    parts = topic.split("/")
    return Topic(*parts[1:]) if len(parts) == 4 and parts[0] == "mpox" else None


def announced_site(topic: str) -> str | None:
    """The site of a model announcement's topic (mpox/<site>/model), else None."""
    parts = topic.split("/")
    return parts[1] if len(parts) == 3 and parts[0] == "mpox" and parts[2] == "model" else None


def parse_window(text: str) -> float:
    """'24h', '7d', '90m', '30s' -> seconds; ValueError otherwise."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*", text)
    if not m:
        raise ValueError(f"'{text}' is not a time window: use e.g. 30m, 24h or 7d")
    return float(m[1]) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m[2]]


def subscribe(cfg: FleetConfig, topic: str, on_message: Callable[[str, bytes], None], client_id: str = "",
              persistent: bool = False) -> mqtt.Client:
    """A client subscribed to `topic` at QoS 1 (returns once the broker confirmed it), receiving
    on paho's thread; it reconnects and resubscribes by itself. FleetError, one line, when the
    first connection fails."""
    if persistent and not client_id:
        raise ValueError("a persistent session needs a client id")
    try:
        client = make_client(cfg, client_id, read_password(cfg), keep_session=persistent, reconnect=True)
    except (OSError, ValueError) as e:
        raise FleetError(f"cannot use the TLS files: {describe(e)}") from None
    refused: list[str] = []
    ready = threading.Event()

    def on_connect(c, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            refused.append(str(reason_code))
            ready.set()
        else:
            c.subscribe(topic, qos=1)

    client.on_connect = on_connect
    client.on_subscribe = lambda c, userdata, mid, reason_codes, properties: ready.set()  # from here on nothing is missed
    client.on_message = lambda c, u, msg: on_message(msg.topic, msg.payload)
    client.reconnect_delay_set(1, 30)
    session = {}
    if cfg.mqtt_version == "5":  # the broker keeps the subscription and queues for us while we are away (a day at most)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 86400 if persistent else 0
        session = {"clean_start": not persistent, "properties": props}
    _start(cfg, client, ready, refused, session)
    return client


def _start(cfg: FleetConfig, client: mqtt.Client, ready: threading.Event, refused: list[str], session: dict) -> None:
    """Connect and run paho's thread until `ready` is set; FleetError, one line, when the
    broker cannot be reached, refuses the login (`refused` filled) or does not answer."""
    try:
        client.connect(cfg.host, cfg.port, cfg.keepalive_s, **session)
    except (OSError, ValueError) as e:
        raise FleetError(f"broker {cfg.host}:{cfg.port}: {describe(e)}") from None
    client.loop_start()
    if not ready.wait(CONNECT_TIMEOUT_S) or refused:
        client.loop_stop()
        why = f"refused the login ({refused[0]}): check the username and password" if refused else "did not answer the login in time"
        raise FleetError(f"broker {cfg.host}:{cfg.port} {why}")


# ---- announce ----
def announce(cfg: FleetConfig, site: str, announcement: Announcement) -> str:
    """Publish a site's model announcement, retained (a kiosk off now gets it when it
    connects), and wait for the broker's acknowledgement; returns the topic. FleetError, one
    line, when the broker cannot be reached or refuses it."""
    topic = model_topic(site)
    try:
        client = make_client(cfg, "", read_password(cfg))
    except (OSError, ValueError) as e:
        raise FleetError(f"cannot use the TLS files: {describe(e)}") from None
    refused: list[str] = []
    acks: list = []
    ready, acked = threading.Event(), threading.Event()

    def on_connect(c, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            refused.append(str(reason_code))
        ready.set()

    def on_publish(c, userdata, mid, reason_code, properties) -> None:
        acks.append(reason_code)
        acked.set()

    client.on_connect, client.on_publish = on_connect, on_publish
    _start(cfg, client, ready, refused, {})
    try:
        client.publish(topic, announcement.payload(), qos=1, retain=True)
        if not acked.wait(CONNECT_TIMEOUT_S):
            raise FleetError(f"broker {cfg.host}:{cfg.port} did not acknowledge the announcement in time")
        if acks[0].is_failure:  # MQTT 5: e.g. an ACL that does not let this login publish there
            raise FleetError(f"broker {cfg.host}:{cfg.port} refused the announcement on {topic} ({acks[0]})")
    finally:
        client.disconnect()
        client.loop_stop()
    return topic


# ---- tail ----
def describe_message(topic: str, payload: bytes) -> str:
    """One line a person reads, for any message under mpox/."""
    t = parse_topic(topic)
    if not payload and announced_site(topic) is not None:
        return f"{announced_site(topic)} model announcement withdrawn"
    try:
        body = json.loads(payload)
    except ValueError:
        return f"{topic} (not JSON: {payload[:80]!r})"
    if (site := announced_site(topic)) is not None and isinstance(body, dict):
        return (f"{body.get('at', '?')} {site} model announced: version {body.get('version')} at {body.get('url')} "
                f"(sha256 {str(body.get('sha256'))[:12]}...)")
    if t is None or not isinstance(body, dict):
        return f"{topic} {payload[:200].decode(errors='replace')}"
    who = f"{t.site}/{t.kiosk}"
    model = body.get("model") or {}
    if t.leaf == "screening":
        probs = body.get("probabilities") or {}
        top = max(probs.items(), key=lambda kv: kv[1], default=("?", 0.0))
        return (f"{body.get('finished_utc', '?')} {who} screening {body.get('outcome')} ({top[0]} {top[1]:.2f}) "
                f"model {model.get('name')} {model.get('version')} [{body.get('uuid')}]")
    if t.leaf == "event":
        return f"{body.get('time_utc', '?')} {who} event {body.get('kind')}: {body.get('detail', '')}"
    if t.leaf == "status":
        running = f" model {model.get('name')} {model.get('version')}" if model else ""
        return f"{body.get('at', '(last will)')} {who} {body.get('status')}{running}"
    if t.leaf == "health":
        return (f"{body.get('at', '?')} {who} health {body.get('state')} fps {body.get('fps')} dropped {body.get('dropped')} "
                f"camera outages {body.get('outages')} disk free {body.get('disk_free_mb')} MB outbox {body.get('outbox_unsent')} "
                f"model {model.get('version')}" + ("" if body.get("camera_ok", True) else f" CAMERA: {body.get('camera_problem')}"))
    return f"{who} {t.leaf} {json.dumps(body)}"


def tail(cfg: FleetConfig, site: str | None, out: Callable[[str], None], stop: threading.Event, raw: bool = False) -> None:
    """Print every kiosk's messages (retained status and health first) until stop is set."""
    topic = f"mpox/{site}/#" if site else "mpox/#"
    client = subscribe(cfg, topic, lambda t, p: out(f"{t} {p.decode(errors='replace')}" if raw else describe_message(t, p)))
    try:
        stop.wait()
    finally:
        client.disconnect()
        client.loop_stop()


# ---- collect ----
class Collection:
    """The collector's SQLite file (WAL; the summary reads it while the collector writes)."""

    def __init__(self, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db = connect(path)
            self.db.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as e:
            raise FleetError(f"cannot use the collector file {path}: {e}") from None
        self.stored = self.bad = 0

    def add(self, topic: str, payload: bytes, now: float | None = None) -> bool:
        """Store one message; False for what is not a kiosk's (counted in `bad`, logged once)
        and for the authority's own model announcements (not counted)."""
        if announced_site(topic) is not None:
            return False
        t = parse_topic(topic)
        try:
            body = json.loads(payload) if payload else {}
            if t is None or not isinstance(body, dict):
                raise ValueError("not a kiosk message")
            received = utc(now or time.time())
            if t.leaf == "screening":
                self.db.execute("INSERT OR IGNORE INTO screenings VALUES (?,?,?,?,?,?,?,?)",
                                (body["uuid"], t.site, t.kiosk, body["finished_utc"], Outcome(body["outcome"]).value,
                                 body["model"]["version"], payload.decode(), received))
            elif t.leaf == "event":
                self.db.execute("INSERT OR IGNORE INTO events VALUES (?,?,?,?,?,?)",
                                (body["uuid"], t.site, t.kiosk, body["time_utc"], body["kind"], body.get("detail", "")))
            elif t.leaf in ("status", "health"):
                self.db.execute(f"INSERT INTO kiosks (site, kiosk, {t.leaf}, {t.leaf}_utc) VALUES (?,?,?,?) ON CONFLICT (site, kiosk) "
                                f"DO UPDATE SET {t.leaf} = excluded.{t.leaf}, {t.leaf}_utc = excluded.{t.leaf}_utc",
                                (t.site, t.kiosk, payload.decode() if payload else None, received))
            else:
                raise ValueError(f"unknown topic leaf '{t.leaf}'")
        except (ValueError, KeyError, TypeError) as e:
            if not self.bad:
                log.warning("collector: skipped a message on %s (%s); further ones are counted, not logged", topic, e)
            self.bad += 1
            return False
        self.stored += 1
        return True

    def close(self) -> None:
        self.db.close()


def collect(cfg: FleetConfig, path: Path, stop: threading.Event, client_id: str,
            subscribed: threading.Event | None = None) -> Collection:
    """Keep every kiosk's messages in `path` until stop is set (`subscribed` is set once the
    broker confirmed the subscription). The file is written on this thread only (paho's hands
    messages over through a queue)."""
    import queue

    inbox: queue.Queue[tuple[str, bytes]] = queue.Queue()
    collection = Collection(path)
    client = subscribe(cfg, "mpox/#", lambda t, p: inbox.put((t, p)), client_id=client_id, persistent=True)
    log.info("collector: keeping what every kiosk reports in %s", path)
    if subscribed is not None:
        subscribed.set()
    try:
        while not stop.is_set():
            try:
                collection.add(*inbox.get(timeout=0.2))
            except queue.Empty:
                continue
    finally:
        client.disconnect()
        client.loop_stop()
        while not inbox.empty():
            collection.add(*inbox.get_nowait())
        collection.close()
    return collection


# ---- summary ----
@dataclass(frozen=True)
class Summary:
    since_utc: str
    counts: dict[str, dict[Outcome, int]]  # site -> outcome -> screenings
    kiosks: list[tuple[str, str, str, str, str]]  # site, kiosk, online/offline, model version, last heard (UTC)


def summarize(path: Path, window_s: float, now: float | None = None) -> Summary:
    if not path.is_file():
        raise FleetError(f"no collector file {path}: run `mpox fleet collect --db {path}` where it can listen all day")
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        since = utc((now or time.time()) - window_s)
        counts: dict[str, dict[Outcome, int]] = {}
        for site, outcome, n in db.execute("SELECT site, outcome, COUNT(*) FROM screenings WHERE finished_utc >= ? "
                                           "GROUP BY site, outcome ORDER BY site", (since,)):
            counts.setdefault(site, {o: 0 for o in Outcome})[Outcome(outcome)] = n
        kiosks = []
        for site, kiosk, status, health, status_utc, health_utc in db.execute(
                "SELECT site, kiosk, status, health, status_utc, health_utc FROM kiosks ORDER BY site, kiosk"):
            st = json.loads(status) if status else {}
            model = st.get("model") or (json.loads(health).get("model") if health else None) or {}
            kiosks.append((site, kiosk, st.get("status", "?"), model.get("version", "?"), max(filter(None, (status_utc, health_utc)))))
    except sqlite3.Error as e:
        raise FleetError(f"cannot read the collector file {path}: {e}") from None
    finally:
        db.close()
    return Summary(since, counts, kiosks)


def format_summary(s: Summary) -> str:
    outcomes = list(Outcome)
    head = ["site", *[o.value for o in outcomes], "total"]
    rows = [[site, *[str(c[o]) for o in outcomes], str(sum(c.values()))] for site, c in s.counts.items()]
    rows.append(["all", *[str(sum(c[o] for c in s.counts.values())) for o in outcomes],
                 str(sum(sum(c.values()) for c in s.counts.values()))])
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = [f"screenings since {s.since_utc}"] + ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in [head, *rows]]
    if s.kiosks:
        lines += ["", "kiosks (site/kiosk, status, model version, last heard UTC)"]
        lines += [f"{site}/{kiosk}  {status}  {version}  {heard}" for site, kiosk, status, version, heard in s.kiosks]
    return "\n".join(lines)
