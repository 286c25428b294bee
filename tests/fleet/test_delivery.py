"""Nothing lost between kiosk and collector (edge/delivery.py), against a real Mosquitto: a
broker killed with SIGKILL before it could save, a hole the collector asks for, records the
collector never acknowledged, and two kiosks with the same id on one broker."""

from __future__ import annotations

import json
import logging
from collections import Counter

import httpx
import pytest

from authority.fleetview import Collection, format_summary, summarize
from edge.config import load_config
from edge.delivery import Resend, holes
from edge.kiosk import Kiosk
from edge.outputs import open_outputs
from tests.edge.test_kiosk import run_guarded
from tests.fleet.conftest import Broker, Collector, Listener, Rig, kiosk_yaml, wait_for

FAST_RESEND = "  resend_after_s: 1\n"
NO_RESEND = "  resend_after_s: 3600\n"  # only the collector's request can bring a record back


def delivered(rig: Rig, collector: Collector, ids: list[str]) -> bool:
    return rig.unsent() == 0 and set(collector.screenings()) >= set(ids)


def seqs(listener: Listener, stream: str) -> list[int]:
    return [m["seq"] for m in listener.on("screening") if m.get("stream") == stream]


@pytest.fixture
def memory_broker(tmp_path):
    """A broker that saves only at a clean stop: a kill -9 loses everything it held."""
    b = Broker(tmp_path / "broker", autosave="autosave_interval 3600")
    b.start()
    yield b
    b.stop()


def test_a_broker_killed_before_saving_loses_no_screening_and_keeps_each_once(tmp_path, memory_broker):
    broker = memory_broker
    office = Collector(tmp_path, broker)
    office.start()
    rig = Rig(tmp_path / "kiosk", broker.fleet_yaml(extra=FAST_RESEND))
    try:
        ids = rig.screen(5)
        assert wait_for(lambda: delivered(rig, office, ids)), "the collector's ack never came"
        office.stop()  # the office is away: the broker queues for its session, in memory
        ids += rig.screen(8)
        # the broker has taken all 8 (PUBACK): the old uplink marked them sent here
        assert wait_for(lambda: rig.uplink.in_flight == 0 and rig.uplink.awaiting_ack == 8 and rig.unsent() == 8)
        assert not (broker.folder / "data" / "mosquitto.db").exists()  # nothing saved yet
        broker.kill()
        ids += rig.screen(4)  # screening goes on through the outage
        broker.start()
        office.start()
        assert wait_for(lambda: delivered(rig, office, ids), 60), f"{rig.unsent()} unacknowledged"
    finally:
        rig.close()
        office.stop()
    assert office.screenings() == Counter(ids)  # every screening, exactly once
    db = Collection(office.path).db
    assert db.execute("SELECT COUNT(*), MIN(seq), MAX(seq) FROM received").fetchone() == (17, 1, 17)
    assert db.execute("SELECT upto, lost FROM streams").fetchone() == (17, 0)
    (kiosk,) = summarize(office.path, 3600).kiosks
    assert (kiosk.missing, kiosk.lost) == (0, 0)


def test_a_hole_is_asked_for_and_the_kiosk_resends_just_that(tmp_path, broker, listener):
    office = Collector(tmp_path, broker)
    office.start()
    rig = Rig(tmp_path / "kiosk", broker.fleet_yaml(extra=NO_RESEND))
    try:
        ids = rig.screen(2)
        assert wait_for(lambda: delivered(rig, office, ids))
        office.stop()
        ids += rig.screen(2)  # seqs 3 and 4: queued for a session that never comes back
        assert wait_for(lambda: rig.uplink.in_flight == 0 and rig.uplink.awaiting_ack == 2)
        office.start(client_id="test-collector-2")  # the same file, a new session
        ids += rig.screen(1)  # seq 5 after 2: the collector asks for 3-4
        assert wait_for(lambda: delivered(rig, office, ids)), f"{rig.unsent()} unacknowledged"
    finally:
        rig.close()
        office.stop()
    stream = rig.uplink.stream
    asked = [m for t, m in listener.messages if t == f"mpox/site-a/gate-1/resend/{stream}"]
    assert [m["ranges"] for m in asked] == [[[3, 4]]]
    assert seqs(listener, stream) == [1, 2, 3, 4, 5, 3, 4]  # what was asked, oldest first, and nothing else
    assert office.screenings() == Counter(ids)
    acks = [(i, m["upto"]) for i, (t, m) in enumerate(listener.messages) if t == f"mpox/site-a/gate-1/ack/{stream}"]
    asked_at = next(i for i, (t, _) in enumerate(listener.messages) if "/resend/" in t)
    assert acks[-1][1] == 5 and all(upto <= 2 for i, upto in acks if i < asked_at)  # no ack past the hole before it was filled


def test_what_the_collector_never_acknowledged_is_sent_again_on_its_own(tmp_path, broker, listener):
    office = Collector(tmp_path, broker)
    office.start()
    rig = Rig(tmp_path / "kiosk", broker.fleet_yaml(extra=FAST_RESEND))
    try:
        ids = rig.screen(2)
        assert wait_for(lambda: delivered(rig, office, ids))
        office.stop()
        ids += rig.screen(3)  # the tail: no later record shows the collector a hole
        office.start(client_id="test-collector-2")
        assert wait_for(lambda: delivered(rig, office, ids)), f"{rig.unsent()} unacknowledged"
    finally:
        rig.close()
        office.stop()
    sent = seqs(listener, rig.uplink.stream)
    again = sent[5:]
    assert sent[:5] == [1, 2, 3, 4, 5] and again[:3] == [3, 4, 5]  # oldest first, only the unacknowledged
    assert office.screenings() == Counter(ids)


def test_two_kiosks_with_one_id_both_stay_connected_and_each_warns_once(tmp_path, broker, listener, collector, caplog):
    caplog.set_level(logging.INFO, "edge.outputs.fleet")
    a = Rig(tmp_path / "a", broker.fleet_yaml(), "raspberrypi")
    try:
        assert wait_for(lambda: a.uplink.connected.is_set() and a.uplink.stream)
        # its own earlier run, killed before its last will: same outbox stream, another instance; not a clash
        listener.client.publish("mpox/site-a/raspberrypi/status", json.dumps(
            {"status": "online", "instance": "0badc0de", "stream": a.uplink.stream}), qos=1, retain=True).wait_for_publish(5)
        b = Rig(tmp_path / "b", broker.fleet_yaml(), "raspberrypi")
        try:
            assert wait_for(lambda: a.uplink.clash and b.uplink.clash), "the clash was not seen"
            ids = a.screen(3) + b.screen(3)  # and both are still heard: per-stream acks keep each one's records apart
            assert wait_for(lambda: a.unsent() == 0 and b.unsent() == 0 and set(collector.screenings()) == set(ids))
            assert a.uplink.connected.is_set() and b.uplink.connected.is_set()
            assert wait_for(lambda: collector_clash(collector))
        finally:
            b.close()
    finally:
        a.close()
    warnings = [r.getMessage() for r in caplog.records if "another kiosk uses the id" in r.getMessage()]
    assert len(warnings) == 2, warnings  # one line on each kiosk, naming the other's outbox stream
    assert sum(b.uplink.stream in w for w in warnings) == 1 and sum(a.uplink.stream in w for w in warnings) == 1
    assert "give each kiosk its own kiosk_id" in warnings[0]
    assert not [r for r in caplog.records if "lost the connection" in r.getMessage()]  # nobody knocked off
    assert any(m.get("clash") for t, m in listener.messages if t == "mpox/site-a/raspberrypi/status")


def test_a_kiosk_whose_id_is_taken_says_so_on_healthz_and_the_dashboard_and_screens_on(tmp_path, broker):
    """The clash reaches the people at the kiosk, not only the log and the authority: /healthz
    names it (still 200: screening goes on), as do the dashboard's health figures (the same status)."""
    other = Rig(tmp_path / "other", broker.fleet_yaml(), "raspberrypi")
    try:
        assert wait_for(lambda: other.uplink.connected.is_set() and other.uplink.stream)
        web_on = "web:\n  enabled: true\n  port: 0\n  consent: false\n"
        (tmp_path / "kiosk").mkdir()
        cfg = load_config(kiosk_yaml(tmp_path / "kiosk", broker.fleet_yaml() + web_on, "raspberrypi"))
        kiosk = Kiosk(cfg)
        web = open_outputs(cfg, kiosk)[-1]
        seen = {}

        def look(status):  # from the loop's thread
            if status.warnings and status.screenings and not seen:
                seen["healthz"] = httpx.get(web.url + "/healthz", timeout=10)
                kiosk.stop()
        kiosk.outputs.subscribe(type("Look", (), {"on_event": lambda self, e: None, "on_status": lambda self, s: look(s)})())
        run_guarded(kiosk, 60)
    finally:
        other.close()
    assert seen, "the clash never reached the kiosk's status"
    assert seen["healthz"].status_code == 200
    body = seen["healthz"].json()
    assert body["ok"] is True and len(body["warnings"]) == 1
    assert "another kiosk uses the id 'raspberrypi'" in body["warnings"][0] and other.uplink.stream in body["warnings"][0]


def collector_clash(collector: Collector) -> bool:
    kiosks = summarize(collector.path, 3600).kiosks
    return bool(kiosks) and kiosks[0].clash is not None and "CLASH: another kiosk uses the id 'raspberrypi'" in format_summary(
        summarize(collector.path, 3600))


def test_the_summary_says_what_is_missing_and_what_is_lost(tmp_path):
    """A kiosk's records by seq, straight into a collector file: 2 then 5 is a hole of two;
    a floor past a seq that never came makes it lost for good."""
    c = Collection(tmp_path / "fleet.sqlite")
    c.add("mpox/s/k/status", json.dumps({"status": "online", "model": {"version": "2.1.0"}}).encode())

    def record(seq: int, floor: int = 1) -> None:
        assert c.add("mpox/s/k/event", json.dumps({"uuid": f"e{seq}", "time_utc": "2030-01-01T00:00:00.000+00:00", "kind": "x",
                                                    "v": 2, "stream": "ab12", "seq": seq, "floor": floor}).encode())

    record(1)
    record(2)
    record(5)
    assert not c.add("mpox/s/k/event", json.dumps({"uuid": "e2", "time_utc": "x", "kind": "x", "v": 2, "stream": "ab12", "seq": 2,
                                                   "floor": 1}).encode()) and c.repeats == 1  # a repeat is kept once
    assert [(t, a.upto) for t, a in c.acks()] == [("mpox/s/k/ack/ab12", 2)]
    assert [(t, r.ranges) for t, r in c.requests(clock=100.0)] == [("mpox/s/k/resend/ab12", ((3, 4),))]
    assert c.requests(clock=101.0) == []  # not again at once
    (k,) = summarize(tmp_path / "fleet.sqlite", 3600).kiosks
    assert (k.missing, k.lost) == (2, 0)
    record(6, floor=4)  # the kiosk no longer holds 3: it never came, it is lost; 4 may still come
    assert (summarize(tmp_path / "fleet.sqlite", 3600).kiosks[0].missing, summarize(tmp_path / "fleet.sqlite", 3600).kiosks[0].lost) \
        == (1, 1)
    record(4, floor=4)
    assert [(t, a.upto) for t, a in c.acks()] == [("mpox/s/k/ack/ab12", 6)]
    c.add("mpox/s/k/health", json.dumps({"stream": "ab12", "seq_floor": 4, "seq_last": 9}).encode())  # 7-9 not here yet
    (k,) = summarize(tmp_path / "fleet.sqlite", 3600).kiosks
    assert (k.missing, k.lost) == (3, 1)
    assert "s/k  online  2.1.0" in format_summary(summarize(tmp_path / "fleet.sqlite", 3600)) and "missing 3  lost 1" in \
        format_summary(summarize(tmp_path / "fleet.sqlite", 3600))
    assert not c.add("mpox/s/k/event", json.dumps({"uuid": "z", "v": 2, "stream": "ab12", "seq": 0}).encode()) and c.bad == 1
    assert not c.add("mpox/s/k/ack/ab12", b'{"upto": 6}') and c.bad == 1  # its own answer: not a kiosk's, not bad
    c.close()


def test_ranges_and_requests_read_back():
    assert holes(2, 6, [5]) == ((3, 4),)
    assert holes(0, 10, [1, 2, 5, 7, 8]) == ((3, 4), (6, 6), (9, 9))
    assert holes(0, 10, [1], limit=3) == ((2, 4),)
    assert Resend.parse(Resend(((3, 4), (9, 9))).payload("t")).seqs() == [3, 4, 9]
    assert Resend(((1, 10**9),)).seqs(limit=3) == [1, 2, 3]
    with pytest.raises(ValueError):
        Resend.parse(b'{"ranges": [[4, 3]]}')


def test_an_audit_file_deleted_while_the_kiosk_runs_still_sends_every_screening(tmp_path, broker):
    """The store recreates a deleted audit file from its open database; the uplink must follow
    it to the new file, not keep reading the deleted one that nobody writes any more."""
    office = Collector(tmp_path, broker)
    office.start()
    rig = Rig(tmp_path / "kiosk", broker.fleet_yaml(extra=FAST_RESEND))
    try:
        ids = rig.screen(3)
        assert wait_for(lambda: delivered(rig, office, ids))
        rig.store.path.unlink()
        ids += rig.screen(3)  # the store notices at this write and recreates the file
        assert rig.store.path.exists()
        assert wait_for(lambda: delivered(rig, office, ids), 30), f"{rig.unsent()} unsent"
    finally:
        rig.close()
        office.stop()
    assert office.screenings() == Counter(ids)
