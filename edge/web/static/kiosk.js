// The kiosk screen: welcome and consent -> live picture and guidance -> result card with a
// countdown -> back to the start. State comes from the kiosk as server-sent events.
"use strict";
const body = document.body;
const consentNeeded = body.dataset.consent === "true";
const resultMs = Number(body.dataset.resultS) * 1000;
const idleResetMs = Number(body.dataset.idleResetS) * 1000;
const $ = (id) => document.getElementById(id);
const GUIDE_ICON = { too_far: "closer", moving: "still", blurred: "still", too_dark: "light", too_bright: "shade" };
const RESULT_ICON = { mpox_suspected: "mpox", other_rash_suspected: "other", other_condition_suspected: "other", no_rash_detected: "clear", uncertain: "uncertain" };
const iconUrl = (name) => `/static/icons/${name}.svg`;
let screen = null;
let consented = !consentNeeded;
let lastActive = Date.now();
let countdown = null;
let lastStatus = null;
let connected = true;  // the event stream is up (else: the kiosk is restarting)

// The result icons, fetched and decoded once: a card never shows before its icon.
const resultIcons = Object.fromEntries([...new Set(Object.values(RESULT_ICON))].map((name) => {
  const img = new Image();
  img.src = iconUrl(name);
  return [name, img.decode().then(() => img, () => null)];
}));

function show(name) {
  screen = name;
  for (const s of document.querySelectorAll(".screen")) s.hidden = s.id !== name;
  body.dataset.screen = name;
  const img = $("preview");
  if (name === "live") { if (!img.src) img.src = "/preview.mjpg"; } else img.removeAttribute("src");  // stream only when shown
  if (name !== "result") $("announce").textContent = "";
}

function startOver() {
  clearInterval(countdown);
  consented = !consentNeeded;
  if (I18N.lang !== I18N.defaultLang) I18N.load(I18N.defaultLang);  // the next person starts in the default language
  show(consentNeeded ? "welcome" : "live");
  if (lastStatus) renderStatus(lastStatus);
}

function renderBanner() {  // in the page's flow, never over a control; the visitor's wording, not the staff's
  const cameraDown = lastStatus && !lastStatus.camera_ok;
  $("banner").hidden = connected && !cameraDown;
  $("banner").classList.toggle("waiting", !connected);
  $("banner-text").textContent = I18N.t(connected ? "camera.unavailable" : "kiosk.restarting");
}

function renderStatus(st) {
  lastStatus = st;
  renderBanner();
  if (consentNeeded && screen === "live" && st.state === "awaiting_consent") { startOver(); return; }  // the kiosk's consent lapsed
  if (st.state !== "idle" && st.state !== "awaiting_consent") lastActive = Date.now();
  if (screen !== "live") return;
  let key = "state.idle", icon = "lesion";
  if (st.state === "assessing") { key = "state.assessing"; icon = "still"; }
  else if (st.state === "guiding" && GUIDE_ICON[st.verdict]) { key = `guide.${st.verdict}`; icon = GUIDE_ICON[st.verdict]; }
  if ($("guide").dataset.i18n !== key || $("guide").textContent !== I18N.t(key)) {  // the live region speaks on changes only
    $("guide").dataset.i18n = key;
    $("guide").textContent = I18N.t(key);
  }
  $("guide-icon").src = iconUrl(icon);
  const [n, total] = st.progress;
  const assessing = st.state === "assessing";
  $("progress").hidden = $("progress-text").hidden = !assessing;
  $("progress").max = total || 1;
  $("progress").value = n;
  $("progress-text").textContent = I18N.t("progress", { n, total });
}

function spelled(code) {  // read out one character at a time
  return code.split("").join(" ");
}

async function showResult(r) {
  if (!consented || screen !== "live") return;  // only the person who agreed sees a result, and only their own
  const icon = await resultIcons[RESULT_ICON[r.outcome]];
  if (screen !== "live") return;  // the page started over meanwhile
  $("outcome").dataset.i18n = `outcome.${r.outcome}`;
  $("advice").dataset.i18n = `advice.${r.outcome}`;
  $("result-icon").src = icon ? icon.src : "";
  $("result-card").className = `card ${r.outcome}`;
  $("result").dataset.id = r.id;
  $("code").textContent = `${r.code.slice(0, 3)} ${r.code.slice(3)}`;
  $("code").setAttribute("aria-label", spelled(r.code));
  I18N.apply($("result"));
  show("result");
  $("done").focus();
  announce();
  const end = Date.now() + resultMs;
  const tick = () => {
    const s = Math.max(0, Math.ceil((end - Date.now()) / 1000));
    $("countdown").textContent = I18N.t("countdown", { s });
    if (s <= 0) startOver();
  };
  clearInterval(countdown);
  countdown = setInterval(tick, 250);
  tick();
}

function announce() {  // the result as a screen reader says it (the live region is outside the card)
  const code = $("code").getAttribute("aria-label");
  $("announce").textContent = [$("outcome").textContent, $("advice").textContent,
    `${I18N.t("next_steps")} ${code}.`, I18N.t("disclaimer")].join(" ");
}

async function agree() {  // the kiosk screens nobody until it has taken this
  $("agree").disabled = true;
  try {
    const r = await fetch("/api/consent", { method: "POST", headers: { "X-CSRF-Token": document.querySelector("meta[name=csrf]").content } });
    if (!r.ok) return;
    const st = await r.json();
    consented = true; lastActive = Date.now(); show("live"); renderStatus(st);
    $("guide").focus();  // what to do next, read out
  } catch (e) { /* the kiosk is not answering: the banner says so */ } finally { $("agree").disabled = false; }
}

$("agree").addEventListener("click", agree);
$("done").addEventListener("click", startOver);
$("preview").addEventListener("error", () => $("preview").classList.add("off"));
document.addEventListener("language", () => {
  const p = $("consent-text");
  p.dataset.i18n = body.dataset.keepDays ? "welcome.consent_days" : "welcome.consent_none";
  p.dataset.agree = I18N.t("welcome.agree");  // the sentence names the button as this language labels it
  I18N.apply(p.parentElement);
  renderBanner();
  if (lastStatus) renderStatus(lastStatus);
  if (screen === "result") announce();
});
setInterval(() => {  // someone agreed and walked away: the next person starts at the welcome
  if (consentNeeded && screen === "live" && Date.now() - lastActive > idleResetMs) startOver();
}, 1000);

function connect() {
  const events = new EventSource("/api/events");
  events.addEventListener("open", () => { connected = true; renderBanner(); });
  events.addEventListener("status", (e) => { connected = true; renderStatus(JSON.parse(e.data)); });
  events.addEventListener("result", (e) => showResult(JSON.parse(e.data)));
  events.addEventListener("error", () => { connected = false; renderBanner(); });
}

I18N.start(false).then(() => { startOver(); connect(); });
