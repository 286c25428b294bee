"""Every state of the kiosk screen in Debian's Chromium, at every screen size it is sold for
and in every language: the controls a visitor needs (I agree, the result and its code, Done)
are inside the window and nothing covers them; focus and what a screen reader hears; the
banner's wording when the kiosk restarts; the photo check at phone width.

The pages are the real server (edge/web/server.py) over a real kiosk whose loop does not run:
the test publishes the kiosk's status and events to the web output itself, as the loop's
Publisher does, so every outcome and banner can be shown on demand. One browser; one page is
taken through the states and resized through the sizes, since a size changes only the layout.
"""

from __future__ import annotations

import time
import uuid

import pytest
from playwright.sync_api import expect

from edge.config import LANGUAGES, load_config
from edge.decision import Origin, Outcome, Screening, State
from edge.events import KioskStatus, ScreeningDone
from edge.kiosk import Kiosk
from edge.quality import Verdict
from edge.screening_code import ALPHABET, LENGTH, screening_code
from edge.web.i18n import load_texts
from edge.web.server import WebOutput
from tests.edge.test_kiosk import config
from tests.web.conftest import ROOT

SCREENS = [(800, 480), (1024, 600), (1280, 800), (1920, 1080)]  # the Pi touch display to a full-HD monitor
PHONE = {"width": 390, "height": 844}
TEXTS = load_texts()
LONGEST_FIRST = sorted(Outcome, key=lambda o: -len(TEXTS["sw"][f"advice.{o.value}"]))

# Each selector: in the window, shown, and the element itself under points near its corners and at its centre (not
# covered by the banner or anything else; not scrolled away inside its screen).
FITS = """selectors => {
  const out = [];
  if (document.documentElement.scrollWidth > innerWidth) out.push(`the page scrolls sideways (${document.documentElement.scrollWidth} px)`);
  for (const sel of selectors) {
    const el = document.querySelector(sel);
    const r = el && el.getBoundingClientRect();
    if (!r || r.width === 0 || r.height === 0) { out.push(`${sel} is not shown`); continue; }
    if (r.left < 0 || r.top < 0 || r.right > innerWidth + 0.5 || r.bottom > innerHeight + 0.5) {
      out.push(`${sel} is outside the window: ${Math.round(r.left)},${Math.round(r.top)} to ${Math.round(r.right)},${Math.round(r.bottom)}`);
      continue;
    }
    const dx = Math.min(12, r.width / 4), dy = r.height / 4;  // inside rounded corners
    const points = [[r.left + dx, r.top + dy], [r.right - dx, r.top + dy], [r.left + dx, r.bottom - dy], [r.right - dx, r.bottom - dy],
                    [(r.left + r.right) / 2, (r.top + r.bottom) / 2]];
    for (const [x, y] of points) {
      const hit = document.elementFromPoint(x, y);
      if (hit !== el && !el.contains(hit)) { out.push(`${sel} is covered at ${Math.round(x)},${Math.round(y)} by ${hit ? (hit.id || hit.className || hit.tagName) : "nothing"}`); break; }
    }
  }
  for (const box of document.querySelectorAll(".screen:not([hidden]) .text"))
    if (box.scrollHeight > box.clientHeight + 1) out.push(`the screen's text needs scrolling (${box.scrollHeight} px in ${box.clientHeight})`);
  return out;
}"""


class Screens:
    """The kiosk's pages, with the kiosk's voice: what its loop would publish."""

    def __init__(self, web: WebOutput) -> None:
        self.web = web
        self.url = web.url
        self.camera_ok = True
        self.state = State.IDLE
        self.progress = (0, 0)
        self.verdict = Verdict.ABSENT

    def publish(self, **change) -> None:
        for k, v in change.items():
            setattr(self, k, v)
        self.web.on_status(KioskStatus(state=self.state, verdict=self.verdict,
                                       progress=self.progress, camera_ok=self.camera_ok,
                                       camera_problem="" if self.camera_ok else "no frames", consent_lapse_s=600.0))

    def result(self, outcome: Outcome) -> Screening:
        s = Screening(id=str(uuid.uuid4()), started=0.0, finished=1.0, outcome=outcome, label="Monkeypox",
                      probabilities={"Monkeypox": 0.9, "Normal": 0.1}, frames=5, agreement=1.0, quality={}, origin=Origin.CAMERA)
        self.web.on_event(ScreeningDone(time.time(), s))
        return s


@pytest.fixture(scope="module")
def screens(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("screens")
    # Pictures kept: the welcome's longer wording (how long they are kept), the worst case for its fit.
    cfg = load_config(config(tmp, "web:\n  port: 0\n  result_s: 600\n  check_needs_login: false\n"
                                  "decision:\n  consent_lapse_s: 600\nstore:\n  keep_best_frame: true\n"))
    web = WebOutput(Kiosk(cfg))
    s = Screens(web)
    s.publish()  # idle, camera working, consent asked: the welcome screen and its "I agree"
    yield s
    web.close()


def fits(page, where: str, selectors: list[str]) -> list[str]:
    """What does not fit, at every screen size."""
    problems = []
    for w, h in SCREENS:
        page.set_viewport_size({"width": w, "height": h})
        problems += [f"{where} at {w}x{h}: {p}" for p in page.evaluate(FITS, selectors)]
    return problems


def choose(page, lang: str) -> None:
    page.click(f"#langs button[data-lang={lang}]")
    expect(page.locator("html")).to_have_attribute("lang", lang)
    expect(page.locator("#agree")).to_have_text(TEXTS[lang]["welcome.agree"])


def agree(page) -> None:
    page.click("#agree")
    page.wait_for_selector("#live:not([hidden])")


def show_result(screens: Screens, page, lang: str, outcome: Outcome) -> Screening:
    s = screens.result(outcome)
    page.wait_for_selector(f"#result[data-id='{s.id}']:not([hidden])")
    expect(page.locator("#outcome")).to_have_text(TEXTS[lang][f"outcome.{outcome.value}"])
    return s


def test_every_state_fits_every_screen_size_in_every_language(screens, browser):
    page = browser.new_page(viewport=dict(zip(("width", "height"), SCREENS[0])))
    page.goto(screens.url + "/")
    page.wait_for_selector("#welcome:not([hidden])")
    problems: list[str] = []
    for lang in LANGUAGES:
        choose(page, lang)
        expect(page.locator("#consent-text")).to_have_text(TEXTS[lang]["welcome.consent_days"].format(
            agree=TEXTS[lang]["welcome.agree"], days="7"))
        problems += fits(page, f"{lang} welcome", ["#agree", "#welcome h1", "#consent-text"])
        screens.publish(camera_ok=False)
        expect(page.locator("#banner")).to_be_visible()
        expect(page.locator("#banner-text")).to_have_text(TEXTS[lang]["camera.unavailable"])
        problems += fits(page, f"{lang} welcome, camera lost", ["#agree", "#consent-text", "#banner"])
        screens.publish(camera_ok=True)
        expect(page.locator("#banner")).to_be_hidden()
        agree(page)
        problems += fits(page, f"{lang} waiting for the lesion", ["#guide"])
        screens.publish(state=State.GUIDING, verdict=Verdict.TOO_BRIGHT)
        expect(page.locator("#guide")).to_have_text(TEXTS[lang]["guide.too_bright"])
        problems += fits(page, f"{lang} guidance", ["#guide"])
        screens.publish(state=State.ASSESSING, verdict=Verdict.OK, progress=(2, 5))
        expect(page.locator("#progress-text")).to_be_visible()
        problems += fits(page, f"{lang} screening", ["#guide", "#progress-text"])
        screens.publish(state=State.IDLE, verdict=Verdict.ABSENT, progress=(0, 0))
        for i, outcome in enumerate(LONGEST_FIRST):
            if i:
                page.click("#done")
                page.wait_for_selector("#welcome:not([hidden])")
                choose(page, lang)
                agree(page)
            show_result(screens, page, lang, outcome)
            problems += fits(page, f"{lang} {outcome.value}", ["#outcome", "#advice", "#code", "#done"])
            if i == 0:  # the longest card with the camera banner below it
                screens.publish(camera_ok=False)
                expect(page.locator("#banner")).to_be_visible()
                problems += fits(page, f"{lang} {outcome.value}, camera lost", ["#outcome", "#code", "#done", "#banner"])
                screens.publish(camera_ok=True)
                expect(page.locator("#banner")).to_be_hidden()
        page.click("#done")
        page.wait_for_selector("#welcome:not([hidden])")
    page.close()
    assert not problems, "\n".join(problems)


def test_focus_follows_the_visitor_and_the_result_is_read_out(screens, browser):
    page = browser.new_page(viewport={"width": 1024, "height": 600})
    page.goto(screens.url + "/")
    page.wait_for_selector("#welcome:not([hidden])")
    assert page.get_attribute("#agree", "aria-describedby") == "consent-text"  # what "I agree" agrees to, read with it
    agree(page)
    assert page.evaluate("document.activeElement.id") == "guide"  # what to do next
    assert page.get_attribute("#guide", "aria-live") == "polite"
    s = show_result(screens, page, "en", Outcome.MPOX)
    assert page.evaluate("document.activeElement.id") == "done"
    live = page.locator("#announce")
    assert live.get_attribute("aria-live") == "assertive"
    code = screening_code(s.id)
    expect(live).to_contain_text("Possible mpox")
    expect(live).to_contain_text(" ".join(code))  # the code read one character at a time
    assert page.text_content("#code").replace(" ", "") == code
    assert page.locator("#result-icon").evaluate("img => img.complete && img.naturalWidth > 0")  # shown with the card
    page.close()


def test_the_screening_code_is_short_unambiguous_and_the_same_for_the_same_screening():
    ids = [str(uuid.uuid4()) for _ in range(2000)]
    codes = [screening_code(i) for i in ids]
    assert all(len(c) == LENGTH and set(c) <= set(ALPHABET) for c in codes)
    assert not set(ALPHABET) & set("01OQIL")  # nothing read as 0 or 1
    assert all(len(set(pair) & set(ALPHABET)) <= 1 for pair in ("2Z", "5S", "6G", "8B", "UV"))  # one of each look-alike pair
    assert codes == [screening_code(i) for i in ids] and len(set(codes)) >= 1990


def test_the_photo_check_at_phone_width_in_every_language(screens, browser):
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.goto(screens.url + "/check")
    page.wait_for_selector("#photo:enabled", state="attached")
    expect(page.locator("#langs button")).to_have_count(len(LANGUAGES))  # drawn once the texts have loaded
    heights = page.locator("#langs button").evaluate_all("bs => bs.map(b => b.getBoundingClientRect().height)")
    assert len(heights) == len(LANGUAGES) and min(heights) >= 44  # a finger's size
    page.set_input_files("#photo", str(ROOT / "edge" / "demo" / "monkeypox5.png"))
    page.wait_for_selector("#result:not([hidden])")
    outcome = page.get_attribute("#result", "class").split()[-1]
    assert page.text_content("#code").replace(" ", "") == screening_code(page.get_attribute("#result", "data-id"))
    for lang in LANGUAGES:
        page.click(f"#langs button[data-lang={lang}]")
        expect(page.locator("#outcome")).to_have_text(TEXTS[lang][f"outcome.{outcome}"])
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], lang  # no sideways scrolling
    context.close()


def test_a_visitor_sees_that_the_kiosk_restarts_and_the_banner_covers_nothing(screens, browser):
    """The pages' server goes away (the kiosk restarting): in every language, on the welcome and
    on a result card, the visitor reads a plain "please wait", below the controls. Last: it stops the server."""
    pages = []
    for lang in LANGUAGES:
        welcome = browser.new_page(viewport=dict(zip(("width", "height"), SCREENS[0])))
        welcome.goto(screens.url + "/")
        welcome.wait_for_selector("#welcome:not([hidden])")
        choose(welcome, lang)
        card = browser.new_page(viewport=dict(zip(("width", "height"), SCREENS[0])))
        card.goto(screens.url + "/")
        card.wait_for_selector("#welcome:not([hidden])")
        choose(card, lang)
        agree(card)
        show_result(screens, card, lang, Outcome.OTHER_CONDITION)
        pages += [(lang, welcome, ["#agree", "#consent-text", "#banner"]), (lang, card, ["#outcome", "#code", "#done", "#banner"])]
    screens.web.close()
    problems: list[str] = []
    for lang, page, selectors in pages:
        expect(page.locator("#banner-text")).to_have_text(TEXTS[lang]["kiosk.restarting"])
        problems += fits(page, f"{lang} kiosk restarting", selectors)
        page.close()
    assert not problems, "\n".join(problems)
