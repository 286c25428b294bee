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

Nothing lost end to end (edge/delivery.py): a kiosk's version-2 records are numbered in its
outbox stream. The collector keeps each (kiosk, stream, seq) once, commits, and only then
publishes the stream's retained ack (mpox/<site>/<kiosk>/ack/<stream>: every record up to
`upto` is here); a hole (seq 5 after 2) gets a resend request (.../resend/<stream>, at most
every ask_every_s). The kiosk marks a record delivered only when an ack covers it. The summary
says per kiosk how many records are missing (the kiosk has them, the collector not yet) and
lost (the kiosk no longer holds them: its retention removed them before they arrived).
"""

from __future__ import annotations

import json
import logging
import queue
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge.announce import Announcement, model_topic
from edge.config import FleetConfig
from edge.decision import Outcome
from edge.delivery import Ack, Resend, ack_topic, holes, resend_topic, sequenced, spans
from edge.errors import KioskError
from edge.outputs.fleet import describe, make_client, read_password
from edge.store import connect, utc

log = logging.getLogger(__name__)
CONNECT_TIMEOUT_S = 10.0
ASK_EVERY_S = 10.0  # a stream's holes are asked for at most this often
ASK_FOR_S = 86400.0  # ... and only while its kiosk was heard within this long
BATCH = 500  # messages committed together before their acks go out

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
CREATE TABLE IF NOT EXISTS received (
    site TEXT NOT NULL,
    kiosk TEXT NOT NULL,
    stream TEXT NOT NULL,
    seq INTEGER NOT NULL,
    uuid TEXT,
    received_utc TEXT NOT NULL,
    PRIMARY KEY (site, kiosk, stream, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS streams (
    site TEXT NOT NULL,
    kiosk TEXT NOT NULL,
    stream TEXT NOT NULL,
    upto INTEGER NOT NULL,
    seen INTEGER NOT NULL,
    top INTEGER NOT NULL,
    lost INTEGER NOT NULL,
    heard_utc TEXT NOT NULL,
    PRIMARY KEY (site, kiosk, stream)
);
"""
# received: each version-2 record once, by kiosk, stream and seq. streams: per kiosk stream,
# upto = every seq up to it received or gone for good; seen = the highest received; top = the
# highest the kiosk said it has; lost = seqs the kiosk no longer holds that never came.


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


@dataclass(frozen=True)
class StreamKey:
    """One kiosk's outbox stream (edge/delivery.py)."""

    site: str
    kiosk: str
    stream: str

    @property
    def base(self) -> str:
        return f"mpox/{self.site}/{self.kiosk}"


def answer_topic(topic: str) -> tuple[StreamKey, str] | None:
    """(stream, "ack" or "resend") for the collector's own answers to a kiosk, else None."""
    parts = topic.split("/")
    if len(parts) == 5 and parts[0] == "mpox" and parts[3] in ("ack", "resend"):
        return StreamKey(parts[1], parts[2], parts[4]), parts[3]
    return None


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
              persistent: bool = False, on_connected: Callable[[], None] | None = None) -> mqtt.Client:
    """A client subscribed to `topic` at QoS 1 (returns once the broker confirmed it), receiving
    on paho's thread; it reconnects and resubscribes by itself (on_connected: called on each
    connection). FleetError, one line, when the first connection fails."""
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
            if on_connected is not None:
                on_connected()

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
    if (answer := answer_topic(topic)) is not None and isinstance(body, dict):
        key, leaf = answer
        what = f"holds every record up to {body.get('upto')}" if leaf == "ack" else \
            f"asks for records {spans(tuple(map(tuple, body.get('ranges') or [])))}"
        return f"{body.get('at', '?')} collector {what} of {key.site}/{key.kiosk} (stream {key.stream})"
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
        clash = f" CLASH: {body['clash']}" if body.get("clash") else ""
        return f"{body.get('at', '(last will)')} {who} {body.get('status')}{running}{clash}"
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
            self.db.execute("PRAGMA synchronous=FULL")  # an ack promises the record is on disk
            self.db.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as e:
            raise FleetError(f"cannot use the collector file {path}: {e}") from None
        self.stored = self.bad = self.repeats = 0
        self.to_ack: set[StreamKey] = set()  # streams whose ack moved (or a kiosk repeats what is acknowledged)
        self._asked: dict[StreamKey, float] = {}  # when each stream's holes were last asked for (monotonic)

    @contextmanager
    def batch(self) -> Iterator[None]:
        """One transaction: what add() keeps inside is on disk when it ends."""
        with self.db:
            self.db.execute("BEGIN")
            yield

    def add(self, topic: str, payload: bytes, now: float | None = None) -> bool:
        """Store one message; False for what is not a kiosk's (counted in `bad`, logged once),
        for a repeat of a record already kept (counted in `repeats`), and for the authority's
        own model announcements and answers (not counted)."""
        if announced_site(topic) is not None or answer_topic(topic) is not None:
            return False
        t = parse_topic(topic)
        try:
            body = json.loads(payload) if payload else {}
            if t is None or not isinstance(body, dict):
                raise ValueError("not a kiosk message")
            received = utc(now or time.time())
            if t.leaf in ("screening", "event") and (place := sequenced(body)) is not None:
                key = StreamKey(t.site, t.kiosk, place.stream)
                fresh = self.db.execute("INSERT OR IGNORE INTO received VALUES (?,?,?,?,?,?)",
                                        (key.site, key.kiosk, key.stream, place.seq, str(body.get("uuid")), received)).rowcount
                self._advance(key, place.floor, received, seen=place.seq)
                if not fresh:
                    self.repeats += 1
                    self.to_ack.add(key)  # it did not hear the ack: say it again
                    return False
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
                floor, last, stream = body.get("seq_floor"), body.get("seq_last"), body.get("stream")
                if t.leaf == "health" and isinstance(stream, str) and stream.isalnum() and isinstance(floor, int) and \
                        isinstance(last, int) and 0 < floor <= last + 1:
                    self._advance(StreamKey(t.site, t.kiosk, stream), floor, received, top=last)
            else:
                raise ValueError(f"unknown topic leaf '{t.leaf}'")
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            if not self.bad:
                log.warning("collector: skipped a message on %s (%s); further ones are counted, not logged", topic, e)
            self.bad += 1
            return False
        self.stored += 1
        return True

    def _advance(self, key: StreamKey, floor: int, heard: str, seen: int = 0, top: int = 0) -> None:
        """Move the stream's ack: past the kiosk's floor (what it no longer holds and never came
        is lost), then over every seq received in a row."""
        where, args = "site = ? AND kiosk = ? AND stream = ?", (key.site, key.kiosk, key.stream)
        row = self.db.execute(f"SELECT upto, seen, top, lost FROM streams WHERE {where}", args).fetchone()
        upto, old_seen, old_top, lost = row if row else (floor - 1, 0, 0, 0)  # first heard: its numbering starts at the floor
        before = upto if row else 0
        if floor - 1 > upto:
            have = self.db.execute(f"SELECT COUNT(*) FROM received WHERE {where} AND seq > ? AND seq < ?", (*args, upto, floor)).fetchone()[0]
            lost += floor - 1 - upto - have
            upto = floor - 1
        for (seq,) in self.db.execute(f"SELECT seq FROM received WHERE {where} AND seq > ? ORDER BY seq", (*args, upto)):
            if seq != upto + 1:
                break
            upto = seq
        seen = max(old_seen, seen)
        self.db.execute("INSERT OR REPLACE INTO streams VALUES (?,?,?,?,?,?,?,?)",
                        (*args, upto, seen, max(old_top, seen, top, upto), lost, heard))
        if upto > before:
            self.to_ack.add(key)

    def acks(self, every: bool = False) -> list[tuple[str, Ack]]:
        """(topic, ack) for each stream whose ack moved since the last call (every: all streams)."""
        keys = [StreamKey(*r) for r in self.db.execute("SELECT site, kiosk, stream FROM streams WHERE upto > 0")] if every \
            else sorted(self.to_ack, key=lambda k: (k.site, k.kiosk, k.stream))
        self.to_ack.clear()
        out = []
        for key in keys:
            row = self.db.execute("SELECT upto FROM streams WHERE site = ? AND kiosk = ? AND stream = ?",
                                  (key.site, key.kiosk, key.stream)).fetchone()
            if row and row[0] > 0:
                out.append((ack_topic(key.base, key.stream), Ack(row[0])))
        return out

    def requests(self, clock: float, ask_every_s: float = ASK_EVERY_S, now: float | None = None) -> list[tuple[str, Resend]]:
        """(topic, request) for each stream with a hole below its highest received seq, heard of
        within ASK_FOR_S and not asked for within ask_every_s (clock: monotonic)."""
        out = []
        for site, kiosk, stream, upto, seen in self.db.execute(
                "SELECT site, kiosk, stream, upto, seen FROM streams WHERE seen > upto + 1 AND heard_utc >= ?",
                (utc((now or time.time()) - ASK_FOR_S),)).fetchall():
            key = StreamKey(site, kiosk, stream)
            if clock - self._asked.get(key, clock - ask_every_s) < ask_every_s:
                continue
            have = (seq for (seq,) in self.db.execute("SELECT seq FROM received WHERE site = ? AND kiosk = ? AND stream = ? "
                                                      "AND seq > ? AND seq < ? ORDER BY seq", (site, kiosk, stream, upto, seen)))
            if ranges := holes(upto, seen, have):
                self._asked[key] = clock
                out.append((resend_topic(key.base, stream), Resend(ranges)))
        return out

    def close(self) -> None:
        self.db.close()


def collect(cfg: FleetConfig, path: Path, stop: threading.Event, client_id: str,
            subscribed: threading.Event | None = None, ask_every_s: float = ASK_EVERY_S) -> Collection:
    """Keep every kiosk's messages in `path` until stop is set (`subscribed` is set once the
    broker confirmed the subscription), and answer each kiosk stream: its ack once what it
    covers is committed, a resend request for a hole. The file is written on this thread only
    (paho's hands messages over through a queue)."""
    inbox: queue.Queue[tuple[str, bytes]] = queue.Queue()
    collection = Collection(path)
    reconnected = threading.Event()  # then every ack again: one published while away may be gone
    client = subscribe(cfg, "mpox/#", lambda t, p: inbox.put((t, p)), client_id=client_id, persistent=True,
                       on_connected=reconnected.set)
    log.info("collector: keeping what every kiosk reports in %s", path)
    if subscribed is not None:
        subscribed.set()

    def take(first: tuple[str, bytes] | None) -> None:
        with collection.batch():
            if first is not None:
                collection.add(*first)
            for _ in range(BATCH):
                try:
                    collection.add(*inbox.get_nowait())
                except queue.Empty:
                    break

    def answer() -> None:
        every = reconnected.is_set()
        reconnected.clear()
        for topic, ack in collection.acks(every):
            client.publish(topic, ack.payload(utc(time.time())), qos=1, retain=True)
        for topic, request in collection.requests(time.monotonic(), ask_every_s):
            log.info("collector: asked %s for records %s", topic.rsplit("/", 2)[0], spans(request.ranges))
            client.publish(topic, request.payload(utc(time.time())), qos=1)

    try:
        while not stop.is_set():
            try:
                take(inbox.get(timeout=0.2))
            except queue.Empty:
                pass
            answer()
    finally:
        take(None)
        answer()
        client.disconnect()
        client.loop_stop()
        collection.close()
    return collection


# ---- summary ----
@dataclass(frozen=True)
class KioskView:
    site: str
    kiosk: str
    status: str  # online / offline / ?
    model_version: str
    last_heard_utc: str
    missing: int = 0  # records the kiosk has and the collector not yet
    lost: int = 0  # records the kiosk no longer holds that never came
    clash: str | None = None  # another kiosk uses this id (its own warning)


@dataclass(frozen=True)
class Summary:
    since_utc: str
    counts: dict[str, dict[Outcome, int]]  # site -> outcome -> screenings
    kiosks: list[KioskView]


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
        gaps: dict[tuple[str, str], tuple[int, int]] = {}
        if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'streams'").fetchone():  # a file from before numbering has none
            for site, kiosk, missing, lost in db.execute(
                    "SELECT s.site, s.kiosk, s.top - s.upto - (SELECT COUNT(*) FROM received r WHERE r.site = s.site AND "
                    "r.kiosk = s.kiosk AND r.stream = s.stream AND r.seq > s.upto), s.lost FROM streams s"):
                m, n = gaps.get((site, kiosk), (0, 0))
                gaps[(site, kiosk)] = (m + missing, n + lost)
        kiosks = []
        for site, kiosk, status, health, status_utc, health_utc in db.execute(
                "SELECT site, kiosk, status, health, status_utc, health_utc FROM kiosks ORDER BY site, kiosk"):
            st = json.loads(status) if status else {}
            hl = json.loads(health) if health else {}
            model = st.get("model") or hl.get("model") or {}
            missing, lost = gaps.get((site, kiosk), (0, 0))
            kiosks.append(KioskView(site, kiosk, st.get("status", "?"), model.get("version", "?"),
                                    max(filter(None, (status_utc, health_utc))), missing, lost, st.get("clash") or hl.get("clash")))
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
        lines += ["", "kiosks (site/kiosk, status, model version, last heard UTC; records missing or lost, if any)"]
        for k in s.kiosks:
            gaps = (f"  missing {k.missing}" if k.missing else "") + (f"  lost {k.lost}" if k.lost else "")
            lines.append(f"{k.site}/{k.kiosk}  {k.status}  {k.model_version}  {k.last_heard_utc}{gaps}"
                         + (f"\n  CLASH: {k.clash}" if k.clash else ""))
    return "\n".join(lines)
