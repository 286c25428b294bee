"""The authority's side against a real Mosquitto: `fleet tail` shows every kiosk (or one site),
`fleet collect` keeps each screening once, `fleet summary` counts by site and outcome."""

from __future__ import annotations

import json
import threading

import pytest
from click.testing import CliRunner

from authority.fleetview import Collection, FleetError, collect, parse_window, summarize, tail
from edge.cli import main as mpox
from edge.config import load_config
from edge.decision import Outcome
from tests.fleet.conftest import Rig, kiosk_yaml, wait_for


def broker_cfg(tmp_path, broker, **kw):
    return load_config(kiosk_yaml(tmp_path, broker.fleet_yaml(**kw))).fleet


def in_thread(target, *args) -> tuple[threading.Thread, list]:
    result: list = []
    t = threading.Thread(target=lambda: result.append(target(*args)), daemon=True)
    t.start()
    return t, result


def test_collect_keeps_each_screening_once_and_summary_counts_by_site_and_outcome(tmp_path, broker):
    db_file = tmp_path / "office" / "fleet.sqlite"
    stop, subscribed = threading.Event(), threading.Event()
    collector, kept = in_thread(collect, broker_cfg(tmp_path, broker), db_file, stop, "test-collector", subscribed)
    assert subscribed.wait(10)
    a = Rig(tmp_path / "a", broker.fleet_yaml(site="site-a"), "gate-1")
    b = Rig(tmp_path / "b", broker.fleet_yaml(site="site-b"), "gate-2")
    try:
        sent_a, _ = a.screen(6), b.screen(3)
        assert wait_for(lambda: a.unsent() == 0 and b.unsent() == 0)
        a.uplink.client.publish("mpox/site-a/gate-1/screening", a.store.db.execute(
            "SELECT payload FROM outbox WHERE id = ?", (sent_a[0],)).fetchone()[0], qos=1).wait_for_publish(5)  # a repeat
    finally:
        a.close()
        b.close()
    def both_offline() -> bool:  # the repeat went before them: by now it has reached the collector too
        return [k.status for k in summarize(db_file, parse_window("24h")).kiosks] == ["offline"] * 2

    assert wait_for(both_offline)
    stop.set()
    collector.join(10)
    assert kept[0].stored > 9 and kept[0].bad == 0
    s = summarize(db_file, parse_window("24h"))
    assert s.counts == {"site-a": {Outcome.MPOX: 2, Outcome.OTHER_RASH: 1, Outcome.OTHER_CONDITION: 1, Outcome.NO_RASH: 1,
                                   Outcome.UNCERTAIN: 1},
                        "site-b": {Outcome.MPOX: 1, Outcome.OTHER_RASH: 1, Outcome.OTHER_CONDITION: 1, Outcome.NO_RASH: 0,
                                   Outcome.UNCERTAIN: 0}}
    assert [(k.site, k.kiosk, k.status, k.model_version, k.missing, k.lost, k.clash) for k in s.kiosks] == [
        ("site-a", "gate-1", "offline", "2.1.0", 0, 0, None), ("site-b", "gate-2", "offline", "2.1.0", 0, 0, None)]
    old = Collection(db_file)  # a screening from two days ago is outside the morning's window
    old.add("mpox/site-b/gate-2/screening", json.dumps({"uuid": "old-1", "finished_utc": "2000-01-01T00:00:00.000+00:00",
                                                        "outcome": "mpox_suspected", "model": {"version": "1.0.0"}}).encode())
    assert not old.add("mpox/site-b/gate-2/screening", b'{"uuid": "x"}') and old.bad == 1  # one clear skip, not a crash
    old.close()
    assert summarize(db_file, parse_window("24h")).counts == s.counts
    result = CliRunner().invoke(mpox, ["fleet", "summary", "--db", str(db_file), "--since", "24h"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[1].split() == ["site", "mpox_suspected", "other_rash_suspected", "other_condition_suspected", "no_rash_detected",
                                "uncertain", "total"]
    assert lines[2].split() == ["site-a", "2", "1", "1", "1", "1", "6"] and lines[4].split() == ["all", "3", "2", "2", "1", "1", "9"]
    assert "site-b/gate-2  offline  2.1.0" in result.output
    everything = json.loads(CliRunner().invoke(mpox, ["fleet", "summary", "--db", str(db_file), "--since", "36500d", "--json"]).output)
    assert everything["counts"]["site-b"]["mpox_suspected"] == 2
    bad = CliRunner().invoke(mpox, ["fleet", "summary", "--db", str(db_file), "--since", "yesterday"])
    assert bad.exit_code == 1 and "not a time window" in bad.output


def test_tail_shows_one_site_as_it_happens(tmp_path, broker):
    lines: list[str] = []
    stop = threading.Event()
    tailing, _ = in_thread(tail, broker_cfg(tmp_path, broker), "site-a", lines.append, stop)
    a = Rig(tmp_path / "a", broker.fleet_yaml(site="site-a"), "gate-1")
    b = Rig(tmp_path / "b", broker.fleet_yaml(site="site-b"), "gate-2")
    try:
        assert wait_for(lambda: any("site-a/gate-1 online model fast-mpoxnet 2.1.0" in x for x in lines))
        (uid,) = a.screen(1)
        b.screen(1)
        assert wait_for(lambda: any(uid in x for x in lines))
    finally:
        a.close()
        b.close()
        stop.set()
        tailing.join(10)
    shown = next(x for x in lines if uid in x)
    assert "site-a/gate-1 screening mpox_suspected (Normal 0.90) model fast-mpoxnet 2.1.0" in shown
    assert not any("site-b" in x for x in lines)


def test_tail_with_a_wrong_password_is_one_line(tmp_path, broker, monkeypatch):
    monkeypatch.setenv("MPOX_MQTT_PASSWORD", "wrong")
    result = CliRunner().invoke(mpox, ["fleet", "tail", "--host", "127.0.0.1", "--port", str(broker.port), "--ca-file", str(broker.ca),
                                       "--username", "kiosk"])
    assert result.exit_code == 1 and "refused the login" in result.output and "Traceback" not in result.output
    with pytest.raises(FleetError, match="no collector file"):
        summarize(tmp_path / "none.sqlite", 3600)
