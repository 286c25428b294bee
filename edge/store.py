"""The audit log: one SQLite row per screening (WAL mode, schema versioned by migrations).

No images are kept unless the config opts in; then each screening's sharpest frame is a JPEG
beside the database, deleted after `frame_days`. Rows go by age and, when the database plus
frames outgrow `max_mb`, oldest first. A write that fails (disk full, locked) is logged and
kept in memory to be retried: screening never stops for the log.

Nothing committed is lost: rows the database still refuses when the kiosk stops (or that
pile up past MAX_PENDING) are appended to a journal file beside it (`audit.journal`, one JSON
line a row with its schema number, fsynced) and written to the database on the next start.
A disk too full even for the journal gives up `audit.reserve`, space held for this. A start
writes every journal line it can and sets aside, in `audit.unreadable`, the lines it cannot (a
newer kiosk's schema, a line cut short): named in one log line, never deleted. A database file
deleted or replaced while the kiosk runs is noticed at the next write and recreated from the
open connection, whose rows are all still there. `written`, `spilled` and `lost` count what
happened to every row, so the summary never counts a row not kept.
One kiosk per state folder: the store holds an exclusive lock (`kiosk.lock`) while open. No
file of the store is written through a symbolic link (edge/state.py).

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

import errno
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
from urllib.parse import quote

import cv2

from edge.config import StoreConfig
from edge.decision import Screening
from edge.errors import StoreError
from edge.state import StateDir, open_nofollow, refuse_symlink

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
MAX_PENDING = 2_000  # rows held in memory while the disk refuses them; then they go to the journal
RESERVE_BYTES = 4 << 20  # held in audit.reserve for the journal: more than MAX_PENDING rows need
DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})
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


def connect(path: Path, create: bool = True) -> sqlite3.Connection:
    """A connection in WAL mode; create=False: sqlite3.Error when the file is not there (rather
    than a new empty database in its place)."""
    target = f"file:{quote(str(Path(path).absolute()))}?mode={'rwc' if create else 'rw'}"
    db = sqlite3.connect(target, timeout=5, isolation_level=None, uri=True)
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
    db = connect(path, create=False)  # the kiosk's store makes the file; never an empty one in its place
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
    fd = open_nofollow(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise StoreError(f"another kiosk (pid {holder}) is using the state folder {state_dir}: one kiosk per state folder") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


class JournalLine(ValueError):
    """A journal line this kiosk cannot write: why, in a few words."""


def journal_entry(line: str) -> tuple[str, tuple, tuple | None]:
    """One journal line -> (insert, row, outbox row or None); JournalLine saying why not. A row
    of an older kiosk gets the columns added since; one of a newer kiosk (a schema above ours,
    or more values than our columns) is not guessed at."""
    try:
        entry = json.loads(line)
    except ValueError:
        raise JournalLine("not JSON (cut short)") from None
    if not isinstance(entry, dict):
        raise JournalLine("not a journal entry")
    schema = entry.get("schema", 0)
    if not isinstance(schema, int) or schema > SCHEMA_VERSION:
        raise JournalLine(f"schema {schema}, newer than this kiosk's {SCHEMA_VERSION}")
    table, row, outbox = entry.get("table"), entry.get("row"), entry.get("outbox")
    if table not in INSERT:
        raise JournalLine(f"unknown table {table!r}")
    width = INSERT[table].count("?")
    if not isinstance(row, list) or not all(v is None or isinstance(v, (str, int, float)) for v in row):
        raise JournalLine("a row that is not a list of values")
    if table == "screenings" and not (row and isinstance(row[0], str) and row[0]):
        raise JournalLine("a screening without an id")
    if len(row) > width:
        raise JournalLine(f"{len(row)} values for the {width} columns of schema {SCHEMA_VERSION} (a newer kiosk's)")
    missing = width - len(row)
    if missing > len(ADDED_DEFAULTS[table]):
        raise JournalLine(f"{len(row)} values, too few for {table}")
    added = ADDED_DEFAULTS[table][len(ADDED_DEFAULTS[table]) - missing:] if missing else ()
    if outbox is not None and (not isinstance(outbox, list) or len(outbox) != INSERT_OUTBOX.count("?")):
        raise JournalLine("a damaged outbox row")
    return INSERT[table], tuple(row) + added, tuple(outbox) if outbox else None


def journal_line(sql: str, row: tuple, outbox: tuple | None) -> str:
    table = next(name for name, insert in INSERT.items() if insert == sql)
    return json.dumps({"schema": SCHEMA_VERSION, "table": table, "row": list(row)}
                      | ({"outbox": list(outbox)} if outbox else {})) + "\n"


class AuditLog:
    def __init__(self, state_dir: Path, cfg: StoreConfig, kiosk_id: str, model: ModelStamp, outbox: bool = False) -> None:
        """Opens (creates, migrates) the store; StoreError, one line, when it cannot. outbox:
        also queue every row for the fleet uplink."""
        self.cfg, self.kiosk_id, self.model, self.outbox = cfg, kiosk_id, model, outbox
        self.where = where = StateDir(state_dir)
        self.path, self.journal, self.frames_dir = where.audit_db, where.journal, where.frames
        self.pending: deque[tuple[str, tuple, tuple | None]] = deque()  # (insert, row, its outbox row or None)
        self.failed_writes = 0
        self.written = self.spilled = self.lost = 0  # rows: in the database, in the journal, gone
        self.db: sqlite3.Connection | None = None
        self._lock: int | None = None
        self._identity: tuple[int, int] | None = None  # (device, inode) of the database file we write
        try:
            state_dir.mkdir(parents=True, exist_ok=True)
            self._lock = lock_state_dir(state_dir)
            for f in (*where.audit_db_files, where.journal, where.replaying, where.unreadable, where.reserve, where.frames):
                refuse_symlink(f)
            self.db = connect(self.path)
            self._identity = file_identity(self.path)
            migrate(self.db)
            self.replay_journal()
        except StoreError:
            self._release()
            raise
        except (OSError, sqlite3.Error) as e:
            self._release()
            raise StoreError(f"cannot open the audit store in {state_dir}: {_reason(e)}") from None
        self._hold_reserve()

    # --- the journal: rows the database refused, for the next start ------------------------
    def replay_journal(self) -> int:
        """Write the rows a previous run spilled to the journal; returns how many. The journal
        is renamed first and removed only after the commit, so a crash here replays it again
        (screenings are keyed by id: a replay adds no duplicate). Lines it cannot write go to
        `audit.unreadable` first; a database that refuses them all (disk still full) leaves
        the journal for the next start, and the kiosk runs on."""
        replaying = self.where.replaying
        if self.journal.exists():
            if replaying.exists():  # an earlier replay died: both are still owed
                self._append(replaying, self.journal.read_bytes())
                self.journal.unlink()
            else:
                self.journal.rename(replaying)
        if not replaying.exists():
            return 0
        entries, unreadable = [], []
        for line in replaying.read_text(errors="replace").splitlines():
            if line.strip():
                try:
                    entries.append((line, journal_entry(line)))
                except JournalLine as e:
                    unreadable.append((line, str(e)))
        try:
            with self.db:
                self.db.execute("BEGIN")
                for line, (sql, row, outbox) in entries:
                    self.db.execute("SAVEPOINT line")
                    try:
                        if self.db.execute(sql, row).rowcount == 0 and not self._has_screening(row[0]):
                            raise sqlite3.IntegrityError("a value its column does not allow")  # OR IGNORE skipped it
                        if outbox is not None:
                            self.db.execute(INSERT_OUTBOX, outbox)
                    except (sqlite3.IntegrityError, sqlite3.InterfaceError, sqlite3.ProgrammingError, sqlite3.DataError) as e:
                        self.db.execute("ROLLBACK TO line")  # this line alone: the rest are written
                        unreadable.append((line, f"refused by the database ({e})"))
                    self.db.execute("RELEASE line")
                if unreadable:  # kept before the journal goes: a line is never in neither place
                    self._append(self.where.unreadable, "".join(line + "\n" for line, _ in unreadable).encode())
        except (sqlite3.Error, OSError) as e:
            log.error("audit log: the journal of an earlier run cannot be written yet (%s); it stays in %s for the next start",
                      _reason(e), replaying)
            return 0
        replaying.unlink()
        written = len(entries) - sum(1 for _, why in unreadable if why.startswith("refused"))
        log.warning("audit log: %d rows from the journal of an earlier run written%s", written,
                    f"; {len(unreadable)} lines it cannot read set aside in {self.where.unreadable} "
                    f"({'; '.join(sorted({why for _, why in unreadable}))[:300]})" if unreadable else "")
        return written

    def _has_screening(self, key: str) -> bool:
        return self.db.execute("SELECT 1 FROM screenings WHERE id = ?", (key,)).fetchone() is not None

    def _append(self, path: Path, data: bytes) -> int:
        """Append data to path (created 0600, never through a link) and fsync; returns the
        bytes on disk. A disk too full gives up the reserve and tries again; what still does
        not fit is cut back to the last whole line, and the OSError raised."""
        fd = open_nofollow(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            start, done = os.fstat(fd).st_size, 0
            while done < len(data):
                try:
                    done += os.write(fd, data[done:])
                except OSError as e:
                    if e.errno in DISK_FULL and self._give_up_reserve():
                        continue
                    whole = data.rfind(b"\n", 0, done) + 1
                    os.ftruncate(fd, start + whole)
                    os.fsync(fd)
                    e.whole_bytes = whole  # type: ignore[attr-defined]
                    raise
            os.fsync(fd)
            return done
        finally:
            os.close(fd)

    def _hold_reserve(self) -> None:
        """Hold RESERVE_BYTES of disk in audit.reserve, for the journal on a disk full."""
        reserve = self.where.reserve
        try:
            if reserve.exists() and reserve.stat().st_size >= RESERVE_BYTES:
                return
            fd = open_nofollow(reserve, os.O_WRONLY | os.O_CREAT)
            try:
                os.posix_fallocate(fd, 0, RESERVE_BYTES)
            finally:
                os.close(fd)
        except OSError as e:
            reserve.unlink(missing_ok=True)
            log.warning("audit log: no room to hold %d MB in reserve for the journal (%s)", RESERVE_BYTES >> 20, _reason(e))

    def _give_up_reserve(self) -> bool:
        try:
            self.where.reserve.unlink()
        except FileNotFoundError:
            return False
        log.error("audit log: the disk is full; the space held in %s now takes the journal", self.where.reserve)
        return True

    # --- rows ---------------------------------------------------------------------------
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
        """Write every queued row in one transaction; on failure keep them for the next try.
        Then make sure they are in the file at self.path (not one deleted meanwhile)."""
        if not self.pending:
            return True
        try:
            with self.db:
                self.db.execute("BEGIN")
                for sql, row, outbox in self.pending:
                    self.db.execute(sql, row)
                    if outbox is not None:  # in the same transaction as its row
                        self.db.execute(INSERT_OUTBOX, outbox)
            self.keep_file()
        except (sqlite3.Error, OSError) as e:
            self.failed_writes += 1
            log.error("audit log write failed (%s); %d rows kept to retry", _reason(e), len(self.pending))
            return False
        self.written += len(self.pending)
        self.pending.clear()
        return True

    def spill(self) -> None:
        """Append the queued rows to the journal (fsynced) for the next start to write; rows
        even the journal cannot take are counted as lost and logged. Only whole lines count."""
        if not self.pending:
            return
        lines = [journal_line(*entry) for entry in self.pending]
        data = "".join(lines).encode()
        try:
            self._append(self.journal, data)
            kept, error = len(lines), None
        except OSError as e:
            kept, error = data[:getattr(e, "whole_bytes", 0)].count(b"\n"), e
        self.spilled += kept
        self.lost += len(lines) - kept
        if kept:
            log.error("audit log: %d rows written to %s; they go into the database at the next start", kept, self.journal)
        if error is not None:
            log.critical("audit log: %d rows LOST: neither the database nor the journal %s can take them (%s)",
                         len(lines) - kept, self.journal, _reason(error))
        self.pending.clear()

    # --- the database file: still the one at self.path? -----------------------------------
    def keep_file(self) -> None:
        """The database file deleted or replaced while the kiosk runs (its rows would go with
        the last connection to it): copy everything the open connection still sees into a new
        file at self.path, set aside whatever took its place, and go on writing there."""
        now = file_identity(self.path)
        if now == self._identity:
            return
        what = "deleted" if now is None else "replaced by another file"
        self.path.parent.mkdir(parents=True, exist_ok=True)  # the whole folder may have gone
        restoring = self.path.with_name(self.path.name + ".restoring")
        refuse_symlink(restoring)
        restoring.unlink(missing_ok=True)
        copy = sqlite3.connect(restoring)
        try:
            self.db.backup(copy)  # every committed row, the WAL's included
        finally:
            copy.close()
        aside = self.path.with_name(f"{self.path.name}.found-{int(time.time())}")
        if now is not None:
            os.replace(self.path, aside)
        for f in self.where.audit_db_files[1:]:  # the -wal and -shm of the file that went (copied above): never the new one's
            f.unlink(missing_ok=True)
        self.db.close()
        os.replace(restoring, self.path)
        self.db = connect(self.path, create=False)
        self._identity = file_identity(self.path)
        log.error("audit log: %s was %s while the kiosk ran; recreated from the open database with its %d screenings%s",
                  self.path, what, self.count(), f" (the other file kept as {aside.name})" if now is not None else "")

    def _save_frame(self, s: Screening) -> str | None:
        try:
            refuse_symlink(self.frames_dir)
            self.frames_dir.mkdir(parents=True, exist_ok=True)
            path = self.frames_dir / f"{s.id}.jpg"
            ok, jpeg = cv2.imencode(".jpg", s.best_frame, [cv2.IMWRITE_JPEG_QUALITY, 90])
            if not ok:
                raise OSError("encoder refused the frame")
            fd = open_nofollow(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            try:
                data = memoryview(jpeg.tobytes())
                while data:
                    data = data[os.write(fd, data):]
            finally:
                os.close(fd)
            return path.name
        except (OSError, cv2.error) as e:
            log.error("could not keep the frame of screening %s: %s", s.id, _reason(e))
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
            self.keep_file()
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
        except (sqlite3.Error, OSError) as e:
            log.error("audit log retention failed: %s", _reason(e))
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
                self.keep_file()
            except (sqlite3.Error, OSError) as e:
                log.critical("audit log: %s is gone and cannot be recreated (%s): its rows go with this process",
                             self.path, _reason(e))
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


def file_identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of the file at path, None when there is none."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


def _reason(e: Exception) -> str:
    """An OS or SQLite error as a technician reads it."""
    if isinstance(e, OSError) and e.strerror:
        return f"{e.strerror}" + (f" ({e.filename})" if e.filename else "")
    return str(e) or type(e).__name__
