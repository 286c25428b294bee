"""Staff login: an argon2 password hash from the config or a systemd credential, sessions in
memory (HttpOnly, SameSite=Strict cookies), double-submit CSRF tokens, a per-client limit
on login attempts and a bound on argon2 checks running at once. There is no default password:
without a hash the staff pages say how to set one.

Under attack (many logins at once, from one address or many): an attempt is counted BEFORE
its password is checked, so concurrent attempts cannot all slip past the limit while the
first ones are still being checked; and at most MAX_CHECKS argon2 checks run at a time (each
takes ~64 MB and, with the hash's parallelism of 4, up to four threads for a fraction of a
second: one leaves a Pi's cores to the camera loop): one more is answered "busy" (429) at
once, never queued, so a burst can neither starve the camera loop nor balloon memory."""

from __future__ import annotations

import hmac
import logging
import secrets
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from edge.config import WebConfig, is_argon2_hash, systemd_credential

log = logging.getLogger(__name__)
CREDENTIAL = "staff-password-hash"  # systemd LoadCredential= name, read from $CREDENTIALS_DIRECTORY
SESSION_COOKIE = "mpox_session"
CSRF_COOKIE = "mpox_csrf"
CSRF_HEADER = "x-csrf-token"
LOGIN_WINDOW_S = 300.0
MAX_TRACKED_CLIENTS = 10_000  # failed-login memory is bounded: the oldest client is forgotten first
BUSY_LOG_EVERY_S = 60.0
MAX_CHECKS = 1  # argon2 verifications at once, all clients together; more are refused, not queued


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
    if not is_argon2_hash(value):
        log.error("staff login disabled: %s is not an argon2 hash (make one with `mpox web hash-password`)", where)
        return None
    return value


@dataclass(frozen=True)
class Login:
    """What a login attempt gave: a session token, or why not (wrong password, wait, busy)."""

    token: str | None
    wait_s: float = 0.0  # > 0: this client made too many attempts; it may try again after this long
    busy: bool = False  # MAX_CHECKS password checks were already running: try again in a moment


class Staff:
    """Who may see the staff pages: password check, sessions and failed-login limits.
    Called from the server's worker threads, hence the lock."""

    def __init__(self, password_hash: str | None, session_s: float, attempts: int) -> None:
        self.password_hash = password_hash
        self.session_s, self.attempts = session_s, attempts
        self._hasher = PasswordHasher()
        self._sessions: dict[str, float] = {}  # token -> expiry (monotonic)
        self._attempts: OrderedDict[str, deque[float]] = OrderedDict()  # client -> times of attempts since its last success
        self._checks = threading.BoundedSemaphore(MAX_CHECKS)
        self._busy_refusals, self._busy_said_at = 0, -BUSY_LOG_EVERY_S
        self._lock = threading.Lock()

    @property
    def configured(self) -> bool:
        return self.password_hash is not None

    def wait_s(self, client: str) -> float:
        """Seconds this client must wait before trying again (0: it may try now)."""
        with self._lock:
            return self._wait_locked(client, time.monotonic())

    def _wait_locked(self, client: str, now: float) -> float:
        times = self._attempts.get(client)
        if not times:
            return 0.0
        while times and now - times[0] > LOGIN_WINDOW_S:
            times.popleft()
        return LOGIN_WINDOW_S - (now - times[0]) if len(times) >= self.attempts else 0.0

    def login(self, client: str, password: str) -> Login:
        """Try a password. The attempt is counted (under the lock) before argon2 runs, and at
        most MAX_CHECKS run at once: a refused attempt costs no argon2 check at all."""
        if self.password_hash is None:
            return Login(None)
        if not self._checks.acquire(blocking=False):
            with self._lock:
                self._busy_refusals += 1
                now, refused = time.monotonic(), self._busy_refusals
                say = now >= self._busy_said_at + BUSY_LOG_EVERY_S  # a flood is a line a minute, not a line a request
                if say:
                    self._busy_said_at, self._busy_refusals = now, 0
            if say:
                log.warning("staff logins refused: a password check was already running (%d refused, the last from %s)",
                            refused, client)
            return Login(None, busy=True)
        try:
            with self._lock:
                now = time.monotonic()
                wait = self._wait_locked(client, now)
                if wait > 0:
                    return Login(None, wait_s=wait)
                self._attempts.setdefault(client, deque()).append(now)  # counted now, forgotten only on success
                self._attempts.move_to_end(client)
                while len(self._attempts) > MAX_TRACKED_CLIENTS:
                    self._attempts.popitem(last=False)
            try:
                self._hasher.verify(self.password_hash, password)
            except (VerificationError, InvalidHashError):
                log.warning("staff login failed from %s", client)
                return Login(None)
        finally:
            self._checks.release()
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._attempts.pop(client, None)
            now = time.monotonic()
            self._sessions = {t: e for t, e in self._sessions.items() if e > now}  # forget expired ones
            self._sessions[token] = now + self.session_s
        log.info("staff login from %s", client)
        return Login(token)

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
