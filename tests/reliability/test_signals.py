"""Stopping, again and again: SIGTERM and SIGINT at any moment, with every kind of played-back
source, exit 0 and leave a sound audit database; SIGKILL during writes loses no committed row."""

import signal
import sqlite3
import subprocess
import sys
import threading
import time

import cv2
import numpy as np
import pytest

from tests.reliability.conftest import ROOT, mpox_process


def sources(tmp_path):
    folder = tmp_path / "pictures"
    folder.mkdir()
    for f in sorted((ROOT / "edge" / "demo").glob("*.png"))[:4]:
        (folder / f.name).write_bytes(f.read_bytes())
    video = tmp_path / "visit.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 15, (640, 480))
    rng = np.random.default_rng(0)
    for _ in range(60):
        writer.write(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8))
    writer.release()
    return {"demo": "kind: demo\n  fps: 60", "folder": f"kind: folder\n  target: {folder}\n  fps: 60\n  loop: true",
            "file": f"kind: file\n  target: {video}\n  fps: 0\n  loop: true"}


@pytest.mark.parametrize("kind", ["demo", "folder", "file"])
def test_sigterm_and_sigint_at_any_moment_exit_0_with_a_sound_database(tmp_path, kind):
    source = sources(tmp_path)[kind]
    cfg = tmp_path / "kiosk.yaml"
    cfg.write_text(f"state_dir: state\nsource:\n  {source}\npresence:\n  learn_s: 0.2\nweb:\n  enabled: false\n")
    rng = np.random.default_rng(1)
    for i in range(6):
        proc = mpox_process(["kiosk", "run", "--no-view", "--config", str(cfg)], tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")), daemon=True)  # noqa: B023 - joined within this iteration
        reader.start()
        deadline = time.monotonic() + 90
        while not any("delivering frames" in line for line in lines) and time.monotonic() < deadline:
            time.sleep(0.05)  # the kiosk is up (a signal while Python still imports is the interpreter's, not ours)
        time.sleep(float(rng.uniform(0.0, 2.5)))  # learning the scene, reading, decoding, assessing
        proc.send_signal(signal.SIGTERM if i % 2 == 0 else signal.SIGINT)
        proc.wait(timeout=60)
        reader.join(5)
        assert proc.returncode == 0, f"run {i}: exit {proc.returncode}\n{''.join(lines)[-2000:]}"
        db = sqlite3.connect(tmp_path / "state" / "audit.sqlite")
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        db.close()


WRITER = """
import sys, time
from pathlib import Path
from edge.config import StoreConfig
from edge.decision import Outcome, Screening
from edge.store import AuditLog, ModelStamp
log = AuditLog(Path(sys.argv[1]), StoreConfig(), "k", ModelStamp("m", "1", "0" * 64))
for i in range(100000):
    s = Screening(id=f"{sys.argv[2]}-{i}", started=0.0, finished=1.0, outcome=Outcome.NO_RASH, label="Normal",
                  probabilities={"Normal": 1.0}, frames=8, agreement=1.0, quality={})
    log.record(s, time.time())
    if not log.pending:
        print(s.id, flush=True)  # committed
"""


def test_sigkill_during_writes_loses_no_committed_row(tmp_path):
    state = tmp_path / "state"
    committed: list[str] = []
    rng = np.random.default_rng(2)
    for run in range(50):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(state), f"r{run}"], cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)
        first = proc.stdout.readline()  # it is writing
        time.sleep(float(rng.uniform(0.0, 0.15)))
        proc.kill()
        out, _ = proc.communicate()
        committed += [line for line in (first + out).split() if line]
        db = sqlite3.connect(state / "audit.sqlite")
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok", f"run {run}"
        ids = {i for (i,) in db.execute("SELECT id FROM screenings")}
        db.close()
        missing = [i for i in committed if i not in ids]
        assert not missing, f"run {run}: {len(missing)} committed rows lost, e.g. {missing[:3]}"
    assert len(committed) > 50
