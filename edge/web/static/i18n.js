// Texts of every page: /api/texts/{lang}, applied to elements with data-i18n="key";
// "{name}" in a text is filled from the element's data-name attribute.
"use strict";
const I18N = {
  texts: {},
  lang: null,
  defaultLang: document.body.dataset.lang || "en",
  t(key, vars) {
    let s = this.texts[key] ?? key;
    for (const [k, v] of Object.entries(vars || {})) s = s.replaceAll(`{${k}}`, v);
    return s;
  },
  apply(root) {
    for (const el of (root || document).querySelectorAll("[data-i18n]")) el.textContent = this.t(el.dataset.i18n, el.dataset);
  },
  async load(lang) {
    const r = await fetch(`/api/texts/${lang}`);
    if (!r.ok) return;
    this.texts = await r.json();
    this.lang = lang;
    document.documentElement.lang = lang;
    this.apply();
    for (const b of document.querySelectorAll("#langs button")) b.setAttribute("aria-pressed", String(b.dataset.lang === lang));
    document.dispatchEvent(new CustomEvent("language", { detail: lang }));
  },
  async start(remember) {
    const names = await (await fetch("/api/languages")).json();
    const nav = document.getElementById("langs");
    for (const [code, name] of Object.entries(names)) {
      const b = document.createElement("button");
      b.type = "button";
      b.dataset.lang = code;
      b.textContent = name;
      b.addEventListener("click", () => { if (remember) localStorage.setItem("mpox-lang", code); this.load(code); });
      nav.appendChild(b);
    }
    const saved = remember ? localStorage.getItem("mpox-lang") : null;
    await this.load(saved && saved in names ? saved : this.defaultLang);
  },
};
