"""Staff login: an argon2 password hash from the config or a systemd credential, sessions in
memory (HttpOnly, SameSite=Strict cookies), double-submit CSRF tokens and a per-client limit
on failed logins. There is no default password: without a hash the staff pages say how to
set one."""

from __future__ import annotations

import hmac
import logging
import secrets
import threading
import time
from collections import OrderedDict, deque

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from edge.config import WebConfig, systemd_credential

log = logging.getLogger(__name__)
CREDENTIAL = "staff-password-hash"  # systemd LoadCredential= name, read from $CREDENTIALS_DIRECTORY
SESSION_COOKIE = "mpox_session"
CSRF_COOKIE = "mpox_csrf"
CSRF_HEADER = "x-csrf-token"
LOGIN_WINDOW_S = 300.0
MAX_TRACKED_CLIENTS = 10_000  # failed-login memory is bounded: the oldest client is forgotten first


def hash_password(password: str) -> str:
    return PasswordHasher().hash(password)


def load_password_hash(cfg: WebConfig) -> str | None:
    """The staff password's argon2 hash: the config's, else the systemd credential's; None
    (logged once) when neither is set or what is set is not an argon2 hash."""
    value, where = cfg.staff_password_hash, "web.staff_password_hash"
    path = systemd_credential(CREDENTIAL) if value is None else None
    if path is not None:
        try:
            value, where = path.read_text().strip(), str(path)
        except OSError as e:
            log.error("staff login disabled: cannot read %s: %s", path, e.strerror)
            return None
    if value is None:
        log.warning("staff login disabled: no password hash set (make one with `mpox web hash-password`)")
        return None
    if not value.startswith("$argon2"):
        log.error("staff login disabled: %s is not an argon2 hash (make one with `mpox web hash-password`)", where)
        return None
    return value


class Staff:
    """Who may see the staff pages: password check, sessions and failed-login limits.
    Called from the server's worker threads, hence the lock."""

    def __init__(self, password_hash: str | None, session_s: float, attempts: int) -> None:
        self.password_hash = password_hash
        self.session_s, self.attempts = session_s, attempts
        self._hasher = PasswordHasher()
        self._sessions: dict[str, float] = {}  # token -> expiry (monotonic)
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()  # client -> times of failed logins
        self._lock = threading.Lock()

    @property
    def configured(self) -> bool:
        return self.password_hash is not None

    def wait_s(self, client: str) -> float:
        """Seconds this client must wait before trying again (0: it may try now)."""
        now = time.monotonic()
        with self._lock:
            times = self._failures.get(client)
            if not times:
                return 0.0
            while times and now - times[0] > LOGIN_WINDOW_S:
                times.popleft()
            return LOGIN_WINDOW_S - (now - times[0]) if len(times) >= self.attempts else 0.0

    def login(self, client: str, password: str) -> str | None:
        """A new session token for the right password, else None (and the failure counted)."""
        if self.password_hash is None:
            return None
        try:
            self._hasher.verify(self.password_hash, password)
        except (VerificationError, InvalidHashError):
            with self._lock:
                self._failures.setdefault(client, deque()).append(time.monotonic())
                self._failures.move_to_end(client)
                while len(self._failures) > MAX_TRACKED_CLIENTS:
                    self._failures.popitem(last=False)
            log.warning("staff login failed from %s", client)
            return None
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._failures.pop(client, None)
            now = time.monotonic()
            self._sessions = {t: e for t, e in self._sessions.items() if e > now}  # forget expired ones
            self._sessions[token] = now + self.session_s
        log.info("staff login from %s", client)
        return token

    def valid(self, token: str | None) -> bool:
        if not token:
            return False
        with self._lock:
            expiry = self._sessions.get(token)
        return expiry is not None and expiry > time.monotonic()

    def logout(self, token: str | None) -> None:
        with self._lock:
            self._sessions.pop(token or "", None)


def new_csrf_token() -> str:
    return secrets.token_urlsafe(24)


def csrf_ok(cookie: str | None, sent: str | None) -> bool:
    """Double submit: the token a page carries must equal its cookie (a SameSite=Strict,
    HttpOnly cookie another site can neither send nor read)."""
    return bool(cookie) and bool(sent) and hmac.compare_digest(cookie.encode(), sent.encode())
