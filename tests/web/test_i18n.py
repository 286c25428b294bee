"""The pages' texts: every key in every language, placeholders kept, a site's overrides."""

import json
import logging
import re

import pytest

from edge.config import LANGUAGES
from edge.web.i18n import SHIPPED, load_texts, shipped

REFERENCE = shipped("en")


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_language_has_every_key_and_no_other(lang):
    texts = shipped(lang)
    assert set(texts) == set(REFERENCE), f"{lang}: missing {set(REFERENCE) - set(texts)}, unknown {set(texts) - set(REFERENCE)}"
    assert all(isinstance(v, str) and v.strip() for v in texts.values())


@pytest.mark.parametrize("lang", LANGUAGES)
def test_placeholders_survive_translation(lang):
    texts = shipped(lang)
    for key, text in REFERENCE.items():
        assert set(re.findall(r"\{\w+\}", texts[key])) == set(re.findall(r"\{\w+\}", text)), f"{lang}: {key}"


def test_the_pages_use_only_keys_that_exist():
    web = SHIPPED.parent
    used = set()
    for f in [*web.glob("templates/*.html"), *web.glob("static/*.js")]:
        code = "\n".join(line for line in f.read_text().splitlines() if not line.lstrip().startswith("//"))
        used |= set(re.findall(r'data-i18n="([\w.]+)"', code)) | set(re.findall(r'I18N\.t\("([\w.]+)"', code))
    assert used and used <= set(REFERENCE), used - set(REFERENCE)


def test_a_site_folder_overrides_texts_and_unknown_keys_are_named(tmp_path, caplog):
    (tmp_path / "en.json").write_text(json.dumps({"next_steps": "Call 0800 123 456.", "nxt_steps": "typo"}))
    (tmp_path / "fr.json").write_text("{not json")
    with caplog.at_level(logging.ERROR):
        texts = load_texts(("en", "fr"), tmp_path)
    assert texts["en"]["next_steps"] == "Call 0800 123 456."
    assert texts["fr"]["next_steps"] == shipped("fr")["next_steps"]  # a broken file changes nothing
    assert "nxt_steps" in caplog.text and "fr.json ignored" in caplog.text
