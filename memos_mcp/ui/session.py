"""Sign-in sessions of the web UI: who a browser is, until when, and its CSRF token.

A session is kept in this process only (a restart signs everyone out); the browser holds its id,
signed with a per-process secret (``itsdangerous``) and timestamped, in an HttpOnly, SameSite=Strict
cookie scoped to ``/ui``. Each request checks the signature, the expiry and that the key that opened
the session is still valid (a revoked key ends its sessions at once). Every POST carries the
session's CSRF token; the sign-in form, posted before any session exists, carries a signed,
timestamped token of its own.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field

from itsdangerous import BadSignature, TimestampSigner

from memos_mcp.core.keys import KeyRing

COOKIE = "memos_ui"
SIGN_IN_TOKEN_SECONDS = 3600  # how long a sign-in form may stay open before it is posted
MAX_SESSIONS = 10_000  # sessions kept at once (a client that never keeps its cookie cannot grow this)
MAX_SESSIONS_PER_USER = 100  # one user's at once: their oldest ends first, never another user's


@dataclass
class Session:
    """One signed-in browser: ``key`` is the API key it signed in with (None on an open loopback
    server, where no key exists), ``expires`` a ``time.time()`` instant."""

    sid: str
    user_id: str
    key: str | None
    expires: float
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))


class Sessions:
    """The sessions of one server; ``lifetime`` in seconds. Thread-safe."""

    def __init__(self, keys: KeyRing, lifetime: int) -> None:
        self.keys = keys
        self.lifetime = lifetime
        secret = secrets.token_bytes(32)
        self._cookie = TimestampSigner(secret, salt="memos-ui-session")
        self._sign_in = TimestampSigner(secret, salt="memos-ui-sign-in")
        self._open: dict[str, Session] = {}
        self._lock = threading.Lock()

    def open(self, user_id: str, key: str | None) -> tuple[Session, str]:
        """A new session and the cookie value that names it."""
        session = Session(sid=secrets.token_urlsafe(32), user_id=user_id, key=key,
                          expires=time.time() + self.lifetime)
        with self._lock:
            now = time.time()
            for sid in [s for s, found in self._open.items() if found.expires <= now]:
                del self._open[sid]
            own = [sid for sid, found in self._open.items() if found.user_id == user_id]
            for sid in own[:max(0, len(own) - MAX_SESSIONS_PER_USER + 1)]:  # oldest first (insertion order)
                del self._open[sid]
            while len(self._open) >= MAX_SESSIONS:  # the oldest goes first (dicts keep insertion order)
                del self._open[next(iter(self._open))]
            self._open[session.sid] = session
        return session, self._cookie.sign(session.sid).decode()

    def find(self, cookie: str | None) -> Session | None:
        """The live session a cookie names, or None (unsigned, expired, signed out, or its key revoked).
        Reads the catalog: call it off the event loop."""
        if not cookie:
            return None
        try:
            sid = self._cookie.unsign(cookie, max_age=self.lifetime).decode()
        except BadSignature:  # also SignatureExpired
            return None
        with self._lock:
            session = self._open.get(sid)
        if session is None or session.expires <= time.time():
            self.close(cookie)
            return None
        still = self.keys.authenticate(session.key) if session.key is not None else (
            session.user_id if not self.keys.enabled else None)
        if still != session.user_id:
            self.close(cookie)
            return None
        return session

    def close(self, cookie: str | None) -> None:
        """Sign out: forget the session the cookie names (nothing when it names none)."""
        try:
            sid = self._cookie.unsign(cookie or "").decode()
        except BadSignature:
            return
        with self._lock:
            self._open.pop(sid, None)

    def sign_in_token(self) -> str:
        """The CSRF token of the sign-in form."""
        return self._sign_in.sign(secrets.token_urlsafe(16)).decode()

    def sign_in_token_valid(self, token: str) -> bool:
        try:
            self._sign_in.unsign(token, max_age=SIGN_IN_TOKEN_SECONDS)
        except BadSignature:
            return False
        return True

    @staticmethod
    def csrf_valid(session: Session, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(session.csrf.encode(), (token or "").encode())
