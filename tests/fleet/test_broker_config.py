"""deploy/mosquitto.conf, as shipped, in a real mosquitto laid out as Debian does (a main file
with persistence_location and the log, the drop-in in its conf.d), on a free port in a temp
folder: it loads, refuses anonymous logins, and saves on changes, so a kill -9 keeps the
collector's queue and the retained messages up to the last autosave_interval changes."""

from __future__ import annotations

import os
import pwd
import re
import subprocess
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.fleet.conftest import MOSQUITTO, PASSWORD, USER, free_port, make_tls, password_line, wait_for

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "deploy" / "mosquitto.conf"


def setting(text: str, key: str) -> str:
    (value,) = re.findall(rf"^{key} (.+)$", text, re.M)
    return value


class ShippedBroker:
    def __init__(self, folder: Path) -> None:
        self.folder, self.port = folder, free_port()
        (folder / "conf.d").mkdir(parents=True)
        (folder / "data").mkdir()
        self.ca, cert, key = make_tls(folder)
        (folder / "passwd").write_text(password_line(USER, PASSWORD) + "\n")
        text = SHIPPED.read_text()
        for key_, value in {"password_file": folder / "passwd", "cafile": self.ca, "certfile": cert, "keyfile": key,
                            "listener": f"{self.port} 127.0.0.1"}.items():
            text, n = re.subn(rf"^{key_} .+$", f"{key_} {value}", text, flags=re.M)
            assert n == 1, f"deploy/mosquitto.conf has no single {key_} line"
        (folder / "conf.d" / "mpox.conf").write_text(text)
        user = pwd.getpwuid(os.getuid()).pw_name  # as root, mosquitto would switch to its own user, who cannot read tmp_path
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text(f"user {user}\npersistence true\npersistence_location {folder / 'data'}/\n"
                             f"log_dest file {folder / 'mosquitto.log'}\ninclude_dir {folder / 'conf.d'}\n")
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        import socket

        def listening() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto refused deploy/mosquitto.conf: {self.proc.stderr.read().decode()} "
                                   f"{(self.folder / 'mosquitto.log').read_text() if (self.folder / 'mosquitto.log').exists() else ''}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return True
            except OSError:
                return False

        assert wait_for(listening, 10), "mosquitto did not open its port"

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def client(broker: ShippedBroker, client_id: str = "", password: str | None = PASSWORD, persistent: bool = False) -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=not persistent)
    if password is not None:
        c.username_pw_set(USER, password)
    c.tls_set(ca_certs=str(broker.ca))
    return c


def connect(c: mqtt.Client, broker: ShippedBroker) -> list:
    """Connect and run; returns the CONNACK reason codes as they come."""
    codes: list = []
    c.on_connect = lambda cl, u, f, rc, p: codes.append(rc)
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    assert wait_for(lambda: codes, 10), "no CONNACK"
    return codes


@pytest.fixture
def shipped(tmp_path):
    if not Path(MOSQUITTO).exists():
        pytest.skip("mosquitto is not installed (apt install mosquitto)")
    b = ShippedBroker(tmp_path / "broker")
    b.start()
    yield b
    b.stop()


def test_the_shipped_broker_config_refuses_strangers_and_a_kill_keeps_what_it_saved(shipped):
    text = SHIPPED.read_text()
    assert setting(text, "persistence") == "true" and setting(text, "autosave_on_changes") == "true"
    assert setting(text, "allow_anonymous") == "false" and int(setting(text, "max_queued_messages")) >= 10_000
    every = int(setting(text, "autosave_interval"))  # changes, with autosave_on_changes

    stranger = client(shipped, password=None)
    assert connect(stranger, shipped)[0].is_failure  # no login, no entry
    stranger.loop_stop()

    office = client(shipped, "office", persistent=True)  # the collector's session, then away
    assert not connect(office, shipped)[0].is_failure
    subscribed = threading.Event()
    office.on_subscribe = lambda *a: subscribed.set()
    office.subscribe("mpox/#", qos=1)
    assert subscribed.wait(10)
    office.disconnect()
    office.loop_stop()

    kiosk = client(shipped, "kiosk")
    assert not connect(kiosk, shipped)[0].is_failure
    kiosk.publish("mpox/s/k/status", b'{"status": "online"}', qos=1, retain=True).wait_for_publish(10)
    sent = 3 * every
    for i in range(sent):
        info = kiosk.publish("mpox/s/k/screening", f'{{"n": {i}}}'.encode(), qos=1)
    info.wait_for_publish(30)
    kiosk.disconnect()
    kiosk.loop_stop()
    saved = shipped.folder / "data" / "mosquitto.db"
    assert wait_for(saved.exists, 20), "nothing saved after hundreds of changes: autosave_on_changes is not working"
    shipped.kill()
    shipped.start()

    got: list[bytes] = []
    retained: list[bytes] = []
    office = client(shipped, "office", persistent=True)
    office.on_message = lambda c, u, m: (retained if m.retain else got).append(m.payload)
    connect(office, shipped)
    assert wait_for(lambda: len(got) >= sent - 2 * every, 20), f"{len(got)} of {sent} queued messages survived"
    office.subscribe("mpox/s/k/status", qos=1)  # a new subscription gets the retained message
    assert wait_for(lambda: retained == [b'{"status": "online"}'], 10)
    office.disconnect()
    office.loop_stop()
