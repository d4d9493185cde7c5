"""Console sign-in state, kept on the server.

Why not a signed cookie: a session here must end when the person signs out or an operator
revokes it, on every process at once; a row deleted is that, a cookie already issued is not.
The cookie carries 32 random bytes; the table keeps their SHA-256, so reading it signs nobody
in. A session ends after `console_session_idle_minutes` unused or `console_session_hours`.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete
from sqlalchemy.orm import Session

from app.auth.guard import Caller
from app.clock import utcnow
from app.config import Settings
from app.console.models import ConsoleLogin, ConsoleSession

LOGIN_TTL = timedelta(minutes=10)
SEEN_EVERY = timedelta(seconds=30)


@dataclass(frozen=True)
class Staff:
    """The signed-in person: the same principal (sub, roles, scopes) a bearer token gives."""

    caller: Caller
    csrf: str


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start(session: Session, settings: Settings, *, caller: Caller) -> str:
    """A new session for `caller`; the token for the cookie."""
    token, now = secrets.token_urlsafe(32), utcnow()
    session.execute(delete(ConsoleSession).where(ConsoleSession.expires_at <= now))
    session.add(ConsoleSession(
        token_hash=_digest(token), sub=caller.sub, roles=list(caller.roles),
        scopes=sorted(caller.scopes), csrf=secrets.token_urlsafe(32), created_at=now,
        last_seen_at=now, expires_at=now + timedelta(hours=settings.console_session_hours)))
    return token


def find(session: Session, settings: Settings, *, token: str,
         request_id: str | None = None) -> Staff | None:
    """The person signed in with `token`, or None once it ended; marks it used."""
    if not token or len(token) > 100:
        return None
    row = session.get(ConsoleSession, _digest(token))
    now = utcnow()
    if row is None:
        return None
    idle = timedelta(minutes=settings.console_session_idle_minutes)
    if row.expires_at <= now or row.last_seen_at + idle <= now:
        session.delete(row)
        return None
    if now - row.last_seen_at > SEEN_EVERY:  # not a write on every page view
        row.last_seen_at = now
    return Staff(Caller(sub=row.sub, roles=tuple(row.roles), scopes=frozenset(row.scopes),
                        request_id=request_id), row.csrf)


def end(session: Session, *, token: str) -> bool:
    """Sign out: the session is gone for every process."""
    return bool(session.execute(delete(ConsoleSession).where(
        ConsoleSession.token_hash == _digest(token))).rowcount)  # type: ignore[attr-defined]


def end_all(session: Session, *, sub: str) -> int:
    """Revoke every session of one person (an operator's action)."""
    return int(session.execute(delete(ConsoleSession).where(
        ConsoleSession.sub == sub)).rowcount)  # type: ignore[attr-defined]


def begin_login(session: Session) -> tuple[str, str, str]:
    """A sign-in at the identity provider: its `state`, PKCE S256 `code_challenge` and
    `nonce`."""
    state, verifier, now = secrets.token_urlsafe(32), secrets.token_urlsafe(48), utcnow()
    session.execute(delete(ConsoleLogin).where(ConsoleLogin.created_at <= now - LOGIN_TTL))
    session.add(ConsoleLogin(state_hash=_digest(state), code_verifier=verifier, created_at=now))
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return state, challenge.rstrip(b"=").decode(), login_nonce(verifier)


def login_nonce(verifier: str) -> str:
    """The OpenID Connect `nonce` of a sign-in, derived from its PKCE verifier (kept in the login
    state, never sent before the token exchange): nothing more to store, nothing to guess."""
    digest = hashlib.sha256(b"pgw-console-nonce\x00" + verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def finish_login(session: Session, *, state: str) -> str | None:
    """The PKCE verifier of the sign-in `state` began, once; None if unknown or too old."""
    if not state or len(state) > 100:
        return None
    row = session.get(ConsoleLogin, _digest(state))
    if row is None:
        return None
    session.delete(row)
    return row.code_verifier if row.created_at > utcnow() - LOGIN_TTL else None
