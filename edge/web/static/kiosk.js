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
let screen = null;
let consented = !consentNeeded;
let lastActive = Date.now();
let countdown = null;
let lastStatus = null;

function show(name) {
  screen = name;
  for (const s of document.querySelectorAll(".screen")) s.hidden = s.id !== name;
  body.dataset.screen = name;
  const img = $("preview");
  if (name === "live") { if (!img.src) img.src = "/preview.mjpg"; } else img.removeAttribute("src");  // stream only when shown
}

function startOver() {
  clearInterval(countdown);
  consented = !consentNeeded;
  if (I18N.lang !== I18N.defaultLang) I18N.load(I18N.defaultLang);  // the next person starts in the default language
  show(consentNeeded ? "welcome" : "live");
  if (lastStatus) renderStatus(lastStatus);
}

function renderStatus(st) {
  lastStatus = st;
  $("banner").hidden = st.camera_ok;
  $("banner-text").textContent = I18N.t("camera.unavailable");
  if (consentNeeded && screen === "live" && st.state === "awaiting_consent") { startOver(); return; }  // the kiosk's consent lapsed
  if (st.state !== "idle" && st.state !== "awaiting_consent") lastActive = Date.now();
  if (screen !== "live") return;
  let key = "state.idle", icon = "lesion";
  if (st.state === "assessing") { key = "state.assessing"; icon = "still"; }
  else if (st.state === "guiding" && GUIDE_ICON[st.verdict]) { key = `guide.${st.verdict}`; icon = GUIDE_ICON[st.verdict]; }
  $("guide").dataset.i18n = key;
  $("guide").textContent = I18N.t(key);
  $("guide-icon").src = `/static/icons/${icon}.svg`;
  const [n, total] = st.progress;
  const assessing = st.state === "assessing";
  $("progress").hidden = $("progress-text").hidden = !assessing;
  $("progress").max = total || 1;
  $("progress").value = n;
  $("progress-text").textContent = I18N.t("progress", { n, total });
}

function showResult(r) {
  if (!consented || screen !== "live") return;  // only the person who agreed sees a result, and only their own
  $("outcome").dataset.i18n = `outcome.${r.outcome}`;
  $("advice").dataset.i18n = `advice.${r.outcome}`;
  $("result-icon").src = `/static/icons/${RESULT_ICON[r.outcome]}.svg`;
  $("result-card").className = `card ${r.outcome}`;
  $("result").dataset.id = r.id;
  I18N.apply($("result"));
  show("result");
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

async function agree() {  // the kiosk screens nobody until it has taken this
  $("agree").disabled = true;
  try {
    const r = await fetch("/api/consent", { method: "POST", headers: { "X-CSRF-Token": document.querySelector("meta[name=csrf]").content } });
    if (!r.ok) return;
    const st = await r.json();
    consented = true; lastActive = Date.now(); show("live"); renderStatus(st);
  } catch (e) { /* the kiosk is not answering: the connection banner says so */ } finally { $("agree").disabled = false; }
}

$("agree").addEventListener("click", agree);
$("done").addEventListener("click", startOver);
$("preview").addEventListener("error", () => $("preview").classList.add("off"));
document.addEventListener("language", () => { if (lastStatus) renderStatus(lastStatus); const p = $("privacy");
  p.dataset.i18n = body.dataset.keepDays ? "welcome.privacy_days" : "welcome.privacy_none"; I18N.apply(p.parentElement); });
setInterval(() => {  // someone agreed and walked away: the next person starts at the welcome
  if (consentNeeded && screen === "live" && Date.now() - lastActive > idleResetMs) startOver();
}, 1000);

function connect() {
  const events = new EventSource("/api/events");
  events.addEventListener("status", (e) => { $("banner").dataset.lost = ""; renderStatus(JSON.parse(e.data)); });
  events.addEventListener("result", (e) => showResult(JSON.parse(e.data)));
  events.addEventListener("error", () => { $("banner").hidden = false; $("banner-text").textContent = I18N.t("connection.lost"); });
}

I18N.start(false).then(() => { startOver(); connect(); });
