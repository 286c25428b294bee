"""The web output's life: a port in use is one clear line and the kiosk screens on; the
pages are up while the kiosk runs and gone when it stops."""

import logging
import socket

import httpx

from edge.config import load_config
from edge.kiosk import Kiosk
from edge.outputs import open_outputs
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
    assert seen["healthz"] == {"ok": True, "reason": "ok"}
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
        if status.frames == 60:
            threading.Thread(target=tap).start()
        if status.screenings == 1 and status.state == State.AWAITING_CONSENT:
            kiosk.stop()

    kiosk.outputs.subscribe(type("Look", (), {"on_event": lambda self, e: None, "on_status": lambda self, s: look(s)})())
    status = run_guarded(kiosk, 120)
    assert answers["no_token"] == 403 and answers["waiting"] == "awaiting_consent"
    assert answers["agreed"].status_code == 200 and answers["agreed"].json()["state"] != "awaiting_consent"
    assert status.screenings == 1
