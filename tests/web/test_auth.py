"""Staff login parts: the hash's sources, sessions, CSRF tokens, the failed-login limit."""

import logging

from click.testing import CliRunner

from edge.cli import main as mpox
from edge.config import WebConfig
from edge.web.auth import CREDENTIAL, Staff, csrf_ok, hash_password, load_password_hash

HASH = hash_password("a good password")


def test_the_hash_comes_from_the_config_or_the_systemd_credential(tmp_path, monkeypatch, caplog):
    assert load_password_hash(WebConfig(staff_password_hash=HASH)) == HASH
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    with caplog.at_level(logging.WARNING):
        assert load_password_hash(WebConfig()) is None
    assert "mpox web hash-password" in caplog.text  # says how to set one; there is no default password
    (tmp_path / CREDENTIAL).write_text(HASH + "\n")
    assert load_password_hash(WebConfig()) == HASH
    (tmp_path / CREDENTIAL).write_text("plain text\n")  # a password, not its hash: no login rather than a broken one
    assert load_password_hash(WebConfig()) is None
    (tmp_path / CREDENTIAL).write_text("$argon2id$v=19$m=65536,t=3,p=4$cut short\n")
    assert load_password_hash(WebConfig()) is None


def test_sessions_and_the_limit_on_login_attempts():
    staff = Staff(HASH, session_s=3600, attempts=2)
    assert staff.login("10.0.0.1", "wrong").token is None and staff.wait_s("10.0.0.1") == 0
    assert staff.login("10.0.0.1", "wrong again").token is None and staff.wait_s("10.0.0.1") > 200
    refused = staff.login("10.0.0.1", "a good password")  # even the right one, until the wait is over
    assert refused.token is None and refused.wait_s > 200
    assert staff.wait_s("10.0.0.2") == 0  # another client is not held up
    token = staff.login("10.0.0.2", "a good password").token
    assert token and staff.valid(token) and not staff.valid("forged") and not staff.valid(None)
    staff.logout(token)
    assert not staff.valid(token)
    assert Staff(None, 60, 5).login("10.0.0.3", "").token is None


def test_csrf_tokens_must_match():
    assert csrf_ok("abc", "abc") and not csrf_ok("abc", "abd") and not csrf_ok(None, None) and not csrf_ok("", "")


def test_hash_password_cli():
    result = CliRunner().invoke(mpox, ["web", "hash-password"], input="a good password\na good password\n")
    assert result.exit_code == 0 and result.output.strip().splitlines()[-1].startswith("$argon2id$")
    short = CliRunner().invoke(mpox, ["web", "hash-password", "--password", "short"])
    assert short.exit_code == 1 and "at least 8" in short.output
