"""Sessions, CSRF tokens, login rate limiting and API-token digests (no FastAPI here).

A session is a signed cookie: ``base64(json).hex(hmac-sha256)`` with the user's name,
an expiry and a random CSRF token. Nothing is kept on the server; a changed secret key
logs everyone out. Forms carry the session's CSRF token; a request is accepted only
when the form field (or the ``X-CSRF-Token`` header, for HTMX) equals it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

SESSION_COOKIE = "payrecon_session"
TOKEN_PREFIX = "prt_"


@dataclass(frozen=True)
class Session:
    """Who is logged in, until when (epoch seconds), and the session's CSRF token."""

    user: str
    expires: int
    csrf: str


class SessionSigner:
    """Signs and checks session cookies with the configured secret key."""

    def __init__(self, secret_key: str, lifetime_s: int, clock: Callable[[], float] = time.time):
        self._key = hashlib.sha256(b"payrecon-session:" + secret_key.encode()).digest()
        self.lifetime_s = lifetime_s
        self.clock = clock

    def new(self, user: str) -> tuple[Session, str]:
        """A fresh session for ``user`` and its cookie value."""
        session = Session(user, int(self.clock()) + self.lifetime_s, secrets.token_urlsafe(24))
        body = json.dumps({"u": session.user, "e": session.expires, "c": session.csrf})
        payload = base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")
        return session, f"{payload}.{self._sign(payload)}"

    def read(self, cookie: str | None) -> Session | None:
        """The session in a cookie, or ``None`` when missing, forged or expired."""
        if not cookie or cookie.count(".") != 1:
            return None
        payload, signature = cookie.split(".")
        if not hmac.compare_digest(self._sign(payload), signature):
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            session = Session(str(data["u"]), int(data["e"]), str(data["c"]))
        except (ValueError, KeyError, TypeError):
            return None
        return session if session.expires > self.clock() else None

    def _sign(self, payload: str) -> str:
        return hmac.new(self._key, payload.encode(), hashlib.sha256).hexdigest()


def csrf_matches(session: Session, offered: str | None) -> bool:
    return bool(offered) and hmac.compare_digest(session.csrf.encode(), (offered or "").encode())


class LoginLimiter:
    """At most ``attempts`` failed logins per key (user name, client address) per window."""

    def __init__(self, attempts: int, window_s: float, clock: Callable[[], float] = time.monotonic):
        self.attempts = attempts
        self.window_s = window_s
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def blocked(self, *keys: str) -> bool:
        with self._lock:
            return any(len(self._recent(key)) >= self.attempts for key in keys)

    def failed(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self._recent(key).append(self.clock())

    def succeeded(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self._failures.pop(key, None)

    def _recent(self, key: str) -> deque[float]:
        failures = self._failures.setdefault(key, deque())
        while failures and failures[0] <= self.clock() - self.window_s:
            failures.popleft()
        return failures


def new_api_token() -> str:
    """A new bearer token; show it once, keep only :func:`token_digest` of it."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
