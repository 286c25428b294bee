"""The fleet announces a model on the retained mpox/<site>/model topic (a real Mosquitto, the
bundle on a loopback web server): a running kiosk installs it on its own thread, moves to it
and reports the new version; a bundle that cannot be trusted or a malformed announcement is
one line, and the kiosk screens on with its model."""

from __future__ import annotations

import json
import logging
import queue
import tarfile
import threading
import time

from authority.fleetview import Collection, describe_message, tail
from edge.announce import Announcement, AnnouncementEvent, ModelFollower, model_topic
from edge.bundle import sha256_of
from edge.config import load_config
from edge.events import ModelFacts
from edge.kiosk import Kiosk
from edge.models import engine_for_start
from edge.modelstore import ModelStore
from edge.outputs import open_outputs
from edge.outputs.fleet import FleetUplink
from edge.outputs.rollout import RolloutWatch
from edge.rollout import install_bundle
from edge.store import AuditLog, ModelStamp
from tests.fleet.conftest import MODEL, PASSWORD, kiosk_yaml
from tests.rollout.conftest import cli, links
from tests.rollout.test_install import Server, flip_byte, rewrite
from tests.rollout.test_rollback import KioskProcess


def fleet_kiosk(tmp_path, broker, authority) -> tuple:
    """(config file, config) of a demo kiosk reporting to the test broker and trusting the authority."""
    path = kiosk_yaml(tmp_path, broker.fleet_yaml() + f"rollout:\n  public_key: {authority.public}\n  trial_frames: 20\n")
    return path, load_config(path)


def announce(path, url: str, version: str, sha256: str):
    """`mpox fleet announce` with the kiosk's own broker settings (the test broker has one login)."""
    result = cli(["fleet", "announce", "--config", str(path), "--site", "site-a", "--url", url, "--version", version,
                  "--sha256", sha256])
    assert result.exit_code == 0, result.output
    assert f"announced model {version} on mpox/site-a/model (retained)" in result.output
    return result


def running(listener, version: str) -> bool:
    """The kiosk's retained status says online on this version, and its health says so too."""
    status, health = listener.on("status"), listener.on("health")
    return bool(status and health and status[-1]["status"] == "online" and status[-1]["model"]["version"] == version
                and health[-1]["model"]["version"] == version)


def events(listener, kind: AnnouncementEvent) -> list[dict]:
    return [m for m in listener.on("event") if m["kind"] == kind.value]


def rest_of(kiosk: KioskProcess) -> list[str]:
    """Every line the stopped kiosk wrote."""
    while True:
        try:
            kiosk.seen.append(kiosk.lines.get(timeout=1))
        except queue.Empty:
            return kiosk.seen


def test_an_announced_bundle_reaches_a_running_kiosk_which_moves_to_it_and_reports_it(tmp_path, broker, listener, authority,
                                                                                       bundles):
    path, cfg = fleet_kiosk(tmp_path, broker, authority)
    server = Server(bundles["v2"].parent)
    kiosk = KioskProcess(path)
    try:
        kiosk.wait_for("delivering frames")
        assert listener.wait_for(lambda: listener.on("status") and listener.on("health"), 60)
        packaged = listener.on("status")[-1]["model"]["version"]  # the shipped Fast-MpoxNet's
        assert packaged != "2.2.0-test" and listener.wait_for(lambda: running(listener, packaged), 60)
        announce(path, f"{server.url}/v2.tar", "2.2.0-test", sha256_of(bundles["v2"]))
        assert "fast-mpoxnet 2.2.0-test from http://127.0.0.1" in kiosk.wait_for("fleet: announced model installed")
        kiosk.wait_for("is now current: restarting the kiosk on it")
        kiosk.wait_for("model fast-mpoxnet 2.2.0-test on CPU")  # the same process, started again
        assert listener.wait_for(lambda: running(listener, "2.2.0-test"), 60)
        assert listener.wait_for(lambda: events(listener, AnnouncementEvent.INSTALLED), 30)
        assert listener.wait_for(lambda: len(listener.on("screening")) >= 1 and
                                 listener.on("screening")[-1]["model"]["version"] == "2.2.0-test", 60)
    finally:
        code = kiosk.stop()
        server.close()
    assert code == 0
    assert links(cfg.state_dir)["current"].startswith("2.2.0-test-")
    lines = rest_of(kiosk)
    # the restarted kiosk got the retained announcement again and ignored it: one install, one event
    assert sum("announced model" in line for line in lines) == 1, lines
    installed = {e["uuid"]: e for e in events(listener, AnnouncementEvent.INSTALLED)}  # at least once: no collector acknowledges here
    assert [e["detail"].split(" from ")[0] for e in installed.values()] == ["fast-mpoxnet 2.2.0-test"]
    assert not any(line.startswith(("ERROR", "CRITICAL")) or "Traceback" in line for line in lines), lines


def test_an_announced_bundle_that_cannot_be_trusted_is_refused_and_the_kiosk_screens_on(tmp_path, broker, listener, authority,
                                                                                      bundles, caplog):
    caplog.set_level(logging.INFO)
    path, cfg = fleet_kiosk(tmp_path, broker, authority)
    (tmp_path / "www").mkdir()
    tampered = rewrite(bundles["v2"], tmp_path / "www" / "v2.tar", lambda n, d: [(n, flip_byte(d) if n.endswith(".bin") else d, tarfile.REGTYPE)])
    server = Server(tmp_path / "www")
    live: dict = {"started": threading.Event()}

    def run():  # the kiosk lives on its own thread (its audit database belongs to that thread)
        k = live["kiosk"] = Kiosk(cfg, engine=engine_for_start(cfg))
        live["outputs"] = open_outputs(cfg, k)
        live["started"].set()
        k.run()

    runner = threading.Thread(target=run)
    runner.start()
    try:
        assert live["started"].wait(60)
        k = live["kiosk"]
        packaged = k.model.version  # the shipped Fast-MpoxNet's
        assert packaged != "2.2.0-test" and listener.wait_for(lambda: running(listener, packaged), 60)
        announce(path, f"{server.url}/v2.tar", "2.2.0-test", sha256_of(tampered))  # the sha256 of what is served
        assert listener.wait_for(lambda: events(listener, AnnouncementEvent.REFUSED), 60)
        frames, screenings = k.status.frames, k.status.screenings
        assert listener.wait_for(lambda: k.status.frames > frames + 50 and k.status.screenings > screenings, 60)  # screens on
        assert runner.is_alive() and k.model.version == packaged
        assert not next(o for o in live["outputs"] if isinstance(o, RolloutWatch)).restart
    finally:
        if "kiosk" in live:
            live["kiosk"].stop()
        runner.join(60)
        server.close()
    refused = [r.getMessage() for r in caplog.records if "announced model" in r.getMessage()]
    assert len(refused) == 1 and refused[0].startswith("fleet: announced model refused: 2.2.0-test from http://127.0.0.1"), refused
    assert "does not match its signed checksum" in refused[0] and f"keeps running fast-mpoxnet {packaged}" in refused[0]
    assert "does not match its signed checksum" in events(listener, AnnouncementEvent.REFUSED)[0]["detail"]
    assert links(cfg.state_dir)["current"] is None and listener.on("health")[-1]["model"]["version"] == packaged
    assert {m["model"]["version"] for m in listener.on("status") if "model" in m} == {packaged}
    assert sorted(p.name for p in (cfg.state_dir / "models").iterdir()) == [".lock"]


MALFORMED = {
    b"not json": "not JSON",
    b"[1, 2]": "not a JSON object",
    b'{"url": "http://x/b.tar", "version": "2.2"}': "missing sha256",
    json.dumps({"url": "file:///etc/passwd", "version": "2.2", "sha256": "ab" * 32}).encode(): "url must be an http:// or https://",
    json.dumps({"url": "https://x/b.tar", "version": 2.2, "sha256": "ab" * 32}).encode(): "version must be 1 to 128 printable",
    json.dumps({"url": "https://x/b.tar", "version": "2.2", "sha256": "abc"}).encode(): "sha256 must be 64 hex digits",
}


def test_a_malformed_announcement_is_one_line_and_changes_nothing(tmp_path, broker, listener, authority, caplog):
    """Each bad payload on the retained topic: one line naming the problem; said once, however
    often the broker hands the same retained message over; no install, no event."""
    caplog.set_level(logging.DEBUG, "edge")
    path, cfg = fleet_kiosk(tmp_path, broker, authority)
    store = AuditLog(cfg.state_dir, cfg.store, cfg.kiosk_id, ModelStamp(MODEL.name, MODEL.version, MODEL.sha256), outbox=True)
    follow = ModelFollower(cfg, store.path)
    uplink = FleetUplink(cfg.fleet, cfg.kiosk_id, store.path, cfg.state_dir, MODEL, follow)
    try:
        assert listener.wait_for(uplink.connected.is_set, 30)
        for payload in MALFORMED:
            for _ in range(2):  # the same retained message again (as after a reconnect)
                listener.client.publish(model_topic("site-a"), payload, qos=1, retain=True).wait_for_publish(5)
        listener.client.publish(model_topic("site-a"), b"", qos=1, retain=True).wait_for_publish(5)  # withdrawn
        assert listener.wait_for(lambda: any("withdrawn" in r.getMessage() for r in caplog.records), 30)
    finally:
        uplink.close()
        store.close()
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(said) == len(MALFORMED), said
    for line, problem in zip(said, MALFORMED.values()):
        assert line.startswith("fleet: ignored the model announcement on mpox/site-a/model: ") and problem in line, line
        assert f"keeps running fast-mpoxnet {MODEL.version}" in line
    assert follow._worker is None and not (cfg.state_dir / "models").exists()
    assert not [e for e in listener.on("event") if e["kind"].startswith("model_")]


def test_a_version_the_kiosk_runs_or_rolled_back_is_ignored_quietly(tmp_path, broker, authority, bundles, caplog):
    caplog.set_level(logging.INFO, "edge")
    path, cfg = fleet_kiosk(tmp_path, broker, authority)
    store = ModelStore.of(cfg)
    bad = install_bundle(bundles["v3"], cfg).folder
    store.rollback(bad, "0 of 20 frames processed in the first 300 s")
    follow = ModelFollower(cfg, tmp_path / "not-written.sqlite")  # no table: an event would fail, loudly
    for version in (MODEL.version, "3.0.0-test"):  # MODEL: what the kiosk runs
        follow.offer(json.dumps({"url": "http://127.0.0.1:9/never.tar", "version": version, "sha256": "ab" * 32}).encode(), MODEL)
        deadline = time.monotonic() + 30
        while follow._worker is not None and time.monotonic() < deadline:
            time.sleep(0.02)
    assert follow._worker is None
    assert not [r for r in caplog.records if r.levelno >= logging.INFO and r.name == "edge.announce"], caplog.text
    assert links(cfg.state_dir)["current"] is None and (bad / "REJECTED").exists()


def test_the_authority_announces_and_its_own_views_show_it(tmp_path, broker, monkeypatch):
    base = ["fleet", "announce", "--host", "127.0.0.1", "--port", str(broker.port), "--ca-file", str(broker.ca), "--username", "kiosk",
            "--site", "site-a", "--url", "https://models.example/v2.tar", "--version", "2.2.0"]
    bad = cli([*base, "--sha256", "abc"])
    assert bad.exit_code == 1 and "sha256 must be 64 hex digits" in bad.output and "Traceback" not in bad.output
    bad = cli([*base[:-6], "--site", "a/b", *base[-4:], "--sha256", "ab" * 32])
    assert bad.exit_code == 1 and "--site must not contain" in bad.output
    monkeypatch.setenv("MPOX_MQTT_PASSWORD", "wrong")
    bad = cli([*base, "--sha256", "ab" * 32])
    assert bad.exit_code == 1 and "refused the login" in bad.output and "Traceback" not in bad.output
    monkeypatch.setenv("MPOX_MQTT_PASSWORD", PASSWORD)
    assert cli([*base, "--sha256", "AB" * 32]).exit_code == 0
    lines: list[str] = []
    stop = threading.Event()
    fleet = load_config(kiosk_yaml(tmp_path, broker.fleet_yaml())).fleet
    tailing = threading.Thread(target=tail, args=(fleet, "site-a", lines.append, stop, True), daemon=True)
    tailing.start()  # the retained announcement comes first
    deadline = time.monotonic() + 30
    while not lines and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    tailing.join(10)
    topic, payload = lines[0].split(" ", 1)
    assert topic == "mpox/site-a/model"
    body = json.loads(payload)
    assert {k: body[k] for k in ("url", "version", "sha256")} == {"url": "https://models.example/v2.tar", "version": "2.2.0",
                                                                  "sha256": "ab" * 32} and body["at"]
    assert describe_message(topic, payload.encode()).endswith("site-a model announced: version 2.2.0 at "
                                                              "https://models.example/v2.tar (sha256 abababababab...)")
    collection = Collection(tmp_path / "office.sqlite")  # the authority's own message: neither kept nor a bad one
    assert not collection.add(topic, payload.encode()) and collection.bad == 0 and collection.stored == 0
    collection.close()


def test_an_announced_version_older_than_the_running_one_is_refused_unless_the_announcement_allows_it(
        tmp_path, broker, authority, bundles, caplog):
    """A retained announcement of an old bundle (replayed, or left on the broker) does not take a
    kiosk back; "allow_downgrade": true (`mpox fleet announce --allow-downgrade`) does."""
    caplog.set_level(logging.INFO, "edge")
    path, cfg = fleet_kiosk(tmp_path, broker, authority)
    install_bundle(bundles["v3"], cfg)
    before = links(cfg.state_dir)
    store = AuditLog(cfg.state_dir, cfg.store, cfg.kiosk_id, ModelStamp(MODEL.name, "3.0.0-test", MODEL.sha256), outbox=True)
    server = Server(bundles["v2"].parent)
    follow = ModelFollower(cfg, store.path)
    runs = ModelFacts(MODEL.name, "3.0.0-test", MODEL.sha256, "FP32", "CPU", 0.3)

    def offer(**extra) -> None:
        follow.offer(Announcement(f"{server.url}/v2.tar", "2.2.0-test", sha256_of(bundles["v2"]), **extra).payload().encode(), runs)
        deadline = time.monotonic() + 60
        while follow._worker is not None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert follow._worker is None

    try:
        offer()
        assert links(cfg.state_dir) == before
        refused = [r.getMessage() for r in caplog.records if "announced model refused" in r.getMessage()]
        assert len(refused) == 1 and "2.2.0-test is older than the running fast-mpoxnet 3.0.0-test" in refused[0]
        offer(allow_downgrade=True)
        assert links(cfg.state_dir)["current"].startswith("2.2.0-test-")
    finally:
        server.close()
        store.close()


def test_allow_downgrade_in_an_announcement_must_be_true_or_false():
    from edge.announce import AnnouncementError, parse_announcement

    body = {"url": "https://models.example/v2.tar", "version": "2.2.0", "sha256": "ab" * 32}
    assert not parse_announcement(json.dumps(body).encode()).allow_downgrade
    assert parse_announcement(json.dumps({**body, "allow_downgrade": True}).encode()).allow_downgrade
    assert parse_announcement(Announcement(**body, allow_downgrade=True).payload().encode()).allow_downgrade
    try:
        parse_announcement(json.dumps({**body, "allow_downgrade": "yes"}).encode())
        raise AssertionError("a string taken for a flag")
    except AnnouncementError as e:
        assert "allow_downgrade must be true or false" in str(e)
