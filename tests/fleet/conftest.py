"""A real Mosquitto for the fleet tests: on a free loopback port, TLS with a CA and server
certificate made here, a password file, and persistence (so a subscriber's session and the
messages queued for it survive a broker restart, as on a real site's broker)."""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import json
import os
import pwd
import socket
import sqlite3
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from paho.mqtt.enums import CallbackAPIVersion

from edge.config import load_config
from edge.decision import Outcome, Screening
from edge.events import ModelFacts, Publisher, ScreeningDone
from edge.outputs.audit import AuditOutput
from edge.outputs.fleet import FleetUplink
from edge.store import AuditLog, ModelStamp
from tests import last_wins
from tests.rollout.conftest import authority, bundles  # noqa: F401 - the rollout tests' fixtures, for tests/fleet/test_announce.py

MOSQUITTO = "/usr/sbin/mosquitto"
MODEL = ModelFacts("fast-mpoxnet", "2.1.0", "ab" * 32, "FP32", "CPU", 0.3)
USER, PASSWORD = "kiosk", "s3cret-Pa55"


def password_line(user: str, password: str, salt: bytes | None = None) -> str:
    """A mosquitto_passwd line: `user:$7$<iterations>$<salt>$<hash>`, PBKDF2-HMAC-SHA512 (mosquitto 2.x)."""
    salt = salt or os.urandom(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, 101, 64)
    return f"{user}:$7$101${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def make_tls(folder: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1/localhost signed by it: (ca.pem, server.pem, server.key)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mpox test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption()))
    return paths


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    def __init__(self, folder: Path, tls: bool = True, autosave: str = "autosave_interval 1") -> None:
        """autosave: the persistence line; "autosave_interval 3600" keeps everything in memory
        until a clean stop, so a kill -9 loses all the broker held."""
        self.folder, self.tls = folder, tls
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.ca, cert, key = make_tls(folder)
        (folder / "passwd").write_text(password_line(USER, PASSWORD) + "\n")
        (folder / "data").mkdir(exist_ok=True)
        tls_lines = f"cafile {self.ca}\ncertfile {cert}\nkeyfile {key}\n" if tls else ""
        self.conf = folder / "mosquitto.conf"
        user = pwd.getpwuid(os.getuid()).pw_name  # run as root, mosquitto would switch to its own user, who cannot read tmp_path
        self.conf.write_text(f"user {user}\nper_listener_settings false\nallow_anonymous false\npassword_file {folder / 'passwd'}\n"
                             f"persistence true\npersistence_location {folder / 'data'}/\n{autosave}\n"
                             f"max_queued_messages 10000\nlog_dest file {folder / 'mosquitto.log'}\n"
                             f"listener {self.port} 127.0.0.1\n{tls_lines}")
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto did not start: {self.proc.stderr.read().decode()} {self.log()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not open its port")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()  # mosquitto saves its persistence file on SIGTERM
            self.proc.wait(10)
        self.proc = None

    def kill(self) -> None:
        """SIGKILL: the broker saves nothing."""
        self.proc.kill()
        self.proc.wait(10)
        self.proc = None

    def log(self) -> str:
        p = self.folder / "mosquitto.log"
        return p.read_text() if p.exists() else ""

    def fleet_yaml(self, password: str = PASSWORD, site: str = "site-a", extra: str = "") -> str:
        """The kiosk config's fleet section for this broker."""
        return (f"fleet:\n  enabled: true\n  host: 127.0.0.1\n  port: {self.port}\n  site: {site}\n  tls: {str(self.tls).lower()}\n"
                f"  ca_file: {self.ca}\n  username: {USER}\n  password: {password}\n  reconnect_max_s: 1\n"
                f"  health_interval_s: 1\n{extra}")


@pytest.fixture
def broker(tmp_path) -> Iterator[Broker]:
    if not Path(MOSQUITTO).exists():
        pytest.skip("mosquitto is not installed (apt install mosquitto)")
    b = Broker(tmp_path / "broker")
    b.start()
    yield b
    b.stop()


class Listener:
    """A subscriber with a persistent session (QoS 1): what arrives while it or the broker is
    down is queued for it. `messages` holds (topic, JSON payload) in arrival order."""

    def __init__(self, broker: Broker, topic: str = "mpox/#", client_id: str = "test-listener") -> None:
        self.messages: list[tuple[str, dict]] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        self.client.username_pw_set(USER, PASSWORD)
        self.client.tls_set(ca_certs=str(broker.ca))
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        self.wait_for(lambda: self.client.is_connected(), 10)

    def _on_message(self, client, userdata, msg) -> None:
        with self.lock:
            self.messages.append((msg.topic, json.loads(msg.payload) if msg.payload.startswith(b"{") else {}))

    def on(self, leaf: str) -> list[dict]:
        with self.lock:
            return [body for topic, body in self.messages if topic.endswith("/" + leaf)]

    def wait_for(self, condition, timeout: float = 30) -> bool:
        return wait_for(condition, timeout)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def wait_for(condition, timeout: float = 30) -> bool:
    """Poll until condition() holds (a wait on a loaded machine, not a speed check)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@pytest.fixture
def listener(broker) -> Iterator[Listener]:
    lst = Listener(broker)
    yield lst
    lst.close()


def kiosk_yaml(tmp_path: Path, fleet: str, kiosk_id: str = "gate-1") -> Path:
    """A fast demo kiosk (as tests/edge/test_kiosk.py) reporting to the test broker."""
    p = tmp_path / "kiosk.yaml"
    p.write_text(last_wins(f"kiosk_id: {kiosk_id}\nstate_dir: state\nsource:\n  kind: demo\n  fps: 75\ndecision:\n  frames: 5\n"
                           "  best_frames: 4\n  result_hold_s: 0.5\n  leave_after_s: 0.2\npresence:\n  learn_s: 0.2\nweb:\n"
                           "  enabled: false\n" + fleet))
    return p


class Collector:
    """`mpox fleet collect` on a thread, into one file; stopped and started again like the service."""

    def __init__(self, tmp_path: Path, broker: Broker, ask_every_s: float = 60.0) -> None:
        from authority.fleetview import collect

        (tmp_path / "office").mkdir(parents=True, exist_ok=True)
        self.cfg = load_config(kiosk_yaml(tmp_path / "office", broker.fleet_yaml())).fleet
        self.path = tmp_path / "office" / "fleet.sqlite"
        self.collect, self.ask_every_s = collect, ask_every_s
        self.thread: threading.Thread | None = None
        self.result: list = []

    def start(self, client_id: str = "test-collector") -> None:
        self.stop_event, subscribed = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=lambda: self.result.append(
            self.collect(self.cfg, self.path, self.stop_event, client_id, subscribed, self.ask_every_s)), daemon=True)
        self.thread.start()
        assert subscribed.wait(15), "the collector did not subscribe"

    def stop(self) -> None:
        if self.thread is not None:
            self.stop_event.set()
            self.thread.join(15)
            self.thread = None

    def screenings(self) -> Counter:
        """uuid -> how many times the collector's file holds it."""
        if not self.path.exists():
            return Counter()
        db = sqlite3.connect(self.path)
        try:
            return Counter(u for (u,) in db.execute("SELECT uuid FROM screenings"))
        finally:
            db.close()


@pytest.fixture
def collector(tmp_path, broker) -> Iterator[Collector]:
    c = Collector(tmp_path, broker)
    c.start()
    yield c
    c.stop()


class Rig:
    """The audit log and the uplink as `mpox kiosk run` wires them, without camera or model."""

    def __init__(self, tmp_path: Path, fleet: str, kiosk_id: str = "gate-1") -> None:
        tmp_path.mkdir(parents=True, exist_ok=True)
        self.cfg = load_config(kiosk_yaml(tmp_path, fleet, kiosk_id))
        self.store = AuditLog(self.cfg.state_dir, self.cfg.store, self.cfg.kiosk_id, ModelStamp("fast-mpoxnet", "2.1.0", "ab" * 32),
                              outbox=True)
        self.uplink = FleetUplink(self.cfg.fleet, self.cfg.kiosk_id, self.store.path, self.cfg.state_dir, MODEL)
        self.outputs = Publisher()
        self.outputs.subscribe(AuditOutput(self.store))
        self.outputs.subscribe(self.uplink)

    def screen(self, n: int) -> list[str]:
        ids = []
        for i in range(n):
            s = Screening(id=str(uuid.uuid4()), started=0.0, finished=2.0, outcome=list(Outcome)[i % len(Outcome)], label="Normal",
                          probabilities={"Monkeypox": 0.1, "Normal": 0.9}, frames=8, agreement=1.0, quality={"sharpness": 50.0})
            self.outputs.event(ScreeningDone(time.time(), s))
            ids.append(s.id)
        return ids

    def unsent(self) -> int:
        return self.store.db.execute("SELECT COUNT(*) FROM outbox WHERE sent_utc IS NULL").fetchone()[0]

    def close(self) -> None:
        self.outputs.close()
        self.store.close()
