"""The pages in Debian's Chromium against a running demo kiosk: the kiosk screen from consent
to result card, the language switch, the staff login and dashboard, the CSV against the
database, the photo check at phone width with /metrics counting it, refused uploads, and
failed logins limited. (The rate-limit test is last: it locks this client out.)

With MPOX_SCREENSHOTS=docs/screens the screenshots are also written there for the README."""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import sqlite3
import time
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
from playwright.sync_api import expect

from edge.screening_code import screening_code
from edge.web.preview import MAX_WIDTH
from tests.web.conftest import PASSWORD, ROOT

KIOSK_SCREEN = {"width": 800, "height": 480}  # the Raspberry Pi touch display
PHONE = {"width": 390, "height": 844}
OUTCOME_TEXTS = {"Possible mpox", "Possible chickenpox or measles", "Another skin condition", "No rash detected",
                 "Uncertain: please see the staff"}
AN_OUTCOME = re.compile("^(" + "|".join(map(re.escape, OUTCOME_TEXTS)) + ")$")  # translated: never a raw key
seen: dict[str, str] = {}  # what one test saw and a later one checks


def model_explains() -> bool:
    """Whether this checkout gives heatmaps: edge/heatmap.py and a shipped model with a "cam" output."""
    import importlib.util

    import openvino as ov

    from edge.config import ModelConfig

    if importlib.util.find_spec("edge.heatmap") is None:
        return False
    return any("cam" in o.get_names() for o in ov.Core().read_model(ModelConfig().path).outputs)


def shot(page, tmp_path: Path, name: str, full_page: bool = False) -> None:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    assert path.stat().st_size > 5000  # a picture, not an empty page
    if os.environ.get("MPOX_SCREENSHOTS"):
        target = ROOT / os.environ["MPOX_SCREENSHOTS"]
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target / path.name)


def db_rows(state: Path, where: str = "", args: tuple = ()) -> list[tuple]:
    db = sqlite3.connect(f"file:{state / 'audit.sqlite'}?mode=ro", uri=True)
    try:
        return db.execute(f"SELECT * FROM screenings {where} ORDER BY finished_utc", args).fetchall()
    finally:
        db.close()


def wait_for_row(state: Path, screening_id: str, timeout: float = 30) -> tuple:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = db_rows(state, "WHERE id = ?", (screening_id,))
        if found:
            return found[0]
        time.sleep(0.1)
    pytest.fail(f"screening {screening_id} never reached the audit log")


def loaded(page, selector: str, timeout: float = 20, why=lambda: "") -> None:
    """Wait until an <img> shows a picture (polled from here: the pages' CSP forbids eval)."""
    deadline = time.monotonic() + timeout
    while page.locator(selector).evaluate("img => img.naturalWidth") == 0:
        assert time.monotonic() < deadline, f"{selector} shows no picture (src {page.get_attribute(selector, 'src')}): {why()}"
        time.sleep(0.1)


def live_picture_before_result(page, timeout: float = 60) -> bool:
    """Whether the kiosk screen's live picture showed before the result card replaced it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if page.locator("#preview").evaluate("img => img.naturalWidth") > 0:
            return True
        if page.is_visible("#result"):
            return False
        time.sleep(0.05)
    pytest.fail("neither the live picture nor a result within a minute")


def login(page, url: str, password: str = PASSWORD, next_page: str = "/staff"):
    page.goto(f"{url}/staff/login?next={next_page}")
    page.fill("#password", password)
    with page.expect_response(lambda r: r.url.endswith("/staff/login") and r.request.method == "POST") as response:
        page.click("#sign-in")
    return response.value


def test_kiosk_screen_consent_then_demo_screening_then_result_card(kiosk, browser, tmp_path):
    page = browser.new_page(viewport=KIOSK_SCREEN)
    page.goto(kiosk.url + "/")
    page.wait_for_selector("#welcome:not([hidden])")
    assert page.text_content("#welcome h1") == "Welcome"
    assert page.is_hidden("#live") and page.is_hidden("#result")  # nothing shown before "I agree"
    shot(page, tmp_path, "kiosk-welcome")
    with page.expect_request(lambda r: r.url.endswith("/preview.mjpg")):  # the live picture, asked for once live shows
        page.click("#agree")
    expect(page.locator("#guide")).not_to_be_empty()
    if live_picture_before_result(page):  # the demo's visit may end before its first picture arrives
        shot(page, tmp_path, "kiosk-live")
    page.wait_for_selector("#result:not([hidden])", timeout=60_000)
    expect(page.locator("#outcome")).to_have_text(AN_OUTCOME)
    assert "not a diagnosis" in page.text_content("#result .disclaimer")
    assert "Back to the start in" in page.text_content("#countdown")
    shot(page, tmp_path, "kiosk-result")
    screening_id = page.get_attribute("#result", "data-id")
    row = wait_for_row(kiosk.state, screening_id)
    outcome_text = {"mpox_suspected": "Possible mpox", "other_rash_suspected": "Possible chickenpox or measles",
                    "no_rash_detected": "No rash detected", "uncertain": "Uncertain: please see the staff"}
    assert page.text_content("#outcome") == outcome_text[row[7]] and row[14] == "camera"
    assert page.text_content("#code").replace(" ", "") == screening_code(screening_id)  # what the visitor reads out at the desk
    seen["screening"] = screening_id
    page.click("#done")
    page.wait_for_selector("#welcome:not([hidden])")  # the next person starts at the welcome
    page.close()


def test_the_live_picture_streams_to_this_machine(kiosk, browser):
    page = browser.new_page()
    page.set_content(f'<img id="live" src="{kiosk.url}/preview.mjpg">')
    loaded(page, "#live", why=lambda: "".join(kiosk.log[-15:]))
    assert 0 < page.locator("#live").evaluate("img => img.naturalWidth") <= MAX_WIDTH  # scaled down for the screen
    page.close()


def test_a_language_button_changes_the_texts(kiosk, browser):
    page = browser.new_page(viewport=KIOSK_SCREEN)
    page.goto(kiosk.url + "/")
    page.wait_for_selector("#langs button[data-lang=fr]")
    page.click("#langs button[data-lang=fr]")
    expect(page.locator("#welcome h1")).to_have_text("Bienvenue")
    assert page.text_content("#agree") == "J'accepte" and page.get_attribute("html", "lang") == "fr"
    page.click("#langs button[data-lang=sw]")
    expect(page.locator("#welcome h1")).to_have_text("Karibu")
    assert page.text_content("#agree") == "Nakubali"
    page.close()


def test_the_right_password_shows_the_screening_that_just_happened(kiosk, browser, tmp_path):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(kiosk.url + "/staff")
    assert page.url.endswith("/staff/login")  # not signed in: the login page
    assert login(page, kiosk.url).status == 303
    page.wait_for_selector(f"#screenings tr[data-id='{seen['screening']}']", timeout=20_000)
    page.wait_for_selector("#health dd")
    assert "fast-mpoxnet" in page.text_content("#health")
    cookie = next(c for c in context.cookies() if c["name"] == "mpox_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    # the kept frame (keep_best_frame is on in this kiosk) opens from its row
    page.click(f"#screenings tr[data-id='{seen['screening']}'] button")
    loaded(page, "#frame")
    if model_explains():  # "why the model said so": the heatmap over the kept frame
        page.click("#why")
        deadline = time.monotonic() + 10
        while not page.locator("#frame").get_attribute("src").startswith("blob:"):
            assert time.monotonic() < deadline, "no heatmap over the kept frame"
            time.sleep(0.1)
        loaded(page, "#frame")
    shot(page, tmp_path, "staff-dashboard")
    # the code a visitor reads out finds their screening, typed as staff may type it
    code = screening_code(seen["screening"])
    row = page.locator(f"#screenings tr[data-id='{seen['screening']}']")
    assert row.locator("td").nth(1).text_content().replace(" ", "") == code
    page.fill("input[name=code]", f" {code[:3].lower()}-{code[3:]} ")
    page.click("#filters button[type=submit]")
    expect(page.locator("#screenings tbody tr")).to_have_count(1)
    assert page.get_attribute("#screenings tbody tr", "data-id") == seen["screening"]
    # the per-day chart's counts: each day's total drawn above its bar, and every count in a table read out
    finished = wait_for_row(kiosk.state, seen["screening"])[2]
    day = finished[:10]
    at_least = len(db_rows(kiosk.state, "WHERE finished_utc >= ? AND finished_utc <= ?", (day, finished)))
    page.wait_for_selector(f"#per-day tr[data-day='{day}']", state="attached")
    cells = page.locator(f"#per-day tr[data-day='{day}'] td").all_text_contents()
    counts, total = [int(c) for c in cells[1:-1]], int(cells[-1])
    at_most = len(db_rows(kiosk.state, "WHERE finished_utc >= ?", (day,)))  # the demo kiosk screens on meanwhile
    assert sum(counts) == total and at_least <= total <= at_most
    assert str(total) in page.locator("#chart text.total").all_text_contents()
    assert page.locator("#per-day th").first.text_content() == "Day"
    # the CSV, as this signed-in browser downloads it, is the audit log with each screening's code
    response = context.request.get(kiosk.url + "/staff/audit.csv")
    assert response.status == 200 and response.headers["content-type"].startswith("text/csv")
    table = list(csv.reader(io.StringIO(response.text())))
    header, rows = table[0], table[1:]
    assert header[:2] == ["id", "code"] and "origin" in header
    newest = rows[-1][header.index("finished_utc")]
    in_db = db_rows(kiosk.state, "WHERE finished_utc <= ?", (newest,))
    as_text = [[r[0], screening_code(r[0]), *("" if v is None else str(v) for v in r[1:])] for r in in_db]
    assert rows == as_text and any(r[0] == seen["screening"] for r in rows)
    by_code = context.request.get(kiosk.url + f"/staff/audit.csv?code={code}").text()
    assert [r[0] for r in csv.reader(io.StringIO(by_code))][1:] == [seen["screening"]]
    context.close()


def test_camera_unavailable_is_shown_and_healthz_says_why(browser, tmp_path):
    """A kiosk whose camera cannot be opened: the screen says so in large type and /healthz is 503."""
    import threading

    import httpx

    from edge.config import load_config
    from edge.kiosk import Kiosk
    from edge.outputs import open_outputs
    from tests.edge.test_kiosk import config

    cfg = load_config(config(tmp_path, "web:\n  port: 0\nsource:\n  kind: device\n  target: /dev/video-none\n"))
    made: dict = {}
    ready = threading.Event()

    def run() -> None:  # the kiosk lives on its own thread (its audit log belongs to it), as under `mpox kiosk run`
        kiosk = made["kiosk"] = Kiosk(cfg)
        outputs = open_outputs(cfg, kiosk)
        made["url"] = outputs[-1].url
        ready.set()
        kiosk.run()

    runner = threading.Thread(target=run)
    runner.start()
    assert ready.wait(60)
    kiosk, url = made["kiosk"], made["url"]
    try:
        page = browser.new_page(viewport=KIOSK_SCREEN)
        page.goto(url + "/")
        expect(page.locator("#banner-text")).to_have_text("Camera unavailable: please tell the staff", timeout=20_000)
        shot(page, tmp_path, "kiosk-camera-unavailable")
        health = httpx.get(url + "/healthz", timeout=10)
        assert health.status_code == 503 and health.json()["reason"].startswith("camera unavailable")
        page.close()
    finally:
        kiosk.stop()
        runner.join(30)


@pytest.fixture(scope="module")
def phone(kiosk, browser):
    """A phone's browser signed in as staff, on the check page once its script listens."""
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.goto(kiosk.url + "/check")
    assert "/staff/login" in page.url  # behind the staff login by default
    login(page, kiosk.url, next_page="/check")
    page.wait_for_selector("#photo:enabled", state="attached")  # check.js enables the picker once it listens
    yield page
    context.close()


def test_a_photo_on_the_check_page_at_phone_width_gets_a_result_and_is_counted(kiosk, phone, tmp_path):
    page = phone
    assert page.get_attribute("#photo", "capture") == "environment"
    page.set_input_files("#photo", str(ROOT / "edge" / "demo" / "monkeypox5.png"))
    page.wait_for_selector("#result:not([hidden])", timeout=30_000)
    expect(page.locator("#outcome")).to_have_text(AN_OUTCOME)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]  # no sideways scrolling
    if model_explains():
        loaded(page, "#heatmap")
    else:
        assert page.is_visible("#no-heatmap")
    shot(page, tmp_path, "check-phone", full_page=True)
    row = wait_for_row(kiosk.state, page.get_attribute("#result", "data-id"))
    assert row[14] == "upload" and row[10] == 1
    metrics = page.context.request.get(kiosk.url + "/metrics").text()
    uploads = sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                  if line.startswith("mpox_screenings_total{") and 'origin="upload"' in line)
    assert uploads >= 1
    assert 'mpox_inference_seconds_count' in metrics


def test_a_photo_checked_before_the_texts_arrive_is_shown_only_once_translated(kiosk, browser):
    """The race behind a raw "outcome.mpox_suspected" under load: the picker works before the
    page's texts are in. Here the texts are held back until the result has come: the card
    waits for them, then shows translated text."""
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    page = context.new_page()
    login(page, kiosk.url, next_page="/check")
    held = []
    page.route("**/api/texts/**", lambda route: held.append(route))  # answered below, once the result is in
    page.goto(kiosk.url + "/check")
    page.wait_for_selector("#photo:enabled", state="attached")
    with page.expect_response(lambda r: r.url.endswith("/api/check")) as checked:
        page.set_input_files("#photo", str(ROOT / "edge" / "demo" / "monkeypox5.png"))
    assert checked.value.status == 200 and held
    page.wait_for_timeout(500)  # a page that would show the card untranslated has had its chance
    assert page.is_hidden("#result") and "outcome." not in page.inner_text("body")
    for route in held:
        route.continue_()
    page.wait_for_selector("#result:not([hidden])")
    expect(page.locator("#outcome")).to_have_text(AN_OUTCOME)
    context.close()


def bomb_png() -> bytes:
    ok, png = cv2.imencode(".png", np.zeros((8000, 8000, 3), np.uint8))  # 192M pixel values in ~200 KB
    return png.tobytes()


@pytest.mark.parametrize("body,content_type,status,code", [
    (b"\xff\xd8\xff" + bytes(50_000_000), "image/jpeg", 413, "too_big"),  # a 50 MB "photo"
    (b"%PDF-1.7\n" + bytes(2000), "image/jpeg", 415, "not_image"),  # a PDF renamed .jpg
    (None, "image/png", 413, "too_many_pixels"),  # a decompression bomb
    (b"\xff\xd8\xff\xe0" + bytes(100), "image/jpeg", 415, "not_image"),  # a JPEG cut short
    (cv2.imencode(".png", np.zeros((1, 1, 3), np.uint8))[1].tobytes(), "image/png", 422, "too_small"),  # no label for 1 pixel
])
def test_bad_uploads_are_refused_clearly_and_the_server_lives(kiosk, phone, body, content_type, status, code):
    # sent with httpx and the browser's cookies (Playwright's own requests carry big bodies slowly)
    cookies = {c["name"]: c["value"] for c in phone.context.cookies()}
    headers = {"content-type": content_type, "x-csrf-token": phone.get_attribute("meta[name=csrf]", "content")}
    with httpx.Client(base_url=kiosk.url, cookies=cookies, timeout=60) as client:
        response = client.post("/api/check", content=body if body is not None else bomb_png(), headers=headers)
        assert response.status_code == status and response.json()["code"] == code
        assert client.get("/healthz").status_code == 200


def test_an_upload_without_the_pages_csrf_token_is_refused(kiosk, phone):
    good = (ROOT / "edge" / "demo" / "measles33.png").read_bytes()
    response = phone.context.request.post(kiosk.url + "/api/check", data=good, headers={"content-type": "image/png"})
    assert response.status == 403


def test_wrong_password_is_rejected_then_rate_limited(kiosk, browser):
    page = browser.new_page()
    for _ in range(3):  # login_attempts: 3 in this kiosk's config
        response = login(page, kiosk.url, "not the password")
        assert response.status == 401
        expect(page.locator("#error")).to_have_text("Wrong password.")
    response = login(page, kiosk.url, "not the password")
    assert response.status == 429 and int(response.headers["retry-after"]) > 0
    expect(page.locator("#error")).to_contain_text("Too many failed attempts")
    response = login(page, kiosk.url, PASSWORD)  # even the right one must wait now
    assert response.status == 429
    assert not any(c["name"] == "mpox_session" for c in page.context.cookies())
    page.close()
