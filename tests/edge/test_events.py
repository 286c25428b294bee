"""The loop's one way out (edge/events.py): typed events in order, whole status snapshots,
and an output that fails never stops the screening or the audit log."""

import dataclasses
import logging
import sqlite3
import subprocess
import sys
import threading

import pytest

from edge.config import load_config
from edge.decision import Outcome, State
from edge.events import KioskStatus, ScreeningDone, Started, StateChanged, Stopped
from edge.kiosk import Kiosk
from tests.edge.test_kiosk import config


class Recorder:
    def __init__(self) -> None:
        self.events, self.statuses = [], []

    def on_event(self, event) -> None:
        self.events.append(event)

    def on_status(self, status) -> None:
        self.statuses.append(status)


class Broken:
    def on_event(self, event) -> None:
        raise RuntimeError("this output is broken")

    def on_status(self, status) -> None:
        raise ValueError("and so is its status")


def test_events_arrive_typed_and_in_order(tmp_path):
    recorder = Recorder()
    kiosk = Kiosk(load_config(config(tmp_path)), outputs=[recorder])
    status = kiosk.run(max_screenings=2)
    kinds = [type(e) for e in recorder.events]
    assert kinds[-1] is Stopped and recorder.events[-1].screenings == 2
    done = [e for e in recorder.events if isinstance(e, ScreeningDone)]
    assert len(done) == status.screenings == 2
    assert all(isinstance(e.screening.outcome, Outcome) for e in done)
    states = [e.state for e in recorder.events if isinstance(e, StateChanged)]
    assert State.RESULT in states and all(isinstance(s, State) for s in states)
    # each screening is announced once its state is RESULT, and the status agrees
    assert status.last_result is not None and status.last_result.id == done[-1].screening.id
    assert recorder.statuses[-1] == status and status.frames == recorder.statuses[-1].frames


def test_started_is_published_before_the_first_frame(tmp_path):
    recorder = Recorder()
    kiosk = Kiosk(load_config(config(tmp_path)))
    kiosk.outputs.subscribe(recorder)
    assert recorder.events == []  # subscribed after Started: it was the audit log's
    events = [k for (k,) in sqlite3.connect(kiosk.store.path).execute("SELECT kind FROM events")]
    assert events == ["started"]
    kiosk.run(max_frames=5)
    assert not any(isinstance(e, Started) for e in recorder.events)


def test_a_failing_output_is_logged_once_and_changes_nothing(tmp_path, caplog):
    caplog.set_level(logging.ERROR, "edge.events")
    cfg = load_config(config(tmp_path))
    kiosk = Kiosk(cfg, outputs=[Broken()])
    status = kiosk.run(max_screenings=2)
    rows = sqlite3.connect(cfg.state_dir / "audit.sqlite").execute("SELECT COUNT(*) FROM screenings").fetchone()[0]
    assert status.screenings == rows == 2
    failures = [r.getMessage() for r in caplog.records if "output Broken failed" in r.getMessage()]
    assert len(failures) == 2 and kiosk.outputs.failures > 100  # one line per kind of failure, not per frame


def test_status_is_a_frozen_snapshot_replaced_as_a_whole(tmp_path):
    kiosk = Kiosk(load_config(config(tmp_path)))
    with pytest.raises(dataclasses.FrozenInstanceError):
        kiosk.status.frames = 3
    seen: list[KioskStatus] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            seen.append(kiosk.status)

    t = threading.Thread(target=reader)
    t.start()
    try:
        kiosk.run(max_screenings=2)
    finally:
        stop.set()
        t.join()
    assert len(seen) > 10
    for s in seen:  # whatever moment a reader looked, the snapshot is consistent with itself
        assert (s.last_result is None) == (s.screenings == 0)
        assert s.classified <= s.frames and isinstance(s.state, State)


def test_the_decision_rules_need_no_openvino():
    code = ("import sys; import edge.contract, edge.decision, edge.events, edge.outputs.audit; "
            "sys.exit('openvino' in sys.modules or 'torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
