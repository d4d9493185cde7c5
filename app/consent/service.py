"""Recording consent: notices, grants, withdrawals and opt-outs, each with a signed receipt.

Consent events are append-only; the current state of a subject and purpose is the latest event.
Two simultaneous changes both land as events, in the order the database commits them.

A write that relies on consent and a withdrawal are serialised through a lock on the subject's
consent state (`lock_state`): the write holds it shared from its consent check to its commit,
the withdrawal exclusively. A withdrawal therefore commits only after the writes already in
flight, and a write that checks after it sees it. The lock is a PostgreSQL transaction-scoped
advisory lock keyed by the subject, so it exists before the subject has any consent event (an
append-only table has no row to lock for a subject never seen). Every transaction takes it before
record rows and key rows, so it adds no lock-order inversion. On SQLite every
transaction holds the database's write lock from its beginning (BEGIN IMMEDIATE), which
serialises them all the same. Either way the withdrawal's time is read once it holds the lock.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.auth.guard import Caller
from app.clock import isoformat, utcnow
from app.consent.models import ConsentEvent, ConsentEventKind, Notice
from app.db import is_postgres
from app.errors import Conflict, Invalid, NotFound
from app.keys.signing import Signer
from app.policy.loader import Policy
from app.policy.models import LegalBasis
from app.webhooks import outbox
from app.webhooks.events import Event

CHANNELS = ("web", "app", "store", "phone", "paper", "gpc", "api")
RECEIPT_TYPE = "consent-receipt+jwt"
# The advisory-lock key space of subjects' consent state: the two-integer form, apart from the
# single 64-bit keys other domains use (the audit sequencer).
STATE_LOCK_SPACE = 0x70677763
_STATE_LOCKS = "pgw_consent_locks"  # session.info: (transaction, {subject_id: exclusive})


@dataclass(frozen=True)
class Evidence:
    form_id: str | None = None
    ip_address: str | None = None
    user_agent: str | None = None


@dataclass(frozen=True)
class Guardian:
    guardian_id: str
    relation: str
    verification: str


@dataclass(frozen=True)
class Grant:
    subject_id: str
    purpose: str
    notice_id: str
    notice_version: int
    channel: str
    captured_at: datetime
    evidence: Evidence
    separate: bool = False
    guardian: Guardian | None = None
    subject_age: int | None = None
    expires_at: datetime | None = None
    jurisdiction: str | None = None


# -- notices ---------------------------------------------------------------------------------

def register_notice(session: Session, *, caller: Caller, notice_id: str, version: int,
                    language: str, text: str, requires_reconsent: bool) -> Notice:
    exists = session.scalar(select(Notice).where(Notice.notice_id == notice_id,
                                                 Notice.version == version,
                                                 Notice.language == language))
    if exists is not None:
        raise Conflict(f"notice {notice_id} version {version} ({language}) is already "
                       "registered; a changed text is a new version")
    notice = Notice(notice_id=notice_id, version=version, language=language, text=text,
                    sha256=hashlib.sha256(text.encode()).hexdigest(),
                    requires_reconsent=requires_reconsent, created_at=utcnow())
    session.add(notice)
    session.flush()
    audit.record(session, caller=caller, action="notice.registered",
                 resource=f"notice:{notice_id}:{version}:{language}",
                 details={"requires_reconsent": requires_reconsent, "sha256": notice.sha256})
    return notice


def notices(session: Session, *, notice_id: str | None = None) -> list[Notice]:
    """Registered notices (every version and language), or one notice's, oldest first."""
    query = select(Notice).order_by(Notice.notice_id, Notice.version, Notice.language)
    if notice_id is not None:
        query = query.where(Notice.notice_id == notice_id)
    return list(session.scalars(query))


def notice_dict(notice: Notice, *, text: bool = False) -> dict[str, Any]:
    shown = {"notice_id": notice.notice_id, "version": notice.version,
             "language": notice.language, "sha256": notice.sha256,
             "requires_reconsent": notice.requires_reconsent,
             "created_at": isoformat(notice.created_at)}
    return shown | {"text": notice.text} if text else shown


def latest_reconsent_version(session: Session, notice_id: str) -> int:
    """The newest version of a notice that changed what consent covers (0 if none)."""
    return session.scalar(select(func.max(Notice.version)).where(
        Notice.notice_id == notice_id, Notice.requires_reconsent.is_(True))) or 0


# -- the lock on a subject's consent state ----------------------------------------------------

def lock_state(session: Session, *, subject_id: str, exclusive: bool = False) -> None:
    """Lock the subject's consent state until the transaction ends: shared for a write that
    relies on the consent it reads, exclusive for a change to it. Taken once per transaction."""
    held = session.info.get(_STATE_LOCKS)
    if held is None or held[0] is not session.get_transaction():
        held = (session.get_transaction(), {})
        session.info[_STATE_LOCKS] = held
    subjects: dict[str, bool] = held[1]
    if subject_id in subjects and (subjects[subject_id] or not exclusive):
        return
    if is_postgres(session):
        function = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
        session.execute(text(f"SELECT {function}(CAST(:space AS integer), "
                             "CAST(:key AS integer))"),
                        {"space": STATE_LOCK_SPACE, "key": _state_key(subject_id)})
    else:
        # SQLite: beginning the transaction takes the database's write lock (BEGIN IMMEDIATE),
        # so a withdrawal's time is read after the writes before it have committed
        session.connection()
    subjects[subject_id] = exclusive


def _state_key(subject_id: str) -> int:
    # 32 bits of a hash: two subjects sharing a key only wait for each other, harmlessly
    digest = hashlib.sha256(subject_id.encode()).digest()
    return int.from_bytes(digest[:4], "big", signed=True)


# -- grants, withdrawals, opt-outs -----------------------------------------------------------

def _validate(session: Session, policy: Policy, grant: Grant) -> None:
    body = policy.body
    purpose = body.purposes.get(grant.purpose)
    if purpose is None:
        raise Invalid(f"unknown purpose {grant.purpose!r}", field="purpose",
                      supported=sorted(body.purposes))
    if purpose.legal_basis is not LegalBasis.CONSENT:
        raise Invalid(f"purpose {grant.purpose!r} relies on {purpose.legal_basis.value}, not on "
                      "consent", field="purpose")
    if purpose.notice and grant.notice_id != purpose.notice:
        raise Invalid(f"purpose {grant.purpose!r} is consented to through notice "
                      f"{purpose.notice!r}", field="notice_id")
    if session.scalar(select(Notice.id).where(Notice.notice_id == grant.notice_id,
                                              Notice.version == grant.notice_version)) is None:
        raise Invalid(f"unknown notice {grant.notice_id!r} version {grant.notice_version}",
                      field="notice_version")
    if purpose.separate_consent and not grant.separate:
        raise Invalid(f"purpose {grant.purpose!r} needs separate consent (PIPL art. 23, 25, 29, "
                      "39): ask for it on its own and send separate: true", field="separate")
    if grant.jurisdiction is not None and grant.jurisdiction not in body.jurisdictions:
        raise Invalid(f"unknown jurisdiction {grant.jurisdiction!r}", field="jurisdiction",
                      supported=sorted(body.jurisdictions))
    law = body.jurisdictions.get(grant.jurisdiction or "")
    if grant.subject_age is not None and law and grant.subject_age < \
            law.age_of_digital_consent and grant.guardian is None:
        raise Invalid(f"the subject is {grant.subject_age}: under {grant.jurisdiction} a "
                      f"guardian must consent below {law.age_of_digital_consent}",
                      field="guardian")


def _evidence(evidence: Evidence, hash_key: bytes | None) -> dict[str, Any]:
    ip_hash = None
    if evidence.ip_address:
        if not hash_key:
            raise Invalid("the IP address cannot be kept without the evidence hash key",
                          field="evidence.ip_address")
        ip_hash = hmac.new(hash_key, evidence.ip_address.encode(), hashlib.sha256).hexdigest()
    return {"form_id": evidence.form_id, "ip_hash": ip_hash,
            "user_agent": (evidence.user_agent or "")[:512] or None}


CLOCK_SKEW = timedelta(minutes=5)
EARLIEST_CONSENT = datetime(1990, 1, 1, tzinfo=UTC)
LATEST_EXPIRY = datetime(2200, 1, 1, tzinfo=UTC)


def _check_times(grant: Grant, lifetime: int | None) -> None:
    """A consent was given in the past (a future one would count before it was given) and
    ends no later than the purpose's consent lifetime after it was given."""
    if not EARLIEST_CONSENT <= grant.captured_at <= utcnow() + CLOCK_SKEW:
        raise Invalid("captured_at must be a past time (after 1990)", field="captured_at")
    if grant.expires_at is None:
        return
    latest = grant.captured_at + timedelta(days=lifetime) if lifetime else LATEST_EXPIRY
    if not grant.captured_at < grant.expires_at <= min(latest, LATEST_EXPIRY):
        raise Invalid(f"expires_at must fall after captured_at and no later than {latest:%Y-%m-%d}"
                      " (the purpose's consent lifetime)", field="expires_at")


def record_grant(session: Session, policy: Policy, *, caller: Caller, grant: Grant,
                 hash_key: bytes | None) -> ConsentEvent:
    _validate(session, policy, grant)
    lifetime = policy.body.purposes[grant.purpose].consent_lifetime_days
    _check_times(grant, lifetime)
    expires_at = grant.expires_at or (grant.captured_at + timedelta(days=lifetime)
                                      if lifetime else None)
    guardian = None if grant.guardian is None else grant.guardian.__dict__
    event = ConsentEvent(
        subject_id=grant.subject_id, purpose=grant.purpose,
        event=ConsentEventKind.GRANTED,
        notice_id=grant.notice_id, notice_version=grant.notice_version, channel=grant.channel,
        captured_at=grant.captured_at, recorded_at=utcnow(),
        evidence=_evidence(grant.evidence, hash_key), separate=grant.separate,
        guardian=guardian, subject_age=grant.subject_age, expires_at=expires_at,
        jurisdiction=grant.jurisdiction, actor=caller.sub)
    session.add(event)
    session.flush()
    audit.record(session, caller=caller, action="consent.granted", purpose=grant.purpose,
                 subject_id=grant.subject_id, resource=f"consent_event:{event.id}",
                 details={"notice_id": grant.notice_id, "notice_version": grant.notice_version,
                          "channel": grant.channel, "separate": grant.separate,
                          "guardian": grant.guardian is not None})
    outbox.publish(session, Event.CONSENT_GIVEN, {
        "consent_event_id": event.id, "subject_id": event.subject_id, "purpose": event.purpose,
        "notice_id": event.notice_id, "notice_version": event.notice_version,
        "channel": event.channel})
    return event


def record_withdrawal(session: Session, policy: Policy, *, caller: Caller, subject_id: str,
                      purpose: str, channel: str = "api") -> ConsentEvent:
    """Withdrawing is one call with nothing to fill in (GDPR art. 7(3), PIPL art. 15). It waits
    for writes in flight that rely on the subject's consent, and is recorded as of then."""
    policy.purpose(purpose)
    lock_state(session, subject_id=subject_id, exclusive=True)
    now = utcnow()
    event = ConsentEvent(subject_id=subject_id, purpose=purpose,
                         event=ConsentEventKind.WITHDRAWN,
                         channel=channel, captured_at=now, recorded_at=now, evidence={},
                         separate=False, actor=caller.sub)
    session.add(event)
    session.flush()
    audit.record(session, caller=caller, action="consent.withdrawn", purpose=purpose,
                 subject_id=subject_id, resource=f"consent_event:{event.id}",
                 details={"channel": channel})
    outbox.publish(session, Event.CONSENT_WITHDRAWN, {
        "consent_event_id": event.id, "subject_id": subject_id, "purpose": purpose,
        "channel": channel})
    return event


def record_opt_out(session: Session, policy: Policy, *, caller: Caller, subject_id: str,
                   gpc: bool) -> list[ConsentEvent]:
    """Withdraw every purpose that sells or shares data (CCPA 1798.120; GPC, 11 CCR 7025)."""
    purposes = [p for p, spec in policy.body.purposes.items() if spec.ccpa_sale_or_sharing]
    return [record_withdrawal(session, policy, caller=caller, subject_id=subject_id,
                              purpose=purpose, channel="gpc" if gpc else "api")
            for purpose in purposes]


# -- reading ---------------------------------------------------------------------------------

def history(session: Session, subject_id: str) -> list[ConsentEvent]:
    return list(session.scalars(select(ConsentEvent).where(ConsentEvent.subject_id == subject_id)
                                .order_by(ConsentEvent.id)))


def daily_counts(session: Session, *, since: datetime) -> list[tuple[str, str, str, int]]:
    """(day, purpose, event, count) of the consent events captured since `since` (charts)."""
    day = func.date(ConsentEvent.captured_at)
    rows = session.execute(select(day, ConsentEvent.purpose, ConsentEvent.event, func.count())
                           .where(ConsentEvent.captured_at >= since)
                           .group_by(day, ConsentEvent.purpose, ConsentEvent.event))
    return [(str(d)[:10], purpose, str(event), int(n)) for d, purpose, event, n in rows]


def get_event(session: Session, event_id: int) -> ConsentEvent:
    event = session.get(ConsentEvent, event_id)
    if event is None:
        raise NotFound("no such consent event")
    return event


def current(session: Session, subject_id: str, purpose: str) -> ConsentEvent | None:
    return session.scalar(select(ConsentEvent).where(
        ConsentEvent.subject_id == subject_id, ConsentEvent.purpose == purpose)
        .order_by(ConsentEvent.id.desc()).limit(1))


def event_dict(event: ConsentEvent) -> dict[str, Any]:
    return {
        "event_id": event.id, "purpose": event.purpose, "event": event.event,
        "notice_id": event.notice_id, "notice_version": event.notice_version,
        "channel": event.channel, "captured_at": isoformat(event.captured_at),
        "recorded_at": isoformat(event.recorded_at), "separate": event.separate,
        "guardian": event.guardian, "expires_at": isoformat(event.expires_at)
        if event.expires_at else None, "jurisdiction": event.jurisdiction,
        "evidence": event.evidence,
    }


# -- receipts --------------------------------------------------------------------------------

def receipt(event: ConsentEvent, signer: Signer, policy_version: str) -> str:
    """A JWS (EdDSA) the subject keeps; anyone with the published key can verify it."""
    claims = {"iss": "privacy-gateway", "sub": event.subject_id, "jti": str(event.id),
              "iat": int(event.recorded_at.timestamp()), "policy_version": policy_version,
              **{k: v for k, v in event_dict(event).items() if k not in ("evidence",
                                                                         "event_id")}}
    return jwt.encode(claims, signer.private_key, algorithm="EdDSA",
                      headers={"kid": signer.key_id, "typ": RECEIPT_TYPE})


def verify_receipt(token: str, public_key: Any) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, public_key, algorithms=["EdDSA"],
                                        options={"require": ["sub", "jti", "iat"]})
    return claims
