"""The audit log as staff read it: its own read-only SQLite connection per request (WAL lets
it read while the kiosk writes; the kiosk's AuditLog belongs to the loop's thread)."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from contextlib import closing
from datetime import date, timedelta
from pathlib import Path

from edge.decision import Origin, Outcome
from edge.screening_code import normalise, screening_code
from edge.store import SCREENING_COLUMNS as COLUMNS

CSV_COLUMNS = (COLUMNS[0], "code", *COLUMNS[1:])  # the short code (edge/screening_code.py) beside the id it comes from


def connect_readonly(path: Path) -> sqlite3.Connection | None:
    """None while the kiosk has not made its database yet. Queries may use screening_code(id)."""
    if not path.is_file():
        return None
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    db.create_function("screening_code", 1, screening_code, deterministic=True)
    return db


def _rows(path: Path, sql: str, args) -> list[tuple]:
    """The query's rows, or none while the kiosk has not made its database yet."""
    db = connect_readonly(path)
    if db is None:
        return []
    with closing(db):
        return db.execute(sql, args).fetchall()


def _where(day_from: date | None, day_to: date | None, outcome: Outcome | None, origin: Origin | None,
           code: str | None = None) -> tuple[str, list]:
    clauses, args = [], []
    if code:
        clauses.append("screening_code(id) = ?")
        args.append(normalise(code))
    if day_from is not None:
        clauses.append("finished_utc >= ?")
        args.append(day_from.isoformat())
    if day_to is not None:
        clauses.append("finished_utc < ?")
        args.append((day_to + timedelta(days=1)).isoformat())
    if outcome is not None:
        clauses.append("outcome = ?")
        args.append(outcome.value)
    if origin is not None:
        clauses.append("origin = ?")
        args.append(origin.value)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", args


def screenings(path: Path, day_from=None, day_to=None, outcome=None, origin=None, limit: int = 100,
               code: str | None = None) -> list[dict]:
    """The newest screenings first, as the dashboard's table shows them."""
    where, args = _where(day_from, day_to, outcome, origin, code)
    rows = _rows(path, f"SELECT id, finished_utc, outcome, label, probabilities, model_name, model_version, origin, "
                       f"frame_path FROM screenings{where} ORDER BY finished_utc DESC LIMIT ?", (*args, limit))
    out = []
    for id_, finished, outcome_, label, probs, model, version, origin_, frame in rows:
        p = json.loads(probs)
        out.append({"id": id_, "code": screening_code(id_), "finished_utc": finished, "outcome": outcome_, "label": label,
                    "confidence": float(p.get(label, 0.0)), "model": f"{model} {version}", "origin": origin_,
                    "has_frame": frame is not None})
    return out


def per_day(path: Path, day_from=None, day_to=None, origin=None) -> list[dict]:
    """Counts by outcome for each UTC day with screenings, oldest first."""
    where, args = _where(day_from, day_to, None, origin)
    rows = _rows(path, f"SELECT substr(finished_utc, 1, 10) AS day, outcome, COUNT(*) FROM screenings{where} "
                       f"GROUP BY day, outcome ORDER BY day", args)
    days: dict[str, dict[str, int]] = {}
    for day, outcome, n in rows:
        days.setdefault(day, {o.value: 0 for o in Outcome})[outcome] = n
    return [{"day": d, "counts": c} for d, c in days.items()]


def frame_path(path: Path, screening_id: str) -> str | None:
    """The kept frame's file name of one screening (None: none kept, or gone)."""
    rows = _rows(path, "SELECT frame_path FROM screenings WHERE id = ?", (screening_id,))
    return rows[0][0] if rows else None


def csv_rows(path: Path, day_from=None, day_to=None, outcome=None, origin=None, code=None):
    """The audit log's screenings as CSV text, a header line then one line per row, oldest
    first: every column, and each screening's code after its id."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    yield buffer.getvalue()
    db = connect_readonly(path)
    if db is None:
        return
    where, args = _where(day_from, day_to, outcome, origin, code)
    with closing(db):
        for row in db.execute(f"SELECT {', '.join(COLUMNS)} FROM screenings{where} ORDER BY finished_utc", args):
            buffer.seek(0)
            buffer.truncate()
            writer.writerow((row[0], screening_code(row[0]), *row[1:]))
            yield buffer.getvalue()
