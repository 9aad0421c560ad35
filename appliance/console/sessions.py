"""Officer sessions in memory: random cookie tokens, a CSRF token each, idle and absolute expiry.

Kept in memory on purpose: a console restart signs everyone out (the queue itself is on disk).
The cookie is ``__Host-lfr_session`` (Secure, HttpOnly, SameSite=Strict, Path=/, no Domain: the
``__Host-`` prefix makes the browser refuse it otherwise).
"""
from __future__ import annotations

import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field

COOKIE = "__Host-lfr_session"
SIGNIN_COOKIE = "__Host-lfr_signin"


@dataclass
class Session:
    """One signed-in officer on one browser."""

    token: str
    officer: str
    csrf: str
    created: float
    last_active: float = field(default=0.0)

    def csrf_ok(self, presented: str | None) -> bool:
        """Constant-time check of the CSRF token a request presents."""
        return bool(presented) and hmac.compare_digest(self.csrf, presented)


class Sessions:
    """The live sessions; each ends after ``idle_s`` without activity or ``max_s`` in any case."""

    def __init__(self, idle_s: float, max_s: float) -> None:
        self.idle_s, self.max_s = idle_s, max_s
        self._by_token: dict[str, Session] = {}
        self._lock = threading.Lock()

    def create(self, officer: str, now: float | None = None) -> Session:
        """A new session for ``officer`` (a fresh token: no session fixation)."""
        now = time.time() if now is None else now
        session = Session(secrets.token_urlsafe(32), officer, secrets.token_urlsafe(32), now, now)
        with self._lock:
            self._by_token[session.token] = session
        return session

    def get(self, token: str | None, now: float | None = None) -> Session | None:
        """The live session for a cookie token, or None (unknown, idle too long, too old)."""
        if not token:
            return None
        now = time.time() if now is None else now
        with self._lock:
            session = self._by_token.get(token)
            if session and (now - session.last_active > self.idle_s or now - session.created > self.max_s):
                del self._by_token[token]
                session = None
        return session

    def touch(self, session: Session, now: float | None = None) -> None:
        """An officer did something: the idle clock starts again."""
        session.last_active = time.time() if now is None else now

    def end(self, token: str) -> None:
        """Sign out."""
        with self._lock:
            self._by_token.pop(token, None)

    def sweep(self, now: float | None = None) -> None:
        """Drop every expired session."""
        for token in list(self._by_token):
            self.get(token, now)
