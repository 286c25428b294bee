"""Security defaults of every response and page, in-process (starlette's test client, whose
client address is not this machine's loopback)."""

import re

import pytest
from fastapi.testclient import TestClient

from edge.config import load_config
from edge.kiosk import Kiosk
from edge.web.app import create_app
from edge.web.auth import hash_password
from edge.web.server import web_context
from tests.edge.test_kiosk import config

PASSWORD = "app test password"


@pytest.fixture(scope="module")
def kiosk(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("app")
    return Kiosk(load_config(config(tmp, f"web:\n  port: 0\n  staff_password_hash: '{hash_password(PASSWORD)}'\n")))


def client(kiosk) -> TestClient:
    return TestClient(create_app(web_context(kiosk)))


@pytest.mark.parametrize("path", ["/", "/staff", "/staff/login", "/check", "/api/status", "/static/kiosk.js", "/nowhere",
                                  "/api/staff/screenings"])
def test_every_response_carries_the_security_headers(kiosk, path):
    r = client(kiosk).get(path, follow_redirects=False)
    csp = r.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert r.headers["referrer-policy"] == "no-referrer" and r.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("path", ["/", "/staff/login"])
def test_pages_have_no_inline_script_or_style(kiosk, path):
    html = client(kiosk).get(path).text
    assert re.findall(r"<script(?![^>]*\bsrc=)", html) == [] and " style=" not in html and " on" + "click=" not in html


def test_the_live_picture_is_for_this_machine_only_unless_configured(kiosk):
    assert client(kiosk).get("/preview.mjpg").status_code == 403


def test_login_needs_the_pages_csrf_token_and_sets_a_strict_httponly_cookie(kiosk):
    c = client(kiosk)
    assert c.post("/staff/login", data={"password": PASSWORD, "csrf": "made up"}, follow_redirects=False).status_code == 403
    page = c.get("/staff/login").text
    token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    r = c.post("/staff/login", data={"password": PASSWORD, "csrf": token}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/staff"
    cookie = r.headers["set-cookie"]
    assert "mpox_session=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert c.get("/api/staff/health").status_code == 200


def test_the_pages_icon_is_served_where_browsers_look_for_it(kiosk):
    r = client(kiosk).get("/favicon.ico")
    assert r.status_code == 200 and r.headers["content-type"] == "image/x-icon" and r.content[:4] == b"\x00\x00\x01\x00"


def test_healthz_says_why_when_the_loop_is_silent(kiosk):
    r = client(kiosk).get("/healthz")  # this kiosk was never run: its camera was never opened
    assert r.status_code == 503 and r.json()["ok"] is False and r.json()["reason"]
