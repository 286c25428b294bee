"""The audit log: a real SQLite file in WAL mode, migrations, retention, disk-full retries."""

import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest

from edge.config import StoreConfig
from edge.decision import Outcome, Screening
from edge.errors import StoreError
from edge.store import INSERT, SCHEMA_VERSION, AuditLog, ModelStamp

STAMP = ModelStamp("fast-mpoxnet", "1.0.0", "ab" * 32)


def screening(i=0, frame=None):
    return Screening(id=f"id-{i:05d}", started=10.0, finished=11.5, outcome=Outcome.MPOX, label="Monkeypox",
                     probabilities={"Monkeypox": 0.9, "Normal": 0.1}, frames=15, agreement=1.0,
                     quality={"sharpness": 40.0}, best_frame=frame)


def test_rows_carry_the_model_and_no_image_by_default(tmp_path):
    log = AuditLog(tmp_path, StoreConfig(), "k1", STAMP)
    log.record(screening(frame=np.zeros((8, 8, 3), np.uint8)), time.time())
    log.close()
    db = sqlite3.connect(tmp_path / "audit.sqlite")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    row = db.execute("SELECT kiosk_id, model_name, model_sha256, outcome, frames, frame_path FROM screenings").fetchone()
    assert row == ("k1", "fast-mpoxnet", "ab" * 32, "mpox_suspected", 15, None)
    assert not (tmp_path / "frames").exists()


def test_migration_from_an_older_schema_keeps_rows(tmp_path):
    from edge.store import MIGRATIONS

    db = sqlite3.connect(tmp_path / "audit.sqlite")
    db.executescript(MIGRATIONS[0] + "PRAGMA user_version = 1;")
    db.execute("INSERT INTO screenings VALUES ('old','a','b','k','m','v','h','no_rash_detected','Normal','{}',15,1.0,'{}',NULL)")
    db.commit()
    db.close()
    log = AuditLog(tmp_path, StoreConfig(), "k1", STAMP)
    log.event("started")
    assert log.count() == 1 and log.db.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 1
    log.close()


def test_kept_frames_expire_and_old_rows_go(tmp_path):
    log = AuditLog(tmp_path, StoreConfig(keep_best_frame=True, frame_days=1, retention_days=30), "k1", STAMP)
    now = time.time()
    frame = np.full((32, 32, 3), 128, np.uint8)
    log.record(screening(0, frame), now - 40 * 86400)
    log.record(screening(1, frame), now - 2 * 86400)
    log.record(screening(2, frame), now)
    assert len(list((tmp_path / "frames").glob("*.jpg"))) == 3
    assert log.prune(now) == 1
    rows = dict(log.db.execute("SELECT id, frame_path FROM screenings").fetchall())
    assert set(rows) == {"id-00001", "id-00002"} and rows["id-00001"] is None and rows["id-00002"] == "id-00002.jpg"
    assert [f.name for f in (tmp_path / "frames").glob("*.jpg")] == ["id-00002.jpg"]
    log.close()


def test_size_limit_removes_the_oldest_first(tmp_path):
    log = AuditLog(tmp_path, StoreConfig(max_mb=0.2), "k1", STAMP)
    now = time.time()
    for i in range(2000):
        log.record(screening(i), now - 2000 + i)
    assert log.used_bytes() > 0.2e6
    deleted = log.prune(now)
    assert deleted > 0 and log.used_bytes() <= 0.2e6
    oldest = log.db.execute("SELECT MIN(id) FROM screenings").fetchone()[0]
    assert oldest == f"id-{deleted:05d}"  # exactly the oldest rows went
    log.close()


def test_disk_full_write_is_kept_and_retried(tmp_path):
    log = AuditLog(tmp_path, StoreConfig(), "k1", STAMP)
    log.record(screening(0), time.time())
    pages = log.db.execute("PRAGMA page_count").fetchone()[0]
    log.db.execute(f"PRAGMA max_page_count = {pages}")  # the disk is now full for this file
    for i in range(1, 200):
        log.record(screening(i), time.time())  # never raises
    assert log.failed_writes > 0 and len(log.pending) > 0
    log.db.execute("PRAGMA max_page_count = 1000000")  # space again
    assert log.flush()
    assert log.count() == 200 and not log.pending
    log.close()
    assert sqlite3.connect(tmp_path / "audit.sqlite").execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def count(path, table="screenings"):
    db = sqlite3.connect(path)
    try:
        return db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    finally:
        db.close()


def record_40_onto_a_disk_full_after_the_first(log: AuditLog) -> None:
    log.record(screening(0), time.time())
    pages = log.db.execute("PRAGMA page_count").fetchone()[0]
    log.db.execute(f"PRAGMA max_page_count = {pages}")  # the disk is full from here on
    for i in range(1, 40):
        log.record(screening(i), time.time())
    log.close()


def test_a_full_disk_at_stop_spills_to_the_journal_and_the_next_start_writes_it(tmp_path):
    log = AuditLog(tmp_path, StoreConfig(), "k1", STAMP)
    record_40_onto_a_disk_full_after_the_first(log)
    assert log.written + log.spilled == 40 and log.spilled > 0 and log.lost == 0 and log.journal.exists()
    again = AuditLog(tmp_path, StoreConfig(), "k1", STAMP)  # the disk was freed
    assert again.count() == 40 and not again.journal.exists()
    again.close()


def test_a_journal_replay_cut_short_replays_without_duplicates(tmp_path):
    """...and a row spilled by an older kiosk (schema 2: no origin column) is still written."""
    log = AuditLog(tmp_path, StoreConfig(), "k1", STAMP)
    log.pending.append((INSERT["screenings"], ("dup", "a", "b", "k", "m", "v", "h", "uncertain", "Normal", "{}", 8, 1.0, "{}", None),
                        None))
    log.spill()
    log.close()
    (tmp_path / "audit.journal").rename(tmp_path / "audit.replaying")  # a replay that died before its commit
    (tmp_path / "audit.journal").write_text(open(tmp_path / "audit.replaying").read() + '{"table": "screenings", "ro')
    again = AuditLog(tmp_path, StoreConfig(), "k1", STAMP)
    assert again.count() == 1
    assert again.db.execute("SELECT origin FROM screenings").fetchall() == [("camera",)]
    again.close()


def test_one_kiosk_per_state_folder(tmp_path):
    first = AuditLog(tmp_path, StoreConfig(), "k1", STAMP)
    with pytest.raises(StoreError, match="another kiosk"):
        AuditLog(tmp_path, StoreConfig(), "k2", STAMP)
    first.close()
    AuditLog(tmp_path, StoreConfig(), "k2", STAMP).close()  # free again once the first has stopped


def test_a_store_that_cannot_open_is_one_clear_error(tmp_path):
    not_a_folder = tmp_path / "state"
    not_a_folder.write_text("x")
    with pytest.raises(StoreError, match="cannot open the audit store"):
        AuditLog(not_a_folder, StoreConfig(), "k1", STAMP)
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "audit.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="cannot open the audit store"):
        AuditLog(garbage, StoreConfig(), "k1", STAMP)
    newer = tmp_path / "newer"
    newer.mkdir()
    db = sqlite3.connect(newer / "audit.sqlite")
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(StoreError, match="newer"):
        AuditLog(newer, StoreConfig(), "k1", STAMP)
    AuditLog(newer.parent / "fresh", StoreConfig(), "k1", STAMP).close()  # and a good one still opens after them


def outbox(path):
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT id, kind, payload, sent_utc FROM outbox ORDER BY seq").fetchall()
    finally:
        db.close()


def test_the_outbox_row_commits_with_its_screening_or_not_at_all(tmp_path):
    import json

    log = AuditLog(tmp_path, StoreConfig(), "k1", STAMP, outbox=True)
    log.db.execute("CREATE TEMP TRIGGER refuse BEFORE INSERT ON outbox BEGIN SELECT RAISE(ABORT, 'disk says no'); END")
    log.record(screening(0), time.time())
    assert log.count() == 0 and len(log.pending) == 1  # the screening waits with its outbox row
    log.db.execute("DROP TRIGGER refuse")
    log.event("camera_outage", "unplugged")
    log.close()
    rows = outbox(tmp_path / "audit.sqlite")
    assert [(i, k, sent) for i, k, _, sent in rows][0] == ("id-00000", "screening", None) and rows[1][1] == "event"
    sent = json.loads(rows[0][2])
    assert sent["uuid"] == "id-00000" and sent["outcome"] == "mpox_suspected" and sent["model"]["version"] == "1.0.0"
    assert "quality" not in sent and "frame_path" not in sent  # no picture, nothing but the result
    assert json.loads(rows[1][2])["detail"] == "unplugged"
    plain = AuditLog(tmp_path / "off", StoreConfig(), "k1", STAMP)  # fleet off: nothing queued for a broker
    plain.record(screening(1), time.time())
    plain.close()
    assert outbox(tmp_path / "off" / "audit.sqlite") == []


def test_journal_lines_bring_their_outbox_rows_and_replay_adds_no_duplicate(tmp_path):
    log = AuditLog(tmp_path, StoreConfig(), "k1", STAMP, outbox=True)
    record_40_onto_a_disk_full_after_the_first(log)
    assert log.spilled > 0 and '"outbox"' in log.journal.read_text()
    (tmp_path / "audit.replaying").write_text(log.journal.read_text())  # and an earlier replay died before its commit
    again = AuditLog(tmp_path, StoreConfig(), "k1", STAMP, outbox=True)
    again.close()
    ids = [i for i, _, _, _ in outbox(tmp_path / "audit.sqlite")]
    assert sorted(ids) == [f"id-{i:05d}" for i in range(40)] and count(tmp_path / "audit.sqlite") == 40


def test_retention_bounds_the_outbox(tmp_path):
    log = AuditLog(tmp_path, StoreConfig(retention_days=30, max_mb=0.2), "k1", STAMP, outbox=True)
    now = time.time()
    log.record(screening(0), now - 40 * 86400)  # expired, never sent
    for i in range(1, 1500):
        log.record(screening(i), now - 1500 + i)
    log.db.execute("UPDATE outbox SET sent_utc = 'x' WHERE id = 'id-01499'")  # the broker has the newest
    log.prune(now)
    left = {i for i, _, _, _ in outbox(tmp_path / "audit.sqlite")}
    kept = {i for (i,) in log.db.execute("SELECT id FROM screenings")}
    assert "id-00000" not in left and "id-01499" not in left
    assert left == kept - {"id-01499"} and len(kept) < 1499  # unsent rows went with their screenings, no sooner
    log.close()


def test_journal_rows_of_older_kiosks_keep_their_origin_and_get_no_threshold(tmp_path):
    """A journal written before the threshold column (15 values) or before the origin (14)."""
    import json

    base = ["a", "2026-01-01T00:00:00.000+00:00", "2026-01-01T00:00:01.000+00:00", "k", "m", "v", "h", "uncertain", "Normal",
            "{}", 12, 1.0, "{}", None]
    lines = [{"table": "screenings", "row": [*base[:1], *base[1:]]}, {"table": "screenings", "row": ["b", *base[1:], "upload"]}]
    (tmp_path / "audit.journal").write_text("".join(json.dumps(x) + "\n" for x in lines))
    log = AuditLog(tmp_path, StoreConfig(), "k1", STAMP)
    rows = log.db.execute("SELECT id, origin, mpox_threshold FROM screenings ORDER BY id").fetchall()
    log.close()
    assert rows == [("a", "camera", None), ("b", "upload", None)]


def test_outbox_numbers_survive_restarts_are_never_reused_and_each_database_has_its_own_stream(tmp_path):
    from edge.store import outbox_stream

    log = AuditLog(tmp_path / "a", StoreConfig(), "k1", STAMP, outbox=True)
    for i in range(3):
        log.record(screening(i), time.time())
    stream = outbox_stream(log.db)
    log.db.execute("DELETE FROM outbox")  # delivered and pruned
    log.close()
    again = AuditLog(tmp_path / "a", StoreConfig(), "k1", STAMP, outbox=True)
    again.record(screening(3), time.time())
    assert outbox_stream(again.db) == stream and [s for (s,) in again.db.execute("SELECT seq FROM outbox")] == [4]
    other = AuditLog(tmp_path / "b", StoreConfig(), "k1", STAMP, outbox=True)  # a reinstalled kiosk, or another one
    assert len(stream) == 16 and outbox_stream(other.db) != stream
    again.close()
    other.close()


# --- hostile cases (issue 23): rows lost or miscounted, files written through links -------

def test_an_audit_file_deleted_while_the_kiosk_runs_is_recreated_with_every_row(tmp_path, caplog):
    log = AuditLog(tmp_path, StoreConfig(), "k1", STAMP, outbox=True)
    for i in range(20):
        log.record(screening(i), time.time())
    for f in tmp_path.glob("audit.sqlite*"):  # `rm state/audit.sqlite*` by someone tidying up
        f.unlink()
    for i in range(20, 41):
        log.record(screening(i), time.time())
    log.close()
    assert log.written == 41 and log.lost == 0
    assert count(tmp_path / "audit.sqlite") == 41 and len(outbox(tmp_path / "audit.sqlite")) == 41
    said = [r.getMessage() for r in caplog.records if "was deleted" in r.getMessage()]
    assert len(said) == 1 and str(tmp_path / "audit.sqlite") in said[0]  # said once, naming the file
    assert sqlite3.connect(tmp_path / "audit.sqlite").execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_state_folder_removed_or_a_database_replaced_loses_nothing(tmp_path, caplog):
    import shutil

    state = tmp_path / "state"
    log = AuditLog(state, StoreConfig(), "k1", STAMP)
    log.record(screening(0), time.time())
    shutil.rmtree(state)  # the whole folder
    log.record(screening(1), time.time())
    assert count(state / "audit.sqlite") == 2
    stranger = sqlite3.connect(state / "other.sqlite")
    stranger.execute("CREATE TABLE mine (x)")
    stranger.commit()
    stranger.close()
    (state / "other.sqlite").replace(state / "audit.sqlite")  # another file put in its place
    log.record(screening(2), time.time())
    log.close()
    assert count(state / "audit.sqlite") == 3
    found = list(state.glob("audit.sqlite.found-*"))
    assert len(found) == 1 and sqlite3.connect(found[0]).execute("SELECT name FROM sqlite_master").fetchall() == [("mine",)]
    assert any("replaced by another file" in r.getMessage() and found[0].name in r.getMessage() for r in caplog.records)


def test_journal_lines_it_cannot_read_are_set_aside_and_every_valid_row_is_written(tmp_path, caplog):
    import json

    base = ["2026-01-01T00:00:00.000+00:00", "2026-01-01T00:00:01.000+00:00", "k", "m", "v", "h", "uncertain", "Normal",
            "{}", 12, 1.0, "{}", None, "camera", 0.5]
    good = [json.dumps({"schema": SCHEMA_VERSION, "table": "screenings", "row": [f"ok-{i}", *base]}) for i in range(3)]
    bad = [
        json.dumps({"schema": SCHEMA_VERSION + 2, "table": "screenings", "row": ["newer", *base]}),  # a newer kiosk's
        json.dumps({"table": "screenings", "row": ["wider", *base, "a column we do not know"]}),
        json.dumps({"schema": SCHEMA_VERSION, "table": "photos", "row": ["x"]}),
        json.dumps({"schema": SCHEMA_VERSION, "table": "screenings", "row": ["no-time", None, *base[1:]]}),  # the database refuses it
        '{"table": "screenings", "ro',
    ]
    lines = [good[0], *bad[:2], good[1], *bad[2:], good[2]]
    (tmp_path / "audit.journal").write_text("\n".join(lines) + "\n")
    log = AuditLog(tmp_path, StoreConfig(), "k1", STAMP)  # starts: the journal names nothing it cannot write
    assert sorted(i for (i,) in log.db.execute("SELECT id FROM screenings")) == ["ok-0", "ok-1", "ok-2"]
    log.close()
    kept = (tmp_path / "audit.unreadable").read_text().splitlines()
    assert sorted(kept) == sorted(bad)  # every line it could not write, as it was
    said = [r.getMessage() for r in caplog.records if "audit.unreadable" in r.getMessage()]
    assert len(said) == 1 and "3 rows" in said[0] and "5 lines" in said[0] and f"schema {SCHEMA_VERSION + 2}" in said[0]
    assert not (tmp_path / "audit.journal").exists() and not (tmp_path / "audit.replaying").exists()
    AuditLog(tmp_path, StoreConfig(), "k1", STAMP).close()  # and every later start is clean
    assert (tmp_path / "audit.unreadable").read_text().splitlines() == kept


def test_the_journal_lines_carry_their_schema(tmp_path):
    import json

    log = AuditLog(tmp_path, StoreConfig(), "k1", STAMP)
    record_40_onto_a_disk_full_after_the_first(log)
    assert all(json.loads(line)["schema"] == SCHEMA_VERSION for line in log.journal.read_text().splitlines())


WRITER_WITH_A_SMALL_DISK = """
import resource, signal, sys, time
from pathlib import Path
from edge.config import StoreConfig
from edge.decision import Outcome, Screening
from edge.store import AuditLog, ModelStamp
log = AuditLog(Path(sys.argv[1]), StoreConfig(), "k", ModelStamp("m", "1", "0" * 64))
log.db.execute(f"PRAGMA max_page_count = {log.db.execute('PRAGMA page_count').fetchone()[0]}")  # the database is full
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]), resource.RLIM_INFINITY))  # files stop growing there
for i in range(100):
    log.record(Screening(id=f"s-{i:03d}", started=0.0, finished=1.0, outcome=Outcome.NO_RASH, label="Normal",
                         probabilities={"Normal": 1.0}, frames=8, agreement=1.0, quality={}), time.time())
log.close()
print(log.written, log.spilled, log.lost)
"""


def test_a_journal_the_disk_cuts_short_counts_only_its_whole_lines(tmp_path):
    """The kernel refuses the journal's growth midway (RLIMIT_FSIZE): the stop counts as spilled
    only the whole lines on disk, the rest as lost, and the next start writes exactly those."""
    import subprocess
    import sys

    state = tmp_path / "state"
    AuditLog(state, StoreConfig(), "k", STAMP).close()
    limit = 20_000  # bytes: a few dozen journal lines
    done = subprocess.run([sys.executable, "-c", WRITER_WITH_A_SMALL_DISK, str(state), str(limit)], capture_output=True,
                          text=True, timeout=120, cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr[-2000:]
    written, spilled, lost = map(int, done.stdout.split())
    assert written + spilled + lost == 100 and spilled > 0 and lost > 0  # every row counted once
    journal = (state / "audit.journal").read_bytes()
    assert journal.endswith(b"\n") and journal.count(b"\n") == spilled
    assert "LOST" in done.stderr
    again = AuditLog(state, StoreConfig(), "k", STAMP)
    assert again.count() == written + spilled and not (state / "audit.unreadable").exists()
    again.close()


def mountable_tmpfs(where: Path, size_kb: int) -> bool:
    import subprocess

    where.mkdir()
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(where)],
                          capture_output=True).returncode == 0


def test_a_disk_full_at_stop_puts_the_rows_in_the_space_held_in_reserve(tmp_path):
    """A real full disk (a small tmpfs, where this machine lets a test mount one): the database
    and a new journal both get ENOSPC; the reserve makes room, nothing is lost."""
    import subprocess

    disk = tmp_path / "disk"
    if not mountable_tmpfs(disk, 6 * 1024):
        pytest.skip("mounting a tmpfs is not permitted here")
    try:
        log = AuditLog(disk / "state", StoreConfig(), "k1", STAMP, outbox=True)
        assert (disk / "state" / "audit.reserve").stat().st_size > 0
        (disk / "filler").write_bytes(b"")
        with open(disk / "filler", "wb") as f:  # someone else fills the disk
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass
        for i in range(300):
            log.record(screening(i), time.time())
        log.close()
        assert log.lost == 0 and log.written + log.spilled == 300 and log.spilled > 0
        (disk / "filler").unlink()  # space again
        again = AuditLog(disk / "state", StoreConfig(), "k1", STAMP, outbox=True)
        assert again.count() == 300
        again.close()
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_no_file_of_the_store_is_written_through_a_symbolic_link(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    precious = outside / "precious"
    precious.write_text("keep me")
    for name in ("kiosk.lock", "audit.journal", "audit.sqlite", "audit.sqlite-wal", "audit.reserve"):
        state = tmp_path / name
        state.mkdir()
        (state / name).symlink_to(precious)
        with pytest.raises(StoreError, match=f"{name} is a symbolic link"):
            AuditLog(state, StoreConfig(), "k1", STAMP)
        assert precious.read_text() == "keep me"
    state = tmp_path / "frames-linked"
    log = AuditLog(state, StoreConfig(keep_best_frame=True), "k1", STAMP)
    (state / "frames").symlink_to(outside, target_is_directory=True)
    log.record(screening(0, np.zeros((8, 8, 3), np.uint8)), time.time())
    log.close()
    assert sorted(p.name for p in outside.iterdir()) == ["precious"]  # the row is kept, the frame is not
    assert sqlite3.connect(state / "audit.sqlite").execute("SELECT frame_path FROM screenings").fetchall() == [(None,)]
