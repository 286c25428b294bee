"""The pages' texts: one JSON file per language in edge/web/i18n/ (en, fr, pt, es, sw),
each key overridable by a site's own {language}.json in `web.site_dir` (consent wording,
next steps, a phone number). English is the reference: every language has every key."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from edge.config import LANGUAGES

log = logging.getLogger(__name__)
SHIPPED = Path(__file__).resolve().parent / "i18n"


def shipped(language: str) -> dict[str, str]:
    return json.loads((SHIPPED / f"{language}.json").read_text(encoding="utf-8"))


def load_texts(languages: tuple[str, ...] = LANGUAGES, site_dir: Path | None = None) -> dict[str, dict[str, str]]:
    """language -> key -> text. A site file's unknown keys and unreadable files are logged
    (one line each) and skipped: a typo in a site's text never takes the kiosk screen down."""
    reference = shipped("en")
    texts = {}
    for lang in languages:
        t = {**reference, **shipped(lang)}
        site = site_dir / f"{lang}.json" if site_dir else None
        if site is not None and site.is_file():
            try:
                extra = json.loads(site.read_text(encoding="utf-8"))
                if not isinstance(extra, dict):
                    raise ValueError("expected an object of key: text")
            except (OSError, ValueError) as e:
                log.error("site texts %s ignored: %s", site, e)
                extra = {}
            unknown = sorted(k for k in extra if k not in reference)
            if unknown:
                log.error("site texts %s: unknown keys ignored: %s", site, ", ".join(unknown))
            t.update({k: str(v) for k, v in extra.items() if k in reference})
        texts[lang] = t
    return texts
