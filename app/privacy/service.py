"""Proving who one is with a one-time code, and the short session that follows.

A person names an e-mail address or phone number; the records' blind indexes (through the
data-subject-request verification, `dsr.verification.resolve_subject`) say whether exactly one
subject holds it. Either way a challenge is stored and the same page follows, so the centre is
no way to learn whether someone is a customer: only a matched address is sent a code, and only
a matched challenge can succeed. Codes are random, kept as keyed hashes, expire, serve once and
die after a few wrong tries; how many are sent per hour is limited per address and per person
(silently: a visible limit would tell a known person from an unknown one) and per client
address (visibly: that says nothing about anyone).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.auth.guard import Caller
from app.auth.scopes import Scope
from app.clock import utcnow
from app.config import Settings
from app.dsr import verification
from app.errors import GatewayError
from app.keys.fields import normalise_for_index
from app.keys.keyring import Keyring
from app.privacy.models import CentreSession, CodeChallenge, Throttle

KEY_NAME = "privacy-centre"
CHANNELS = ("email", "phone")
METHOD = "one_time_code"  # policies/verification.yaml
ACTOR = "privacy-centre"
HOUR = timedelta(hours=1)


class TooManyRequests(GatewayError):
    status, type, title = 429, "too-many-requests", "Too many requests"


def centre(request_id: str | None = None) -> Caller:
    """The privacy centre acting for a person: it files their requests and, having checked
    their code, vouches for who they are (scope dsr:verify)."""
    return Caller(sub=ACTOR, roles=("privacy-centre",), request_id=request_id,
                  scopes=frozenset({Scope.DSR_SUBMIT.value, Scope.DSR_VERIFY.value}))


@dataclass(frozen=True)
class Outgoing:
    """A code to send once the transaction that stored its hash has committed."""

    channel: str
    address: str
    code: str


@dataclass(frozen=True)
class Started:
    challenge_id: str
    outgoing: Outgoing | None  # None for an unknown address or one over its limit


def key(session: Session, keyring: Keyring) -> bytes:
    return keyring.service_key(session, KEY_NAME)


def keyed(secret: bytes, *parts: str) -> str:
    return hmac.new(secret, "\x00".join(parts).encode(), hashlib.sha256).hexdigest()


def _count(session: Session, throttle_key: str, since: datetime) -> int:
    return session.scalar(select(func.count()).select_from(Throttle).where(
        Throttle.key == throttle_key, Throttle.at >= since)) or 0


def _forget_old(session: Session, now: datetime) -> None:
    session.execute(delete(Throttle).where(Throttle.at < now - HOUR))
    session.execute(delete(CodeChallenge).where(CodeChallenge.expires_at < now - HOUR))
    session.execute(delete(CentreSession).where(CentreSession.expires_at < now))


def start(session: Session, keyring: Keyring, settings: Settings, *, caller: Caller,
          channel: str, address: str, client_ip: str) -> Started:
    """Store a challenge for this address and say what to send, if anything."""
    now = utcnow()
    secret = key(session, keyring)
    ip_key = "ip:" + keyed(secret, "ip", client_ip)
    if _count(session, ip_key, now - HOUR) >= settings.privacy_requests_per_hour_per_ip:
        audit.record(session, caller=caller, action="privacy.code_refused",
                     outcome=audit.Outcome.DENIED, details={"reason": "client rate limit"})
        raise TooManyRequests("too many codes were asked for from this address; try later")
    _forget_old(session, now)
    subject_id = verification.resolve_subject(session, keyring, {channel: address})
    known = verification.matched(subject_id)
    address_key = "address:" + keyed(secret, channel, normalise_for_index(channel, address))
    subject_key = "subject:" + keyed(secret, "subject", subject_id)
    limit = settings.privacy_codes_per_hour
    limited = _count(session, address_key, now - HOUR) >= limit or \
        (known and _count(session, subject_key, now - HOUR) >= limit)
    session.add_all([Throttle(key=k, at=now) for k in (ip_key, address_key, subject_key)])
    challenge_id = secrets.token_hex(16)
    code = f"{secrets.randbelow(10**6):06d}"
    session.add(CodeChallenge(
        id=challenge_id, subject_id=subject_id if known and not limited else None,
        channel=channel, code_hash=keyed(secret, "code", challenge_id, code), created_at=now,
        expires_at=now + timedelta(minutes=settings.privacy_code_minutes), attempts=0,
        used_at=None))
    session.flush()
    if not known:
        audit.record(session, caller=caller, action="privacy.code_unmatched",
                     resource=f"privacy-challenge:{challenge_id}", details={"channel": channel})
        return Started(challenge_id, None)
    audit.record(session, caller=caller,
                 action="privacy.code_withheld" if limited else "privacy.code_sent",
                 outcome=audit.Outcome.DENIED if limited else audit.Outcome.ALLOWED,
                 subject_id=subject_id, resource=f"privacy-challenge:{challenge_id}",
                 details={"channel": channel} | ({"reason": "hourly limit"} if limited else {}))
    return Started(challenge_id, None if limited else Outgoing(channel, address, code))


def check(session: Session, keyring: Keyring, settings: Settings, *, caller: Caller,
          challenge_id: str, code: str) -> str | None:
    """The token of a new session when the code is right; None otherwise (wrong, expired,
    used, tried too often, or for an address that matched nobody)."""
    now = utcnow()
    challenge = session.get(CodeChallenge, challenge_id, with_for_update=True)
    if challenge is None:
        return None
    challenge.attempts += 1
    reason = ("used" if challenge.used_at is not None else
              "expired" if challenge.expires_at <= now else
              "too many attempts" if challenge.attempts > settings.privacy_code_attempts else
              None)
    right = hmac.compare_digest(challenge.code_hash,
                                keyed(key(session, keyring), "code", challenge_id, code))
    if reason is None and not right:
        reason = "wrong code"
    if challenge.subject_id is None or reason is not None:
        audit.record(session, caller=caller, action="privacy.verification_refused",
                     outcome=audit.Outcome.DENIED, subject_id=challenge.subject_id,
                     resource=f"privacy-challenge:{challenge_id}",
                     details={"reason": reason or "no such person",
                              "attempt": challenge.attempts})
        return None
    challenge.used_at = now
    token = secrets.token_urlsafe(32)
    session.add(CentreSession(
        token_hash=_token_hash(token), subject_id=challenge.subject_id, created_at=now,
        expires_at=now + timedelta(minutes=settings.privacy_session_minutes)))
    audit.record(session, caller=caller, action="privacy.verified",
                 subject_id=challenge.subject_id, resource=f"privacy-challenge:{challenge_id}",
                 details={"channel": challenge.channel, "method": METHOD})
    return token


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def subject_of(session: Session, token: str | None) -> str | None:
    """The subject a live session token belongs to."""
    if not token:
        return None
    found = session.get(CentreSession, _token_hash(token))
    if found is None or found.expires_at <= utcnow():
        return None
    return found.subject_id


def end(session: Session, *, caller: Caller, token: str, subject_id: str) -> None:
    session.execute(delete(CentreSession).where(CentreSession.token_hash == _token_hash(token)))
    audit.record(session, caller=caller, action="privacy.signed_out", subject_id=subject_id)


def erase_subject(session: Session, *, subject_id: str) -> int:
    """An erased person's code challenges go with them (they name the subject); returns how
    many were deleted. A session open now is left to expire (at most its lifetime), so that
    the person who asked sees their erasure completed."""
    return int(session.execute(delete(CodeChallenge).where(
        CodeChallenge.subject_id == subject_id)).rowcount)  # type: ignore[attr-defined]
