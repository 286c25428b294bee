"""The fleet uplink against a real Mosquitto (TLS, password file): screenings, status and health
arrive; a broker outage, a SIGKILLed kiosk and a wrong password lose nothing."""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from edge.config import load_config
from edge.kiosk import Kiosk
from edge.outputs import open_outputs
from tests.fleet.conftest import Rig, kiosk_yaml, make_tls, wait_for

ROOT = Path(__file__).resolve().parents[2]


def test_a_kiosk_reports_its_screenings_status_and_health(tmp_path, broker, listener, collector):
    cfg = load_config(kiosk_yaml(tmp_path, broker.fleet_yaml()))
    kiosk = Kiosk(cfg)
    open_outputs(cfg, kiosk)
    kiosk.run(max_screenings=2)
    ids = [i for (i,) in sqlite3.connect(cfg.state_dir / "audit.sqlite").execute("SELECT id FROM screenings ORDER BY finished_utc")]
    assert len(ids) == 2
    assert listener.wait_for(lambda: len(listener.on("screening")) == 2 and listener.on("status")[-1]["status"] == "offline")
    topics = {t for t, _ in listener.messages}
    assert {"mpox/site-a/gate-1/screening", "mpox/site-a/gate-1/status", "mpox/site-a/gate-1/health",
            "mpox/site-a/gate-1/event"} <= topics
    sent = listener.on("screening")
    assert [m["uuid"] for m in sent] == ids
    assert all(m["model"] == {"name": "fast-mpoxnet", "version": kiosk.model.version, "sha256": kiosk.model.sha256} for m in sent)
    assert all(set(m) == {"uuid", "kiosk", "started_utc", "finished_utc", "outcome", "label", "probabilities", "model", "origin",
                          "v", "stream", "seq", "floor"} for m in sent)  # never a picture or a path
    assert all(m["v"] == 2 and m["stream"] == sent[0]["stream"] for m in sent) and sent[0]["seq"] < sent[1]["seq"]
    online = listener.on("status")[0]
    assert online["status"] == "online" and online["model"]["version"] == kiosk.model.version
    health = listener.on("health")[-1]
    assert health["model"]["sha256"] == kiosk.model.sha256 and health["disk_free_mb"] > 0 and "fps" in health
    assert "stopped" in [m["kind"] for m in listener.on("event")]
    assert health["stream"] == sent[0]["stream"] and health["clash"] is None and online["instance"] == health["instance"]
    db = sqlite3.connect(cfg.state_dir / "audit.sqlite")
    assert db.execute("SELECT COUNT(*) FROM outbox WHERE sent_utc IS NULL").fetchone()[0] == 0  # every one acknowledged by the collector
    assert collector.screenings() == Counter(ids)


def test_a_broker_outage_loses_nothing_and_the_collector_keeps_each_screening_once(tmp_path, broker, listener, collector, caplog):
    caplog.set_level(logging.INFO, "edge.outputs.fleet")
    rig = Rig(tmp_path, broker.fleet_yaml())
    try:
        assert listener.wait_for(lambda: any(m["status"] == "online" for m in listener.on("status")))
        broker.stop()
        assert listener.wait_for(lambda: not rig.uplink.connected.is_set(), 10)
        ids = rig.screen(200)  # screening goes on
        assert rig.store.count() == 200 and rig.unsent() >= 200
        broker.start()
        assert listener.wait_for(lambda: len(listener.on("screening")) >= 200 and rig.unsent() == 0, 60), rig.unsent()
    finally:
        rig.close()
    # On the wire at least once (a reconnect re-sends what the collector has not acknowledged yet);
    # in the collector's file exactly once.
    assert set(m["uuid"] for m in listener.on("screening")) == set(ids)
    kept = collector.screenings()
    assert set(kept) == set(ids) and max(kept.values()) == 1
    problems = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(problems) <= 3, [r.getMessage() for r in problems]  # the outage, not every retry


def test_a_sigkilled_kiosk_sends_every_committed_event_after_restart(tmp_path, broker, listener):
    cfg_file = kiosk_yaml(tmp_path, broker.fleet_yaml())
    db_file = tmp_path / "state" / "audit.sqlite"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    run = [sys.executable, "-m", "edge.cli", "kiosk", "run", "--no-view", "--config", str(cfg_file)]

    def screenings() -> int:
        if not db_file.exists():
            return 0
        db = sqlite3.connect(db_file)
        try:
            return db.execute("SELECT COUNT(*) FROM screenings").fetchone()[0]
        except sqlite3.Error:
            return 0
        finally:
            db.close()

    proc = subprocess.Popen(run, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert listener.wait_for(lambda: len(listener.on("screening")) >= 1, 90)  # live while the broker is up
        broker.stop()  # then the network goes, and the kiosk screens on
        live = screenings()
        assert listener.wait_for(lambda: screenings() >= live + 2, 90)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    db = sqlite3.connect(db_file)
    owed = {i for (i,) in db.execute("SELECT id FROM outbox")}  # every committed screening and event
    committed = {i for (i,) in db.execute("SELECT id FROM screenings")}
    db.close()
    assert committed <= owed and len(committed) >= 3
    broker.start()
    proc = subprocess.Popen(run, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        arrived = lambda: {m["uuid"] for leaf in ("screening", "event") for m in listener.on(leaf)}  # noqa: E731
        assert listener.wait_for(lambda: owed <= arrived(), 90), f"{len(owed - arrived())} of {len(owed)} missing"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert proc.returncode == 0
    assert any(m["status"] == "offline" for m in listener.on("status"))  # the last will of the killed kiosk, or the clean stop


def fleet_line_count(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "edge.outputs.fleet" and r.levelno >= logging.ERROR]


def test_a_wrong_password_is_one_clear_line_and_screening_goes_on(tmp_path, broker, caplog):
    caplog.set_level(logging.INFO, "edge.outputs.fleet")
    rig = Rig(tmp_path, broker.fleet_yaml(password="wrong", extra="  mqtt_version: '3.1.1'\n"))
    try:
        ids = rig.screen(5)
        assert wait_for(lambda: fleet_line_count(caplog)), "the refused login was never said"
        time.sleep(3)  # a dozen retries at reconnect_max_s: 1 (no clock asserted: only that they say nothing new)
        ids += rig.screen(5)
        assert rig.store.count() == 10 and rig.unsent() >= 10
    finally:
        rig.close()
    lines = fleet_line_count(caplog)
    assert len(lines) == 1 and "refused the login" in lines[0] and "check fleet.username and the password" in lines[0], lines
    assert "screening goes on" in lines[0] and "outbox" in lines[0]


def test_an_untrusted_broker_certificate_is_one_clear_line(tmp_path, broker, caplog):
    caplog.set_level(logging.INFO, "edge.outputs.fleet")
    other = tmp_path / "other-ca"
    other.mkdir()
    ca, _, _ = make_tls(other)  # a CA that did not sign the broker's certificate
    rig = Rig(tmp_path, broker.fleet_yaml().replace(str(broker.ca), str(ca)))
    try:
        rig.screen(3)
        assert wait_for(lambda: fleet_line_count(caplog)), "the untrusted certificate was never said"
        time.sleep(2.5)  # more retries, which must say nothing new
        assert rig.store.count() == 3
    finally:
        rig.close()
    lines = fleet_line_count(caplog)
    assert len(lines) == 1 and "certificate is not trusted" in lines[0] and "fleet.ca_file" in lines[0], lines
