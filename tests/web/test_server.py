"""The web output's life: a port in use is one clear line and the kiosk screens on; the
pages are up while the kiosk runs and gone when it stops."""

import logging
import re
import socket
import ssl
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed

import httpx
from argon2 import PasswordHasher

from edge.config import load_config
from edge.kiosk import Kiosk
from edge.outputs import open_outputs
from edge.web.auth import MAX_CHECKS, hash_password
from edge.web.server import WebOutput
from tests.edge.test_kiosk import config, run_guarded


def test_a_port_in_use_is_one_clear_line_and_the_kiosk_screens_on(tmp_path, caplog):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        cfg = load_config(config(tmp_path, f"web:\n  port: {port}\n  consent: false\n"))
        kiosk = Kiosk(cfg)
        with caplog.at_level(logging.INFO):
            open_outputs(cfg, kiosk)
            status = kiosk.run(max_screenings=1)
    assert status.screenings == 1
    refused = [r for r in caplog.records if "web pages NOT served" in r.getMessage()]
    assert len(refused) == 1 and f"127.0.0.1:{port}" in refused[0].getMessage()


def test_the_pages_are_served_while_the_kiosk_runs_and_stop_with_it(tmp_path):
    cfg = load_config(config(tmp_path, "web:\n  port: 0\n  consent: false\n"))
    kiosk = Kiosk(cfg)
    outputs = open_outputs(cfg, kiosk)
    web = outputs[-1]
    assert web.url and web.url.startswith("http://127.0.0.1:")
    seen = {}

    def look(status):  # from the loop's thread, once the kiosk has finished a screening
        if status.screenings and not seen:
            seen["healthz"] = httpx.get(web.url + "/healthz", timeout=10).json()
            seen["staff"] = httpx.get(web.url + "/staff", timeout=10).text
            seen["metrics"] = httpx.get(web.url + "/metrics", timeout=10).text
    kiosk.outputs.subscribe(type("Look", (), {"on_event": lambda self, e: None, "on_status": lambda self, s: look(s)})())
    kiosk.run(max_screenings=1)
    assert seen["healthz"] == {"ok": True, "reason": "ok", "warnings": []}
    assert "mpox web hash-password" in seen["staff"]  # no password set: the page says how, there is no default
    assert "mpox_screenings_total" in seen["metrics"] and "mpox_frames_total" in seen["metrics"]
    try:
        httpx.get(web.url + "/healthz", timeout=2)
        raise AssertionError("the pages outlived the kiosk")
    except httpx.TransportError:
        pass


def test_an_open_event_stream_ends_when_the_kiosk_stops(tmp_path):
    import threading

    cfg = load_config(config(tmp_path, "web:\n  port: 0\n  consent: false\n"))
    kiosk = Kiosk(cfg)
    outputs = open_outputs(cfg, kiosk)
    received: list[str] = []
    connected = threading.Event()

    def listen() -> None:
        with httpx.stream("GET", outputs[-1].url + "/api/events", timeout=30) as stream:
            for line in stream.iter_lines():
                received.append(line)
                connected.set()

    listener = threading.Thread(target=listen)
    listener.start()
    assert connected.wait(30)  # the page is listening before the kiosk starts screening
    kiosk.run(max_screenings=1)
    listener.join(30)
    assert not listener.is_alive()  # the stream ended with the kiosk, not by a timeout
    assert "event: status" in received and any(line.startswith("data: {") for line in received)


def test_i_agree_on_the_kiosk_screen_lets_one_screening_start(tmp_path):
    """web.consent (the default): the kiosk waits; the page's consent POST (with its CSRF token)
    hands "I agree" to the loop, which screens once and waits again."""
    import threading

    from edge.decision import State
    from edge.web.auth import CSRF_COOKIE

    cfg = load_config(config(tmp_path, "web:\n  port: 0\n"))
    kiosk = Kiosk(cfg)
    outputs = open_outputs(cfg, kiosk)
    url = outputs[-1].url
    answers: dict = {}

    def tap() -> None:  # the page, on its own thread: the POST waits for the loop to take the consent
        with httpx.Client(base_url=url, timeout=30) as page:
            page.get("/")  # the kiosk page sets its CSRF cookie; its token is in the page
            answers["no_token"] = page.post("/api/consent").status_code
            token = page.cookies[CSRF_COOKIE]
            answers["waiting"] = page.get("/api/status").json()["state"]
            answers["agreed"] = page.post("/api/consent", headers={"x-csrf-token": token})

    def look(status) -> None:  # the loop's thread
        if status.frames >= 60 and "tapping" not in answers:  # once: a status repeats its frame count when no frame came
            answers["tapping"] = True
            threading.Thread(target=tap).start()
        if status.screenings == 1 and status.state == State.AWAITING_CONSENT:
            kiosk.stop()

    kiosk.outputs.subscribe(type("Look", (), {"on_event": lambda self, e: None, "on_status": lambda self, s: look(s)})())
    status = run_guarded(kiosk, 120)
    assert answers["no_token"] == 403 and answers["waiting"] == "awaiting_consent"
    assert answers["agreed"].status_code == 200 and answers["agreed"].json()["state"] != "awaiting_consent"
    assert status.screenings == 1


def login_form(url: str) -> tuple[dict, dict]:
    """The login page's cookies and form fields, as a browser would send them back."""
    page = httpx.get(url + "/staff/login", timeout=30)
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    return dict(page.cookies), {"csrf": token, "password": "not the password"}


def concurrently(n: int, call) -> list:
    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(lambda _: call(), range(n)))


def test_40_concurrent_wrong_logins_from_one_address_are_mostly_refused_with_429(tmp_path):
    """The attempt counts before its password is checked: with login_attempts 3, at most 3
    of 40 simultaneous wrong logins from one address reach argon2 (a real one, on a real server)."""
    cfg = load_config(config(tmp_path, f"web:\n  port: 0\n  login_attempts: 3\n  staff_password_hash: '{hash_password('right one')}'\n"))
    web = WebOutput(Kiosk(cfg))
    try:
        cookies, form = login_form(web.url)
        codes = concurrently(40, lambda: httpx.post(web.url + "/staff/login", data=form, cookies=cookies, timeout=60).status_code)
    finally:
        web.close()
    assert set(codes) <= {401, 429}
    assert codes.count(401) <= 3 and codes.count(429) >= 37


class GatedHasher(PasswordHasher):
    """A real argon2 check that waits at a gate: how many run at once can be seen without a clock."""

    def __init__(self) -> None:
        super().__init__()
        self.gate, self.running, self.most = threading.Event(), 0, 0
        self.lock = threading.Lock()

    def verify(self, hash, password):
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            self.gate.wait(60)
            return super().verify(hash, password)
        finally:
            with self.lock:
                self.running -= 1


def test_argon2_checks_are_bounded_and_the_excess_is_answered_429_at_once(tmp_path):
    """Many clients at once (the limit per address does not help): at most MAX_CHECKS argon2
    checks run; every other login is answered 429 while those are still running, not queued."""
    cfg = load_config(config(tmp_path, f"web:\n  port: 0\n  login_attempts: 100\n  staff_password_hash: '{hash_password('right one')}'\n"))
    web = WebOutput(Kiosk(cfg))
    hasher = web.ctx.staff._hasher = GatedHasher()
    try:
        cookies, form = login_form(web.url)
        post = lambda: httpx.post(web.url + "/staff/login", data=form, cookies=cookies, timeout=60).status_code  # noqa: E731
        with ThreadPoolExecutor(20) as pool:
            pending = [pool.submit(post) for _ in range(20)]
            # The checks wait at the gate, so whatever is answered before it opens was refused at once.
            early = [f.result() for _, f in zip(range(20 - MAX_CHECKS), as_completed(pending, timeout=120))]
            hasher.gate.set()
            codes = [f.result() for f in pending]
    finally:
        hasher.gate.set()
        web.close()
    assert hasher.most == MAX_CHECKS
    assert sorted(codes) == [401] * MAX_CHECKS + [429] * (20 - MAX_CHECKS)
    assert early == [429] * (20 - MAX_CHECKS)


def self_signed(folder) -> tuple:
    """A certificate for 127.0.0.1 and its key, as PEM files."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kiosk")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_the_network_is_served_over_https_with_the_configured_certificate_and_a_warning(tmp_path, caplog):
    cert, key = self_signed(tmp_path)
    cfg = load_config(config(tmp_path, f"web:\n  host: 0.0.0.0\n  port: 0\n  tls_cert: {cert}\n  tls_key: {key}\n"))
    with caplog.at_level(logging.WARNING):
        web = WebOutput(Kiosk(cfg))
    try:
        assert web.url.startswith("https://0.0.0.0:")
        here = web.url.replace("0.0.0.0", "127.0.0.1")
        page = httpx.get(here + "/staff/login", verify=ssl.create_default_context(cafile=str(cert)), timeout=30)
        assert page.status_code == 200 and "secure" in page.headers["set-cookie"].lower()
        try:
            httpx.get(here.replace("https://", "http://") + "/staff/login", timeout=10)
            raise AssertionError("the pages answered in clear")
        except httpx.TransportError:
            pass
    finally:
        web.close()
    lines = [r.getMessage() for r in caplog.records if "serve the network" in r.getMessage()]
    assert len(lines) == 1 and "HTTPS" in lines[0]


def test_plain_http_on_the_network_is_served_only_when_acknowledged_and_says_so(tmp_path, caplog):
    cfg = load_config(config(tmp_path, "web:\n  host: 0.0.0.0\n  port: 0\n  plain_http_on_network: true\n"))
    with caplog.at_level(logging.WARNING):
        web = WebOutput(Kiosk(cfg))
    web.close()
    lines = [r.getMessage() for r in caplog.records if "serve the network" in r.getMessage()]
    assert len(lines) == 1 and "WITHOUT TLS" in lines[0] and "in clear" in lines[0]


def test_a_key_the_server_cannot_use_is_one_line_and_no_pages(tmp_path, caplog):
    cert, key = self_signed(tmp_path)
    key.write_text("not a key\n")
    cfg = load_config(config(tmp_path, f"web:\n  port: 0\n  tls_cert: {cert}\n  tls_key: {key}\n"))
    with caplog.at_level(logging.ERROR):
        web = WebOutput(Kiosk(cfg))
    web.close()
    assert web.url is None
    lines = [r for r in caplog.records if "web pages NOT served" in r.getMessage()]
    assert len(lines) == 1 and "web.tls_key" in lines[0].getMessage() and lines[0].exc_info is None
