// Texts of every page: /api/texts/{lang}, applied to elements with data-i18n="key";
// "{name}" in a text is filled from the element's data-name attribute.
// A page shows nothing made from texts before `I18N.ready` (the first texts are in): a key is
// never shown raw. start() waits for the kiosk (a page opened while it restarts gets its texts
// when it is back), and of overlapping loads (quick taps on two languages) only the last applies.
"use strict";
const I18N = {
  texts: {},
  lang: null,
  defaultLang: document.body.dataset.lang || "en",
  wanted: 0,  // the number of the latest load asked for
  t(key, vars) {
    let s = this.texts[key] ?? key;
    for (const [k, v] of Object.entries(vars || {})) s = s.replaceAll(`{${k}}`, v);
    return s;
  },
  apply(root) {
    for (const el of (root || document).querySelectorAll("[data-i18n]")) el.textContent = this.t(el.dataset.i18n, el.dataset);
  },
  async load(lang) {  // true once the texts of `lang` are shown
    const n = ++this.wanted;
    let texts;
    try {
      const r = await fetch(`/api/texts/${lang}`);
      if (!r.ok) return false;
      texts = await r.json();
    } catch (e) { return false; }  // the kiosk is not answering
    if (n !== this.wanted) return false;  // a later choice overtook this one
    this.texts = texts;
    this.lang = lang;
    document.documentElement.lang = lang;
    this.apply();
    for (const b of document.querySelectorAll("#langs button")) b.setAttribute("aria-pressed", String(b.dataset.lang === lang));
    this.loaded();
    document.dispatchEvent(new CustomEvent("language", { detail: lang }));
    return true;
  },
  async start(remember) {
    let names = null;
    while (names === null) {
      try { const r = await fetch("/api/languages"); if (r.ok) names = await r.json(); } catch (e) { /* not up yet */ }
      if (names === null) await new Promise((go) => setTimeout(go, 1000));
    }
    const saved = remember ? localStorage.getItem("mpox-lang") : null;
    while (!(await this.load(saved && saved in names ? saved : this.defaultLang))) await new Promise((go) => setTimeout(go, 1000));
    const nav = document.getElementById("langs");  // the buttons come with the texts: no choice can race the first load
    for (const [code, name] of Object.entries(names)) {
      const b = document.createElement("button");
      b.type = "button";
      b.dataset.lang = code;
      b.lang = code;
      b.textContent = name;
      b.setAttribute("aria-pressed", String(code === this.lang));
      b.addEventListener("click", () => { if (remember) localStorage.setItem("mpox-lang", code); this.load(code); });
      nav.appendChild(b);
    }
  },
};
I18N.ready = new Promise((resolve) => { I18N.loaded = resolve; });
