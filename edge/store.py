"""The audit log: one SQLite row per screening (WAL mode, schema versioned by migrations).

No images are kept unless the config opts in; then each screening's sharpest frame is a JPEG
beside the database, deleted after `frame_days`. Rows go by age and, when the database plus
frames outgrow `max_mb`, oldest first. A write that fails (disk full, locked) is logged and
kept in memory to be retried: screening never stops for the log.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import cv2

from edge.config import StoreConfig
from edge.decision import Screening

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
]
SCHEMA_VERSION = len(MIGRATIONS)
MAX_PENDING = 10_000  # rows held in memory while the disk refuses them


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
    """Bring the schema to SCHEMA_VERSION; refuse a file from a newer kiosk."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise RuntimeError(f"audit database schema {version} is newer than this kiosk's {SCHEMA_VERSION}")
    for v in range(version, SCHEMA_VERSION):
        db.executescript(f"BEGIN; {MIGRATIONS[v]} PRAGMA user_version = {v + 1}; COMMIT;")
        log.info("audit database migrated to schema %d", v + 1)
    return SCHEMA_VERSION


class AuditLog:
    def __init__(self, state_dir: Path, cfg: StoreConfig, kiosk_id: str, model: ModelStamp) -> None:
        self.cfg, self.kiosk_id, self.model = cfg, kiosk_id, model
        state_dir.mkdir(parents=True, exist_ok=True)
        self.path = state_dir / "audit.sqlite"
        self.frames_dir = state_dir / "frames"
        self.db = connect(self.path)
        migrate(self.db)
        self.pending: deque[tuple[str, tuple]] = deque()
        self.failed_writes = 0
        self.dropped = 0

    def record(self, s: Screening, wall_finished: float) -> None:
        """Queue one screening's row (wall_finished: its end in Unix time) and write what is queued."""
        wall_started = wall_finished - (s.finished - s.started)
        frame_path = self._save_frame(s) if self.cfg.keep_best_frame and s.best_frame is not None else None
        row = (s.id, utc(wall_started), utc(wall_finished), self.kiosk_id, self.model.name, self.model.version,
               self.model.sha256, s.outcome.value, s.label, json.dumps(s.probabilities), s.frames, s.agreement,
               json.dumps(s.quality), frame_path)
        self._queue("INSERT OR IGNORE INTO screenings VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", row)

    def event(self, kind: str, detail: str = "", wall: float | None = None) -> None:
        """An operational event for the staff: camera outage, model loaded, shutdown."""
        self._queue("INSERT INTO events VALUES (?,?,?,?)", (utc(wall or time.time()), self.kiosk_id, kind, detail))

    def _queue(self, sql: str, row: tuple) -> None:
        if len(self.pending) >= MAX_PENDING:
            self.pending.popleft()
            self.dropped += 1
            log.error("audit log: %d rows waiting for the disk; the oldest was dropped", MAX_PENDING)
        self.pending.append((sql, row))
        self.flush()

    def flush(self) -> bool:
        """Write every queued row in one transaction; on failure keep them for the next try."""
        if not self.pending:
            return True
        try:
            with self.db:
                self.db.execute("BEGIN")
                for sql, row in self.pending:
                    self.db.execute(sql, row)
        except sqlite3.Error as e:
            self.failed_writes += 1
            log.error("audit log write failed (%s); %d rows kept to retry", e, len(self.pending))
            return False
        self.pending.clear()
        return True

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
        return self.db.execute(f"DELETE FROM screenings WHERE {where}", args).rowcount

    def count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM screenings").fetchone()[0]

    def close(self) -> None:
        self.flush()
        try:
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as e:
            log.error("audit log checkpoint failed: %s", e)
        self.db.close()
