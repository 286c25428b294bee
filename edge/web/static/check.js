// The photo check: a photo from the phone's camera or files -> /api/check -> the result,
// its advice and the heatmap. The CSRF token comes from the page. The picker is enabled only
// once this script listens: a photo picked on a slow phone before that would be lost unsaid.
"use strict";
const $ = (id) => document.getElementById(id);
const RESULT_ICON = { mpox_suspected: "mpox", other_rash_suspected: "other", other_condition_suspected: "other", no_rash_detected: "clear", uncertain: "uncertain" };
const maxBytes = Number(document.body.dataset.maxMb) * 1e6;

async function fail(key) {
  await I18N.ready;  // a raw key is never shown
  $("error").dataset.i18n = key;
  $("error").textContent = I18N.t(key);
  $("error").hidden = false;
}

$("photo").addEventListener("change", async () => {
  const file = $("photo").files[0];
  if (!file) return;
  $("error").hidden = true;
  $("result").hidden = true;
  if (file.size > maxBytes) { fail("error.too_big"); return; }
  $("working").hidden = false;
  try {
    const r = await fetch("/api/check", {
      method: "POST", body: file,
      headers: { "Content-Type": file.type || "application/octet-stream", "X-CSRF-Token": document.querySelector("meta[name=csrf]").content },
    });
    const data = await r.json().catch(() => ({}));
    if (!r.ok) { await fail(r.status === 401 ? "error.login" : data.code ? `error.${data.code}` : "error.other"); return; }
    $("outcome").dataset.i18n = `outcome.${data.outcome}`;
    $("advice").dataset.i18n = `advice.${data.outcome}`;
    $("result-icon").src = `/static/icons/${RESULT_ICON[data.outcome]}.svg`;
    $("result").className = `card ${data.outcome}`;
    $("result").dataset.id = data.id;
    $("code").textContent = `${data.code.slice(0, 3)} ${data.code.slice(3)}`;
    $("probabilities").replaceChildren(...Object.entries(data.probabilities).map(([k, p]) => {
      const li = document.createElement("li"); li.textContent = `${k}: ${(p * 100).toFixed(1)} %`; return li;
    }));
    $("heatmap").hidden = !data.heatmap;
    $("no-heatmap").hidden = Boolean(data.heatmap);
    if (data.heatmap) $("heatmap").src = data.heatmap;
    await $("result-icon").decode().catch(() => {});  // the icon shows with the card, not after it
    await I18N.ready;  // translated before it is shown: a photo picked while the texts load never shows a raw key
    I18N.apply($("result"));
    $("result").hidden = false;
  } catch (e) {
    await fail("error.other");
  } finally {
    $("working").hidden = true;
    $("photo").value = "";
  }
});
$("photo").disabled = false;
I18N.start(true);
