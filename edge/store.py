"""The audit log: one SQLite row per screening (WAL mode, schema versioned by migrations).

No images are kept unless the config opts in; then each screening's sharpest frame is a JPEG
beside the database, deleted after `frame_days`. Rows go by age and, when the database plus
frames outgrow `max_mb`, oldest first. A write that fails (disk full, locked) is logged and
kept in memory to be retried: screening never stops for the log.

Nothing committed is lost: rows the database still refuses when the kiosk stops (or that
pile up past MAX_PENDING) are appended to a journal file beside it (`audit.journal`, one JSON
line a row, fsynced) and written to the database on the next start. `written`, `spilled`
and `lost` count what happened to every row, so the summary never counts a row not kept.
One kiosk per state folder: the store holds an exclusive lock (`kiosk.lock`) while open.

With the fleet uplink on (`outbox=True`), each screening and event also gets an `outbox` row
(the JSON the broker will get) in the same transaction as its own row, and a journal line
carries both: whatever is committed is also owed to the broker. The uplink
(edge/outputs/fleet.py) marks an outbox row sent when the authority's collector acknowledged
it (edge/delivery.py); retention deletes sent rows, and unsent ones with their screening or
when older than retention_days. The outbox's seq numbers the kiosk's records for the collector:
AUTOINCREMENT never reuses one, and `outbox_stream` (made once, with the database) tells this
numbering from that of another database under the same kiosk id.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import sqlite3
import time
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path

import cv2

from edge.config import StoreConfig
from edge.decision import Screening
from edge.errors import StoreError
from edge.state import StateDir

log = logging.getLogger(__name__)

# Each entry moves the schema one version up; PRAGMA user_version says where a file stands.
MIGRATIONS = [
    """
    CREATE TABLE screenings (
        id TEXT PRIMARY KEY,
        started_utc TEXT NOT NULL,
        finished_utc TEXT NOT NULL,
        kiosk_id TEXT NOT NULL,
        model_name TEXT NOT NULL,
        model_version TEXT NOT NULL,
        model_sha256 TEXT NOT NULL,
        outcome TEXT NOT NULL,
        label TEXT NOT NULL,
        probabilities TEXT NOT NULL,
        frames INTEGER NOT NULL,
        agreement REAL NOT NULL,
        quality TEXT NOT NULL,
        frame_path TEXT
    );
    CREATE INDEX screenings_finished ON screenings (finished_utc);
    """,
    """
    CREATE TABLE events (
        time_utc TEXT NOT NULL,
        kiosk_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        detail TEXT NOT NULL
    );
    CREATE INDEX events_time ON events (time_utc);
    """,
    """
    ALTER TABLE screenings ADD COLUMN origin TEXT NOT NULL DEFAULT 'camera';
    """,
    """
    CREATE TABLE outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        created_utc TEXT NOT NULL,
        payload TEXT NOT NULL,
        sent_utc TEXT
    );
    CREATE INDEX outbox_unsent ON outbox (seq) WHERE sent_utc IS NULL;
    CREATE INDEX outbox_created ON outbox (created_utc);
    """,
    """
    ALTER TABLE screenings ADD COLUMN mpox_threshold REAL;
    """,
    """
    CREATE TABLE outbox_stream (id TEXT NOT NULL);
    INSERT INTO outbox_stream VALUES (lower(hex(randomblob(8))));
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)
MAX_PENDING = 10_000  # rows held in memory while the disk refuses them; then they go to the journal
# The screenings table's columns in order, as the migrations above leave it: the one list that
# the insert, the staff's CSV and its readers (edge/web/records.py) use.
SCREENING_COLUMNS = ("id", "started_utc", "finished_utc", "kiosk_id", "model_name", "model_version", "model_sha256",
                     "outcome", "label", "probabilities", "frames", "agreement", "quality", "frame_path", "origin",
                     "mpox_threshold")
EVENT_COLUMNS = ("time_utc", "kiosk_id", "kind", "detail")


def _insert(table: str, columns: tuple[str, ...], verb: str = "INSERT") -> str:
    return f"{verb} INTO {table} ({', '.join(columns)}) VALUES ({','.join('?' * len(columns))})"


INSERT = {"screenings": _insert("screenings", SCREENING_COLUMNS, "INSERT OR IGNORE"),
          "events": _insert("events", EVENT_COLUMNS)}
INSERT_OUTBOX = "INSERT OR IGNORE INTO outbox (id, kind, created_utc, payload) VALUES (?,?,?,?)"
ADDED_DEFAULTS = {"screenings": ("camera", None), "events": ()}  # columns added since schema 1: a journal row of an older kiosk gets these


class OutboxKind(str, Enum):
    """What an outbox row is; also the last level of its MQTT topic."""

    SCREENING = "screening"
    EVENT = "event"


@dataclass(frozen=True)
class ModelStamp:
    name: str
    version: str
    sha256: str


def utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds")


def connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=5, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    return db


def migrate(db: sqlite3.Connection) -> int:
    """Bring the schema to SCHEMA_VERSION in one transaction (the version is read inside it,
    so two processes cannot both apply a step); refuse a file from a newer kiosk."""
    db.execute("BEGIN IMMEDIATE")
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(f"audit database schema {version} is newer than this kiosk's {SCHEMA_VERSION}: "
                             "it was written by a newer version; upgrade this kiosk")
        for v in range(version, SCHEMA_VERSION):
            for statement in MIGRATIONS[v].split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {v + 1}")
            log.info("audit database migrated to schema %d", v + 1)
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return SCHEMA_VERSION


def event_rows(kiosk_id: str, kind: str, detail: str, wall: float, outbox: bool) -> tuple[tuple, tuple | None]:
    """An event's row of the events table, and its outbox row (None: no uplink)."""
    row = (utc(wall), kiosk_id, kind, detail)
    if not outbox:
        return row, None
    key = str(uuid.uuid4())
    return row, (key, OutboxKind.EVENT.value, row[0], json.dumps({"uuid": key, "kiosk": kiosk_id, "time_utc": row[0],
                                                                  "kind": kind, "detail": detail}))


def append_event(path: Path, kiosk_id: str, kind: str, detail: str, outbox: bool = True) -> None:
    """An event written by a thread other than the loop's (whose AuditLog connection it must
    not use), through its own short connection: the row and its outbox row in one
    transaction, as AuditLog.event writes them. sqlite3.Error when the database refuses."""
    row, out = event_rows(kiosk_id, kind, detail, time.time(), outbox)
    db = connect(path)
    try:
        with db:
            db.execute("BEGIN")
            db.execute(INSERT["events"], row)
            if out is not None:
                db.execute(INSERT_OUTBOX, out)
    finally:
        db.close()


def outbox_stream(db: sqlite3.Connection) -> str:
    """The random id of this database's outbox numbering (edge/delivery.py)."""
    return db.execute("SELECT id FROM outbox_stream").fetchone()[0]


def lock_state_dir(state_dir: Path) -> int:
    """An exclusive lock on state_dir/kiosk.lock (released when the process ends, however it
    ends); StoreError when another kiosk holds it."""
    path = StateDir(state_dir).lock
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise StoreError(f"another kiosk (pid {holder}) is using the state folder {state_dir}: one kiosk per state folder") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


class AuditLog:
    def __init__(self, state_dir: Path, cfg: StoreConfig, kiosk_id: str, model: ModelStamp, outbox: bool = False) -> None:
        """Opens (creates, migrates) the store; StoreError, one line, when it cannot. outbox:
        also queue every row for the fleet uplink."""
        self.cfg, self.kiosk_id, self.model, self.outbox = cfg, kiosk_id, model, outbox
        where = StateDir(state_dir)
        self.path, self.journal, self.frames_dir = where.audit_db, where.journal, where.frames
        self.pending: deque[tuple[str, tuple, tuple | None]] = deque()  # (insert, row, its outbox row or None)
        self.failed_writes = 0
        self.written = self.spilled = self.lost = 0  # rows: in the database, in the journal, gone
        self.db: sqlite3.Connection | None = None
        self._lock: int | None = None
        try:
            state_dir.mkdir(parents=True, exist_ok=True)
            self._lock = lock_state_dir(state_dir)
            self.db = connect(self.path)
            migrate(self.db)
            self.replay_journal()
        except StoreError:
            self._release()
            raise
        except (OSError, sqlite3.Error) as e:
            self._release()
            raise StoreError(f"cannot open the audit store in {state_dir}: {_reason(e)}") from None

    def replay_journal(self) -> int:
        """Write the rows a previous run spilled to the journal; returns how many. The journal
        is renamed first and removed only after the commit, so a crash here replays it again
        (screenings are keyed by id: a replay adds no duplicate)."""
        replaying = self.journal.with_suffix(".replaying")
        if self.journal.exists():
            if replaying.exists():  # an earlier replay died: both are still owed
                with open(replaying, "a") as out, open(self.journal) as extra:
                    out.write(extra.read())
                self.journal.unlink()
            else:
                self.journal.rename(replaying)
        if not replaying.exists():
            return 0
        rows, bad = [], 0
        for line in replaying.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
                table, row = entry["table"], tuple(entry["row"])
                width = INSERT[table].count("?")
                outbox = tuple(entry["outbox"]) if entry.get("outbox") else None
                added = ADDED_DEFAULTS[table][len(ADDED_DEFAULTS[table]) - (width - len(row)):] if len(row) < width else ()
                rows.append((INSERT[table], row + added, outbox))
            except (ValueError, KeyError, TypeError, AttributeError):
                bad += 1  # a line cut short by the crash that wrote it
        with self.db:
            self.db.execute("BEGIN")
            for sql, row, outbox in rows:
                self.db.execute(sql, row)
                if outbox is not None:
                    self.db.execute(INSERT_OUTBOX, outbox)
        replaying.unlink()
        log.warning("audit log: %d rows from the journal of an earlier run written%s", len(rows),
                    f"; {bad} damaged lines skipped" if bad else "")
        return len(rows)

    def record(self, s: Screening, wall_finished: float) -> None:
        """Queue one screening's row (wall_finished: its end in Unix time) and write what is queued."""
        wall_started = wall_finished - (s.finished - s.started)
        frame_path = self._save_frame(s) if self.cfg.keep_best_frame and s.best_frame is not None else None
        row = (s.id, utc(wall_started), utc(wall_finished), self.kiosk_id, self.model.name, self.model.version,
               self.model.sha256, s.outcome.value, s.label, json.dumps(s.probabilities), s.frames, s.agreement,
               json.dumps(s.quality), frame_path, s.origin.value, s.mpox_threshold)
        outbox = None
        if self.outbox:  # what the fleet sees: no picture, no quality figures
            outbox = (s.id, OutboxKind.SCREENING.value, row[2], json.dumps({
                "uuid": s.id, "kiosk": self.kiosk_id, "started_utc": row[1], "finished_utc": row[2], "outcome": s.outcome.value,
                "label": s.label, "probabilities": s.probabilities,
                "model": {"name": self.model.name, "version": self.model.version, "sha256": self.model.sha256},
                "origin": s.origin.value}))
        self._queue(INSERT["screenings"], row, outbox)

    def event(self, kind: str, detail: str = "", wall: float | None = None) -> None:
        """An operational event for the staff: camera outage, model loaded, shutdown."""
        self._queue(INSERT["events"], *event_rows(self.kiosk_id, kind, detail, wall or time.time(), self.outbox))

    def _queue(self, sql: str, row: tuple, outbox: tuple | None = None) -> None:
        self.pending.append((sql, row, outbox))
        if not self.flush() and len(self.pending) >= MAX_PENDING:
            log.error("audit log: %d rows waiting for the database; moving them to the journal", len(self.pending))
            self.spill()

    def flush(self) -> bool:
        """Write every queued row in one transaction; on failure keep them for the next try."""
        if not self.pending:
            return True
        try:
            with self.db:
                self.db.execute("BEGIN")
                for sql, row, outbox in self.pending:
                    self.db.execute(sql, row)
                    if outbox is not None:  # in the same transaction as its row
                        self.db.execute(INSERT_OUTBOX, outbox)
        except sqlite3.Error as e:
            self.failed_writes += 1
            log.error("audit log write failed (%s); %d rows kept to retry", e, len(self.pending))
            return False
        self.written += len(self.pending)
        self.pending.clear()
        return True

    def spill(self) -> None:
        """Append the queued rows to the journal (fsynced) for the next start to write;
        rows even the journal cannot take are counted as lost and logged."""
        if not self.pending:
            return
        table = {sql: name for name, sql in INSERT.items()}
        lines = "".join(json.dumps({"table": table[sql], "row": list(row)} | ({"outbox": list(outbox)} if outbox else {})) + "\n"
                        for sql, row, outbox in self.pending)
        try:
            with open(self.journal, "a") as f:
                f.write(lines)
                f.flush()
                os.fsync(f.fileno())
            self.spilled += len(self.pending)
            log.error("audit log: %d rows written to %s; they go into the database at the next start", len(self.pending),
                      self.journal)
        except OSError as e:
            self.lost += len(self.pending)
            log.critical("audit log: %d rows LOST: neither the database nor the journal %s can take them (%s)",
                         len(self.pending), self.journal, _reason(e))
        self.pending.clear()

    def _save_frame(self, s: Screening) -> str | None:
        try:
            self.frames_dir.mkdir(parents=True, exist_ok=True)
            path = self.frames_dir / f"{s.id}.jpg"
            if not cv2.imwrite(str(path), s.best_frame, [cv2.IMWRITE_JPEG_QUALITY, 90]):
                raise OSError("encoder refused the frame")
            return path.name
        except (OSError, cv2.error) as e:
            log.error("could not keep the frame of screening %s: %s", s.id, e)
            return None

    def used_bytes(self) -> int:
        pages, free, size = (self.db.execute(f"PRAGMA {p}").fetchone()[0] for p in ("page_count", "freelist_count", "page_size"))
        frames = sum(f.stat().st_size for f in self.frames_dir.glob("*.jpg")) if self.frames_dir.is_dir() else 0
        return (pages - free) * size + frames

    def prune(self, now: float | None = None) -> int:
        """Apply retention: frames by frame_days, rows by retention_days, then oldest rows
        until under max_mb. Returns the rows deleted."""
        now = now or time.time()
        deleted = 0
        try:
            for (name,) in self.db.execute("SELECT frame_path FROM screenings WHERE frame_path IS NOT NULL AND finished_utc < ?",
                                           (utc(now - self.cfg.frame_days * 86400),)).fetchall():
                (self.frames_dir / name).unlink(missing_ok=True)
            with self.db:
                self.db.execute("UPDATE screenings SET frame_path = NULL WHERE frame_path IS NOT NULL AND finished_utc < ?",
                                (utc(now - self.cfg.frame_days * 86400),))
                deleted += self._delete("finished_utc < ?", (utc(now - self.cfg.retention_days * 86400),))
                self.db.execute("DELETE FROM events WHERE time_utc < ?", (utc(now - self.cfg.retention_days * 86400),))
                self.db.execute("DELETE FROM outbox WHERE sent_utc IS NOT NULL OR created_utc < ?",
                                (utc(now - self.cfg.retention_days * 86400),))
            limit = self.cfg.max_mb * 1e6
            while self.used_bytes() > limit:
                n = self._delete("id IN (SELECT id FROM screenings ORDER BY finished_utc LIMIT 100)", ())
                if n == 0:
                    break
                deleted += n
        except sqlite3.Error as e:
            log.error("audit log retention failed: %s", e)
        return deleted

    def _delete(self, where: str, args: tuple) -> int:
        for (name,) in self.db.execute(f"SELECT frame_path FROM screenings WHERE frame_path IS NOT NULL AND {where}", args).fetchall():
            (self.frames_dir / name).unlink(missing_ok=True)
        self.db.execute(f"DELETE FROM outbox WHERE id IN (SELECT id FROM screenings WHERE {where})", args)
        return self.db.execute(f"DELETE FROM screenings WHERE {where}", args).rowcount

    def count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM screenings").fetchone()[0]

    def close(self) -> None:
        """Write what is queued, else put it in the journal; then release the state folder."""
        if self.db is not None:
            if not self.flush():
                self.spill()
            try:
                self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as e:
                log.error("audit log checkpoint failed: %s", e)
        self._release()

    def _release(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None


def _reason(e: Exception) -> str:
    """An OS or SQLite error as a technician reads it."""
    if isinstance(e, OSError) and e.strerror:
        return f"{e.strerror}" + (f" ({e.filename})" if e.filename else "")
    return str(e) or type(e).__name__
