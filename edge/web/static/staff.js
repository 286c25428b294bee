// The staff dashboard: recent screenings with filters, counts per day, CSV link, device
// health (refreshed), and a kept picture with its heatmap.
"use strict";
const $ = (id) => document.getElementById(id);
const OUTCOMES = ["mpox_suspected", "other_rash_suspected", "other_condition_suspected", "no_rash_detected", "uncertain"];

function query() {
  const p = new URLSearchParams();
  for (const [k, v] of new FormData($("filters"))) if (v) p.set(k, v);
  return p;
}

async function getJson(url) {
  let r;
  try { r = await fetch(url); } catch (e) { $("connection").hidden = false; throw e; }  // the kiosk is not answering
  $("connection").hidden = true;
  if (r.status === 401) { location.href = "/staff/login"; throw new Error("signed out"); }
  return r.json();
}

function cell(row, text, key) {
  const td = row.insertCell();
  if (key) td.dataset.i18n = key;
  td.textContent = key ? I18N.t(key) : text;
  return td;
}

async function loadScreenings() {
  const q = query();
  $("csv").href = `/staff/audit.csv?${q}`;
  const rows = await getJson(`/api/staff/screenings?${q}`);
  const tbody = $("screenings").tBodies[0];
  tbody.replaceChildren();
  for (const s of rows) {
    const tr = tbody.insertRow();
    tr.dataset.id = s.id;
    tr.className = s.outcome;
    cell(tr, new Date(s.finished_utc).toLocaleString());
    cell(tr, `${s.code.slice(0, 3)} ${s.code.slice(3)}`).className = "code-cell";
    cell(tr, "", `outcome.${s.outcome}`);
    cell(tr, `${(s.confidence * 100).toFixed(0)} %`);
    cell(tr, s.model);
    cell(tr, "", `staff.origin.${s.origin}`);
    const td = tr.insertCell();
    if (s.has_frame) {
      const b = document.createElement("button");
      b.type = "button"; b.dataset.i18n = "staff.frame"; b.textContent = I18N.t("staff.frame");
      b.addEventListener("click", () => showFrame(s.id));
      td.appendChild(b);
    }
  }
  $("none").hidden = rows.length > 0;
  const q2 = new URLSearchParams(q); q2.delete("outcome"); q2.delete("code");
  drawChart(await getJson(`/api/staff/daily?${q2}`));
}

function drawChart(days) {  // stacked bars with each day's total above (drawn), and the counts as a table (read out)
  const svg = $("chart"), ns = "http://www.w3.org/2000/svg";
  svg.replaceChildren();
  const total = (d) => OUTCOMES.reduce((a, o) => a + (d.counts[o] || 0), 0);
  const max = Math.max(1, ...days.map(total));
  const w = 600 / Math.max(days.length, 7);
  const text = (x, y, s, cls) => {
    const t = document.createElementNS(ns, "text");
    t.setAttribute("x", x); t.setAttribute("y", y); t.setAttribute("text-anchor", "middle");
    if (cls) t.setAttribute("class", cls);
    t.textContent = s;
    svg.appendChild(t);
  };
  days.forEach((d, i) => {
    let y = 210;
    for (const o of OUTCOMES) {
      const h = ((d.counts[o] || 0) / max) * 180;
      if (h > 0) {
        const r = document.createElementNS(ns, "rect");
        r.setAttribute("x", i * w + 4); r.setAttribute("y", y - h); r.setAttribute("width", w - 8); r.setAttribute("height", h);
        r.setAttribute("class", o);
        svg.appendChild(r);
        if (h >= 18) text(i * w + w / 2, y - h / 2 + 5, d.counts[o], "count");
        y -= h;
      }
    }
    text(i * w + w / 2, y - 5, total(d), "total");
    text(i * w + w / 2, 228, d.day.slice(5));
  });
  $("legend").replaceChildren(...OUTCOMES.map((o) => {
    const li = document.createElement("li"); li.className = o; li.dataset.i18n = `outcome.${o}`; li.textContent = I18N.t(`outcome.${o}`);
    return li;
  }));
  const table = $("per-day");
  const head = document.createElement("tr");
  for (const key of ["staff.day", ...OUTCOMES.map((o) => `outcome.${o}`), "staff.total"]) {
    const th = document.createElement("th"); th.dataset.i18n = key; th.textContent = I18N.t(key); head.appendChild(th);
  }
  table.tHead.replaceChildren(head);
  table.tBodies[0].replaceChildren(...days.map((d) => {
    const tr = document.createElement("tr");
    tr.dataset.day = d.day;
    for (const v of [d.day, ...OUTCOMES.map((o) => d.counts[o] || 0), total(d)]) { const td = document.createElement("td"); td.textContent = v; tr.appendChild(td); }
    return tr;
  }));
}

function figure(dl, key, value) {
  const dt = document.createElement("dt"); dt.dataset.i18n = key; dt.textContent = I18N.t(key);
  const dd = document.createElement("dd"); dd.textContent = value;
  dl.append(dt, dd);
}

async function loadHealth() {
  const h = await getJson("/api/staff/health");
  const dl = $("health");
  dl.replaceChildren();
  figure(dl, "health.camera", !h.camera_ok ? h.camera_problem : h.stuck ? `${I18N.t("health.stuck")}: ${h.stuck}` : I18N.t("health.camera_ok"));
  if (h.warnings.length) figure(dl, "health.warnings", h.warnings.join("; "));
  figure(dl, "health.fps", h.fps.toFixed(1));
  figure(dl, "health.dropped", h.dropped);
  figure(dl, "health.outages", h.outages);
  figure(dl, "health.inference", h.inference_ms.toFixed(2));
  figure(dl, "health.model", `${h.model.name} ${h.model.version} (${h.model.precision}, ${h.model.device})`);
  figure(dl, "health.uptime", `${Math.floor(h.uptime_s / 3600)} h ${Math.floor((h.uptime_s % 3600) / 60)} min`);
  figure(dl, "health.disk", h.disk_free_mb === null ? "-" : `${(h.disk_free_mb / 1000).toFixed(1)} GB`);
  figure(dl, "health.temperature", h.cpu_temperature_c === null ? "-" : `${h.cpu_temperature_c.toFixed(0)} °C`);
}

function showFrame(id) {
  $("frame-panel").hidden = false;
  $("frame").src = `/api/staff/frames/${encodeURIComponent(id)}`;
  $("frame").dataset.id = id;
  $("why-none").hidden = true;
}

$("why").addEventListener("click", async () => {
  const r = await fetch(`/api/staff/frames/${encodeURIComponent($("frame").dataset.id)}?explain=true`);
  if (!r.ok) { $("why-none").hidden = false; return; }
  $("frame").src = URL.createObjectURL(await r.blob());
});
$("filters").addEventListener("submit", (e) => { e.preventDefault(); loadScreenings(); });
document.addEventListener("language", () => { loadScreenings(); loadHealth(); });
I18N.start(true);
setInterval(loadHealth, 5000);
setInterval(loadScreenings, 15000);
